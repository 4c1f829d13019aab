// The machine's floors for one audit record, each stage measured alone in this run:
// OTLP protobuf decode, canonicalization + RFC 6962 leaf hash, and a synced LevelDB batch
// write. Alternatives are measured beside them (pure-JS SHA-256, the generic RFC 8785
// canonicalizer) so the choices in the hot path are backed by numbers from the same run.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { ClassicLevel } from "classic-level";
import { contextSuffix, recordJson } from "../dist/agent/otlp/canonical-record.js";
import { envelopeJson } from "../dist/agent/integrity/format.js";
import { canonicalize } from "../dist/agent/integrity/jcs.js";
import { decodeLogsRequest } from "../dist/agent/otlp/protobuf-codec.js";
import { buildRequest, encodeProto } from "./records.mjs";

/** Runs fn(n) repeatedly for about `ms` milliseconds; returns units per second. */
async function rate(ms, perCall, fn) {
  await fn(); // warm up
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    await fn();
    calls++;
  }
  return (calls * perCall) / ((performance.now() - t0) / 1000);
}

export async function measureFloors(ms = 3000) {
  const body = encodeProto(buildRequest(512, 1));
  const decoded = decodeLogsRequest(body);
  const rl = decoded.resourceLogs[0];
  const sl = rl.scopeLogs[0];
  const records = sl.logRecords;
  const PREV = "0".repeat(64);
  const ZERO = Buffer.from([0]);

  const decode = await rate(ms, 512, () => decodeLogsRequest(body));

  let canonicalText = "";
  const canonHash = await rate(ms, 512, () => {
    const suffix = contextSuffix(rl.resource, rl.schemaUrl, sl.scope, sl.schemaUrl);
    for (let i = 0; i < records.length; i++) {
      canonicalText = envelopeJson(
        "c0ffee",
        PREV,
        recordJson(records[i], suffix),
        i,
        "1700000000000000000",
      );
      createHash("sha256").update(ZERO).update(canonicalText).digest();
    }
  });
  const recordBytes = Buffer.byteLength(canonicalText);

  const sample = Buffer.from(canonicalText);
  const shaNode = await rate(ms, 512, () => {
    for (let i = 0; i < 512; i++) createHash("sha256").update(ZERO).update(sample).digest();
  });
  const shaNoble = await rate(ms, 512, () => {
    for (let i = 0; i < 512; i++) sha256(Buffer.concat([ZERO, sample]));
  });
  const genericJcs = await rate(ms, 512, () => {
    for (let i = 0; i < 512; i++) canonicalize(JSON.parse(canonicalText));
  });

  const dir = mkdtempSync(join(tmpdir(), "bench-floor-"));
  const db = new ClassicLevel(dir, { keyEncoding: "buffer", valueEncoding: "buffer" });
  await db.open();
  let seq = 0;
  const value = Buffer.alloc(33 + recordBytes, 7);
  const leveldb = await rate(ms, 512, async () => {
    const ops = [];
    for (let i = 0; i < 512; i++) {
      const key = Buffer.alloc(9);
      key.writeUInt32BE(seq++, 5);
      ops.push({ type: "put", key, value });
    }
    await db.batch(ops, { sync: true });
  });
  const singleSync = await rate(ms, 1, () => db.put(Buffer.from("single"), value, { sync: true }));
  await db.close();
  rmSync(dir, { recursive: true, force: true });

  // One record passes through all three stages in turn: their costs add up.
  const pipeline = 1 / (1 / decode + 1 / canonHash + 1 / leveldb);
  return {
    recordBytes,
    decode,
    canonHash,
    leveldb,
    pipeline,
    singleSyncPerSec: singleSync,
    shaNode,
    shaNoble,
    genericJcs,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await measureFloors(Number(process.argv[2] ?? 3000)), null, 2));
}

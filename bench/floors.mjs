// The machine's floors for one audit record, each stage measured alone in this run:
// OTLP protobuf decode, canonicalization + RFC 6962 leaf hash, and a synced LevelDB batch
// write. Alternatives are measured beside them (pure-JS SHA-256, the generic RFC 8785
// canonicalizer) so the choices in the hot path are backed by numbers from the same run.
// The agent does not decode OTLP/protobuf with protobufjs, though: its fast path writes
// the canonical records straight from the wire bytes (ProtobufCanonicalizer), so a second
// floor pipeline is measured with that stage in place of the first two.
import { createHash, hash as oneShotHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { ClassicLevel } from "classic-level";
import { contextSuffix, recordJson } from "../dist/agent/otlp/canonical-record.js";
import {
  ENVELOPE_MIDDLE,
  envelopeHead,
  envelopeJson,
  envelopeTail,
} from "../dist/agent/integrity/format.js";
import { canonicalize } from "../dist/agent/integrity/jcs.js";
import { ProtobufCanonicalizer } from "../dist/agent/otlp/protobuf-canonical.js";
import { decodeLogsRequest } from "../dist/agent/otlp/protobuf-codec.js";
import { DEFAULT_CONDITIONS } from "../dist/agent/processing/audit-filter/config.js";
import { compileAuditFilter } from "../dist/agent/processing/audit-filter/predicate.js";
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

  // The fast path, as the agent runs it on OTLP/protobuf: the default audit filter and the
  // canonical record bytes from the wire in one pass, then each record's envelope written
  // around them in a reused buffer and leaf-hashed in one call, as the WAL's chaining does.
  const isAudit = compileAuditFilter({ match: "any", conditions: DEFAULT_CONDITIONS });
  const canonicalizer = new ProtobufCanonicalizer(isAudit, 1024 * 1024);
  const fastFirst = canonicalizer.canonicalize(body).records[0];
  if (
    fastFirst.toString("utf8") !==
    recordJson(records[0], contextSuffix(rl.resource, rl.schemaUrl, sl.scope, sl.schemaUrl))
  )
    throw new Error("the fast path's canonical record differs from canonical-record.ts's");
  const head = Buffer.from(`${envelopeHead("c0ffee")}${PREV}${ENVELOPE_MIDDLE}`, "latin1");
  const scratch = Buffer.alloc(1 << 20); // byte 0: the leaf hash's 0x00 prefix
  head.copy(scratch, 1);
  const fastCanonHash = await rate(ms, 512, () => {
    const texts = canonicalizer.canonicalize(body).records;
    for (let i = 0; i < texts.length; i++) {
      let w = 1 + head.length;
      scratch.set(texts[i], w);
      w += texts[i].length;
      w += scratch.write(envelopeTail(i, "1700000000000000000"), w, "latin1");
      oneShotHash("sha256", scratch.subarray(0, w));
    }
  });

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
  // The agent's own path: the fast stage (decode included) and the same synced write.
  const fastPipeline = 1 / (1 / fastCanonHash + 1 / leveldb);
  return {
    recordBytes,
    decode,
    canonHash,
    leveldb,
    pipeline,
    fastCanonHash,
    fastPipeline,
    singleSyncPerSec: singleSync,
    shaNode,
    shaNoble,
    genericJcs,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await measureFloors(Number(process.argv[2] ?? 3000)), null, 2));
}

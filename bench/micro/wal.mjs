// WAL group-commit preparation: chaining a group of canonical records (envelope, RFC 6962
// leaf hash, link to the previous record) into stored chunks, compressed in the libuv pool.
// The pure chainGroup of dist/agent/store/chaining.js is timed when the build has it; the
// durable append (the same plus a synced LevelDB write, on a tmp dir) is timed beside it,
// and alone when chainGroup is missing (the WAL was being split when this was written).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProtobufCanonicalizer } from "../../dist/agent/otlp/protobuf-canonical.js";
import { buildRequest, encodeProto } from "../records.mjs";
import { report, suite } from "./lib.mjs";

const chaining = await import("../../dist/agent/store/chaining.js").catch(() => ({}));
const chainGroup = typeof chaining.chainGroup === "function" ? chaining.chainGroup : null;

// Realistic records as the fast path hands them to the WAL: one request's 512 texts (UTF-8).
const canonicalizer = new ProtobufCanonicalizer(() => true, 1 << 20);
const request = canonicalizer.canonicalize(encodeProto(buildRequest(512, 1))).records;
const asStrings = request.map((b) => b.toString("utf8"));
const received = "1732000000123456789";
const PREV = "0".repeat(64);
const shapes = [
  { label: "a huge group: 16 requests × 512 records", requests: 16, per: 512 },
  { label: "one request of 512 records", requests: 1, per: 512 },
  { label: "32 records (under the 64 KiB compression threshold)", requests: 1, per: 32 },
];
const groupsOf = (shape, records) =>
  Array.from({ length: shape.requests }, () => ({
    records: records.slice(0, shape.per),
    receivedUnixNano: received,
  }));
const bytesOf = (shape) =>
  shape.requests * request.slice(0, shape.per).reduce((n, r) => n + r.length, 0);

/** A durable appender over whichever WAL API the build has, on a fresh tmp dir. */
async function openAppender() {
  const dir = mkdtempSync(join(tmpdir(), "bench-micro-wal-"));
  const wal = await import("../../dist/agent/store/wal.js");
  const options = { directory: dir, maxBytes: 64 * 2 ** 30 };
  let append;
  let close;
  if (typeof wal.WriteAheadLog?.open === "function") {
    const log = await wal.WriteAheadLog.open(options);
    append = (records) => log.append(records, received);
    close = () => log.close();
  } else {
    const opened = await wal.openWal(options);
    append = (records) => opened.log.append(records, received);
    close = () => opened.close();
  }
  return { append, close: async () => (await close(), rmSync(dir, { recursive: true })) };
}

const s = suite("WAL group commit: chaining + compression (chainGroup) and durable append", {
  op: "record",
  bytesOf: "canonical bytes in",
  ms: 500,
});
let appender = null;
try {
  appender = await openAppender();
} catch (err) {
  s.note(`durable append not measured: the WAL did not open (${err.message.split("\n")[0]})`);
}
for (const shape of shapes) {
  const n = shape.requests * shape.per;
  const per = { ops: n, bytes: bytesOf(shape) };
  s.group(`${shape.label} (${n} records, ${(per.bytes / 2 ** 20).toFixed(2)} MiB)`);
  if (chainGroup) {
    const buffers = groupsOf(shape, request);
    const strings = groupsOf(shape, asStrings);
    s.add(
      "chainGroup, records as UTF-8 bytes (fast path)",
      () => chainGroup("c0ffee", buffers, 0, PREV),
      per,
    );
    s.add(
      "chainGroup, records as strings (general path)",
      () => chainGroup("c0ffee", strings, 0, PREV),
      per,
    );
  }
  if (appender) {
    // One append call with all of the group's records: one synced group commit each.
    const all = Array.from({ length: shape.requests }, () => request.slice(0, shape.per)).flat();
    s.add(
      "durable append(all records): chaining + compression + synced write",
      () => appender.append(all),
      per,
    );
  }
}
if (!chainGroup)
  s.note("dist/agent/store/chaining.js has no chainGroup: only the durable append was timed.");
s.note(
  "chainGroup is timed from firstSeq 0 each call (it is pure); its chunks are deflated in the libuv pool, in parallel, from 64 KiB up.",
);
await report(s);
await appender?.close();

// The Merkle tree behind checkpoints: TreeStore.append (dist/agent/store/tree-store.js) over
// an in-memory reader, as sealing calls it (a batch of 1,000 leaf hashes per append), and the
// SHA-256 calls underneath it and under chaining: RFC 6962 interior-node hashes (65-byte
// inputs) and leaf hashes (a whole stored record), node:crypto against @noble/hashes.
import { createHash, hash as oneShotHash } from "node:crypto";
import { sha256 } from "@noble/hashes/sha2.js";
import { envelopeJson, leafHash, nodeHash } from "../../dist/agent/integrity/format.js";
import { TreeStore } from "../../dist/agent/store/tree-store.js";
import { contextSuffix, recordJson } from "../../dist/agent/otlp/canonical-record.js";
import { decodeLogsRequest } from "../../dist/agent/otlp/protobuf-codec.js";
import { buildRequest, encodeProto } from "../records.mjs";
import { assertSameBytes, report, suite } from "./lib.mjs";

/** TreeStore's reader, as test/unit/merkle.test.ts builds it: appends only read at load. */
const emptyDb = { get: async () => undefined };

const leaves = Array.from({ length: 8192 }, (_, i) =>
  createHash("sha256").update(`leaf ${i}`).digest(),
);
const s = suite("Tree tiles and SHA-256: TreeStore.append, node and leaf hashes", {
  op: "hash",
  ops: "hashes",
  bytesOf: "hash input",
});

s.group("TreeStore.append, per leaf appended (~1 interior node hash each)");
const perBatch = await TreeStore.load(emptyDb, 0);
const batch = leaves.slice(0, 1000);
s.add("append(1,000 leaves): one sealed batch", () => perBatch.append(batch), {
  ops: 1000,
  bytes: 32 * 1000,
});
const big = await TreeStore.load(emptyDb, 0);
s.add("append(8,192 leaves)", () => big.append(leaves), { ops: 8192, bytes: 32 * 8192 });
const single = await TreeStore.load(emptyDb, 0);
const one = [leaves[0]];
s.add(
  "append(1 leaf) × 1,000",
  () => {
    for (let i = 0; i < 1000; i++) single.append(one);
  },
  { ops: 1000, bytes: 32 * 1000 },
);

const [left, right] = leaves;
const NODE_PREFIX = Buffer.from([1]);
assertSameBytes(nodeHash(left, right), sha256(Buffer.concat([NODE_PREFIX, left, right])), "node");
const nodeInput = Buffer.alloc(65, 1);
const N = 1000;
s.group("RFC 6962 interior node hash, SHA-256(0x01 ‖ left ‖ right), 65 B");
s.add(
  "format.nodeHash: node:crypto hash() one-shot, reused input buffer",
  () => {
    for (let i = 0; i < N; i++) nodeHash(left, right);
  },
  { ops: N, bytes: 65 * N },
);
s.add(
  "node:crypto createHash().update ×3 .digest()",
  () => {
    for (let i = 0; i < N; i++)
      createHash("sha256").update(NODE_PREFIX).update(left).update(right).digest();
  },
  { ops: N, bytes: 65 * N },
);
s.add(
  "@noble/hashes sha256, reused input buffer",
  () => {
    for (let i = 0; i < N; i++) {
      nodeInput.set(left, 1);
      nodeInput.set(right, 33);
      sha256(nodeInput);
    }
  },
  { ops: N, bytes: 65 * N },
);

// A stored record as chaining hashes it: 0x00 ‖ the canonical envelope of a realistic record.
const request = decodeLogsRequest(encodeProto(buildRequest(1, 1)));
const rl = request.resourceLogs[0];
const sl = rl.scopeLogs[0];
const record = recordJson(sl.logRecords[0], contextSuffix(rl.resource, rl.schemaUrl, sl.scope, ""));
const envelope = Buffer.from(
  envelopeJson("c0ffee", "0".repeat(64), record, 123456, "1732000000123456789"),
);
const leafInput = Buffer.concat([Buffer.from([0]), envelope]);
assertSameBytes(leafHash(envelope), sha256(leafInput), "leaf");
const L = 100;
s.group(`RFC 6962 leaf hash, SHA-256(0x00 ‖ stored record), ${leafInput.length} B`);
s.add(
  "node:crypto hash() one-shot over the prefixed bytes (chaining)",
  () => {
    for (let i = 0; i < L; i++) oneShotHash("sha256", leafInput, "buffer");
  },
  { ops: L, bytes: leafInput.length * L },
);
s.add(
  "format.leafHash: node:crypto createHash().update ×2 .digest()",
  () => {
    for (let i = 0; i < L; i++) leafHash(envelope);
  },
  { ops: L, bytes: leafInput.length * L },
);
s.add(
  "@noble/hashes sha256 over the prefixed bytes",
  () => {
    for (let i = 0; i < L; i++) sha256(leafInput);
  },
  { ops: L, bytes: leafInput.length * L },
);
s.note(
  "TreeStore.append rows count leaves (MB/s: the 32-byte leaf hashes in); the puts it returns are dropped, not written.",
);
await report(s);

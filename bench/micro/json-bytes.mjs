// The canonical-JSON byte writers of dist/agent/integrity/json-bytes.js, each against the
// obvious alternative through strings: what a record's fields cost on the fast path.
import {
  JsonBytesWriter,
  uint64Decimal,
  writeAscii,
  writeDecimal,
  writeUint64,
} from "../../dist/agent/integrity/json-bytes.js";
import { assertSameBytes, report, suite } from "./lib.mjs";

const N = 1000; // calls per timed call, so the loop's overhead stays out of the figures
const w = new JsonBytesWriter(1 << 20);
const s = suite("JSON byte writers (integrity/json-bytes.js) vs string alternatives", {
  op: "call",
  bytesOf: "bytes written",
  ms: 250,
});

/** Runs `write` N times into a reset writer; returns the bytes one call writes. */
function bytesPerCall(write) {
  w.reset();
  write();
  return w.pos;
}

// A 200-byte audit body as the wire holds it (UTF-8), ASCII and with non-ASCII and escapes.
const asciiText =
  "User alice.3f2a@example.com changed role of account 481516 from viewer to admin via the admin console; reason: access review ticket SEC-4242, approved by bob. Session 0a1b2c3d4e5f. ".padEnd(
    200,
    ".",
  );
const mixedText =
  'Usér “zoë” 😀 changed\trole\nof "account" \\ 481516 from viewer to admin — approved by bob. '.padEnd(
    200,
    ".",
  );
for (const [label, text] of [
  ["ASCII", asciiText],
  ["non-ASCII + escapes", mixedText],
]) {
  const utf8 = Buffer.from(text, "utf8");
  const n = bytesPerCall(() => w.string(utf8, 0, utf8.length));
  assertSameBytes(w.buf.subarray(0, w.pos), Buffer.from(JSON.stringify(text)), `string ${label}`);
  const out = Buffer.allocUnsafe(n * N);
  s.group(`a ${utf8.length}-byte ${label} string value → quoted, escaped JSON (${n} B)`);
  s.add(
    "writer.string(utf8 bytes)",
    () => {
      w.reset();
      for (let i = 0; i < N; i++) w.string(utf8, 0, utf8.length);
    },
    { ops: N, bytes: n * N },
  );
  s.add(
    "utf8 → string (toString) → JSON.stringify → Buffer#write",
    () => {
      let p = 0;
      for (let i = 0; i < N; i++) p += out.write(JSON.stringify(utf8.toString("utf8")), p, "utf8");
    },
    { ops: N, bytes: n * N },
  );
}

const traceId = Buffer.from("5b8efff798038103d269b633813fc60c", "hex");
s.group("a 16-byte trace id → quoted hex (34 B)");
s.add(
  "writer.hex",
  () => {
    w.reset();
    for (let i = 0; i < N; i++) w.hex(traceId, 0, 16);
  },
  { ops: N, bytes: 34 * N },
);
const hexOut = Buffer.allocUnsafe(34 * N);
s.add(
  "Buffer#toString('hex') + Buffer#write",
  () => {
    let p = 0;
    for (let i = 0; i < N; i++) p += hexOut.write(`"${traceId.toString("hex")}"`, p, "latin1");
  },
  { ops: N, bytes: 34 * N },
);

// A timestamp in unix nanoseconds (above 2^53: the two-halves path) and a seq number.
const ns = 1_732_000_000_123_456_789n;
const lo = Number(ns & 0xffffffffn);
const hi = Number(ns >> 32n);
assertSameBytes(Buffer.from(uint64Decimal(lo, hi)), Buffer.from(ns.toString()), "uint64 timestamp");
const intOut = Buffer.allocUnsafe(21 * N);
s.group("a uint64 timestamp (unix ns, two 32-bit halves) → decimal (19 B)");
s.add(
  "writer.uint64(lo, hi)",
  () => {
    w.reset();
    for (let i = 0; i < N; i++) w.uint64(lo, hi);
  },
  { ops: N, bytes: 19 * N },
);
s.add(
  "writeUint64 (the writer's function, without its ensure())",
  () => {
    let p = 0;
    for (let i = 0; i < N; i++) p = writeUint64(intOut, p, lo, hi);
  },
  { ops: N, bytes: 19 * N },
);
s.add(
  "uint64Decimal(lo, hi) string + Buffer#write",
  () => {
    let p = 0;
    for (let i = 0; i < N; i++) p += intOut.write(uint64Decimal(lo, hi), p, "latin1");
  },
  { ops: N, bytes: 19 * N },
);
s.add(
  "BigInt: (hi << 32n) + lo, toString() + Buffer#write",
  () => {
    let p = 0;
    for (let i = 0; i < N; i++)
      p += intOut.write(((BigInt(hi) << 32n) | BigInt(lo)).toString(), p, "latin1");
  },
  { ops: N, bytes: 19 * N },
);

s.group("a seq number (7 digits) → decimal");
s.add(
  "writeDecimal",
  () => {
    let p = 0;
    for (let i = 0; i < N; i++) p = writeDecimal(intOut, p, 4_194_304 + i);
  },
  { ops: N, bytes: 7 * N },
);
s.add(
  "String(n) + Buffer#write",
  () => {
    let p = 0;
    for (let i = 0; i < N; i++) p += intOut.write(String(4_194_304 + i), p, "latin1");
  },
  { ops: N, bytes: 7 * N },
);

const member = '","timeReceivedUnixNano":"';
const memberOut = Buffer.allocUnsafe(member.length * N);
s.group(`a ${member.length}-byte ASCII member name`);
s.add(
  "writeAscii (JS loop)",
  () => {
    let p = 0;
    for (let i = 0; i < N; i++) p = writeAscii(memberOut, p, member);
  },
  { ops: N, bytes: member.length * N },
);
s.add(
  "Buffer#write(latin1)",
  () => {
    let p = 0;
    for (let i = 0; i < N; i++) p += memberOut.write(member, p, "latin1");
  },
  { ops: N, bytes: member.length * N },
);
s.note("Each call writes one value; the writer is reset between timed calls, never reallocated.");
await report(s);

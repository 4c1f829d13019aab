import { isUtf8 } from "node:buffer";
import { describe, expect, it } from "vitest";
import { contextSuffix, recordJson } from "../../agent/otlp/canonical-record.js";
import {
  decimalLength,
  int64Decimal,
  JsonBytesWriter,
  uint64Decimal,
  writeDecimal,
  writeInt64,
  writeUint64,
} from "../../agent/integrity/json-bytes.js";
import { AgentError } from "../../agent/common/errors.js";
import { auditFilterConfigSchema } from "../../agent/processing/audit-filter/config.js";
import { compileAuditFilter } from "../../agent/processing/audit-filter/predicate.js";
import { modelRecordView } from "../../agent/otlp/record-view.js";
import { ProtobufCanonicalizer } from "../../agent/otlp/protobuf-canonical.js";
import { decodeLogsRequest, otlpTypes } from "../../agent/otlp/protobuf-codec.js";
import { prng, type Rng } from "../helpers/prng.js";

/**
 * The OTLP/protobuf fast path against the general path (protobufjs decode, then the audit
 * filter on the decoded record, then canonical-record.ts): the same records classified the
 * same way and written byte for byte the same, and malformed input refused. The canonical
 * bytes themselves are also checked on random records in canonical.test.ts.
 */

type Obj = Record<string, unknown>;
const { RequestType } = otlpTypes;
const encode = (request: Obj) => RequestType.encode(RequestType.fromObject(request)).finish();

const KEYS = ["audit", "user", "action", "tenant", ""];
function value(rng: Rng): Obj | undefined {
  switch (rng.int(7)) {
    case 0:
      return { boolValue: rng.next() < 0.5 };
    case 1:
      return { stringValue: rng.pick(["true", "false", "admin", "adm", "", "x"]) };
    case 2:
      return { intValue: rng.pick([0, 1, 42, -7, "4294967338"]) }; // 2^32 + 42: not 42
    case 3:
      return { doubleValue: rng.pick([1, 42, 0.5]) };
    case 4:
      return { arrayValue: { values: [{ boolValue: true }] } };
    case 5:
      return {};
    default:
      return undefined;
  }
}
const attrs = (rng: Rng) =>
  Array.from({ length: rng.int(4) }, () => ({ key: rng.pick(KEYS), value: value(rng) }));

function randomRequest(rng: Rng): Obj {
  return {
    resourceLogs: Array.from({ length: 1 + rng.int(2) }, () => ({
      resource: rng.next() < 0.8 ? { attributes: attrs(rng) } : undefined,
      schemaUrl: rng.pick(["", "https://opentelemetry.io/schemas/1.30.0"]),
      scopeLogs: Array.from({ length: 1 + rng.int(2) }, () => ({
        scope:
          rng.next() < 0.8
            ? { name: rng.pick(["auth", "audit.lib", ""]), attributes: attrs(rng) }
            : undefined,
        logRecords: Array.from({ length: rng.int(5) }, () => ({
          attributes: attrs(rng),
          eventName: rng.pick(["", "audit.login", "auditlog", "user.login"]),
          // Out-of-range enum values (negative too) must be written as the general path does.
          severityNumber: rng.next() < 0.9 ? rng.int(25) : rng.pick([-1, -2147483648, 99]),
          severityText: rng.pick(["", "INFO", "WARN", "ERROR"]),
          body: rng.next() < 0.7 ? { stringValue: "something happened" } : undefined,
          timeUnixNano: rng.pick(["1763800000123456789", "0", "1", "9007199254740993"]),
          observedTimeUnixNano: rng.pick(["0", "18446744073709551615", "1763800000000000000"]),
          flags: rng.pick([0, 1, 2147483648, 4294967295]),
          droppedAttributesCount: rng.pick([0, 3, 4294967295]),
          traceId: rng.next() < 0.5 ? Buffer.alloc(16, 0xab) : undefined,
          spanId: rng.next() < 0.5 ? Buffer.alloc(8, 0xcd) : undefined,
        })),
      })),
    })),
  };
}

const CONDITIONS: unknown[] = [
  { record_attribute: "audit", equals: [true, "true"] },
  { record_attribute: "user", prefix: "adm" },
  { record_attribute: "action", exists: true },
  { record_attribute: "tenant", equals: [42, 0.5] },
  { resource_attribute: "audit", equals: true },
  { scope_attribute: "user", exists: true },
  { event_name: { prefix: "audit." } },
  { scope_name: "auth" },
  { severity_text: { equals: ["WARN", "ERROR"] } },
  { severity_number: { min: "WARN" } },
];

/** Canonical texts of the audit records, the general way. */
function generalPath(wire: Uint8Array, isAudit: ReturnType<typeof compileAuditFilter>) {
  const out: string[] = [];
  let filtered = 0;
  for (const rl of decodeLogsRequest(wire).resourceLogs) {
    for (const sl of rl.scopeLogs) {
      const suffix = contextSuffix(rl.resource, rl.schemaUrl, sl.scope, sl.schemaUrl);
      for (const lr of sl.logRecords) {
        if (isAudit(modelRecordView(lr), sl.scope, rl.resource)) out.push(recordJson(lr, suffix));
        else filtered++;
      }
    }
  }
  return { out, filtered };
}

describe("the protobuf fast path agrees with the general path", () => {
  it("classifies and writes 400 random requests identically under every kind of condition", () => {
    const rng = prng(0xfa57);
    let audit = 0;
    let dropped = 0;
    for (let i = 0; i < 400; i++) {
      const conditions = [rng.pick(CONDITIONS), rng.pick(CONDITIONS)];
      const match = rng.pick(["any", "all"]);
      const isAudit = compileAuditFilter(auditFilterConfigSchema.parse({ match, conditions }));
      const wire = encode(randomRequest(rng));
      const expected = generalPath(wire, isAudit);
      const fast = new ProtobufCanonicalizer(isAudit, 1 << 20).canonicalize(wire);
      const where = `case ${i}: ${match} ${JSON.stringify(conditions)}`;
      expect(
        fast.records.map((b) => b.toString("utf8")),
        where,
      ).toEqual(expected.out);
      expect(fast.filtered, where).toBe(expected.filtered);
      audit += expected.out.length;
      dropped += expected.filtered;
    }
    // Both outcomes were exercised in earnest.
    expect(audit).toBeGreaterThan(200);
    expect(dropped).toBeGreaterThan(200);
  });

  it("rejects audit records over the size limit and keeps the others", () => {
    const wire = encode({
      resourceLogs: [
        {
          scopeLogs: [
            {
              logRecords: [
                { eventName: "audit.a", body: { stringValue: "x".repeat(50) } },
                { eventName: "audit.b", body: { stringValue: "y".repeat(500) } },
                { eventName: "audit.c" },
              ],
            },
          ],
        },
      ],
    });
    const isAudit = compileAuditFilter(auditFilterConfigSchema.parse({}));
    const result = new ProtobufCanonicalizer(isAudit, 200).canonicalize(wire);
    expect(result.records.map((b) => JSON.parse(b.toString()).logRecord.eventName)).toEqual([
      "audit.a",
      "audit.c",
    ]);
    expect(result.rejected).toBe(1);
    expect(result.firstRejectedBytes).toBeGreaterThan(500);
  });
});

function lengthPrefixed(tag: number, bytes: Buffer): Buffer {
  const len: number[] = [];
  let n = bytes.length;
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from([tag, ...len]), bytes]);
}

describe("the protobuf fast path refuses malformed input", () => {
  const isAudit = () => true;
  const canonicalizer = new ProtobufCanonicalizer(isAudit, 1 << 20);
  const one = (record: Obj) =>
    encode({ resourceLogs: [{ scopeLogs: [{ logRecords: [record] }] }] });
  /** The bytes of a request holding one LogRecord whose bytes are `record`. */
  const wrap = (record: number[]) => {
    const scopeLogs = [0x12, record.length, ...record];
    const resourceLogs = [0x12, scopeLogs.length, ...scopeLogs];
    return new Uint8Array([0x0a, resourceLogs.length, ...resourceLogs]);
  };
  /** A request holding one LogRecord whose bytes are `record`, at any length. */
  const wrapBytes = (record: Buffer) =>
    lengthPrefixed(0x0a, lengthPrefixed(0x12, lengthPrefixed(0x12, record)));
  const refusal = (body: Uint8Array) => {
    try {
      canonicalizer.canonicalize(body);
    } catch (err) {
      expect(err).toBeInstanceOf(AgentError);
      expect((err as AgentError).code).toBe("OTLP_BAD_PROTOBUF");
      return (err as Error).message;
    }
    throw new Error("accepted malformed input");
  };

  it.each([
    ["a truncated request", one({ eventName: "audit.x" }).subarray(0, 9), /truncated/],
    ["a varint longer than 10 bytes", new Uint8Array([0x08, ...Array(11).fill(0xff)]), /varint/],
    ["field number 0", new Uint8Array([0x02, 0x00]), /field number 0/],
    ["a group wire type", new Uint8Array([0x0b]), /wire type 3/],
    ["time_unix_nano sent as a varint", wrap([0x08, 0x01]), /field 1 has wire type 0, expected 1/],
    ["attributes sent as a varint", wrap([0x30, 0x01]), /field 6 has wire type 0/],
    ["a length past the end", wrap([0x2a, 0x7f, 0x0a]), /truncated/],
    ["invalid UTF-8 in the event name", wrap([0x62, 0x02, 0xc3, 0x28]), /invalid UTF-8/],
    ["a UTF-16 surrogate in UTF-8", wrap([0x1a, 0x03, 0xed, 0xa0, 0x80]), /invalid UTF-8/],
    ["an overlong encoding", wrap([0x1a, 0x02, 0xc0, 0xaf]), /invalid UTF-8/],
    ["a 5-byte trace id", wrap([0x4a, 0x05, 1, 2, 3, 4, 5]), /trace_id must be 16 bytes/],
    ["a 4-byte span id", wrap([0x52, 0x04, 1, 2, 3, 4]), /span_id 8 bytes/],
  ])("%s", (_name, body, message) => {
    expect(refusal(body)).toMatch(message);
  });

  it("values nested deeper than 64 levels", () => {
    // Built by hand: protobufjs itself refuses to encode this deep.
    let anyValue = lengthPrefixed(0x0a, Buffer.from("deep")); // {stringValue: "deep"}
    for (let i = 0; i < 70; i++) anyValue = lengthPrefixed(0x2a, lengthPrefixed(0x0a, anyValue));
    const record = lengthPrefixed(0x2a, anyValue); // LogRecord.body
    expect(refusal(wrapBytes(record))).toMatch(/nested deeper than 64/);
  });

  it("invalid UTF-8 in an attribute value of an audit record", () => {
    const wire = Buffer.from(one({ attributes: [{ key: "k", value: { stringValue: "\u00e9" } }] }));
    const at = wire.indexOf(Buffer.from("\u00e9"));
    wire[at + 1] = 0x28; // é = c3 a9 → c3 28
    expect(refusal(wire)).toMatch(/invalid UTF-8/);
  });

  it("an attribute key sent as a varint, even when only the filter reads it", () => {
    const dropAll = new ProtobufCanonicalizer(
      compileAuditFilter(auditFilterConfigSchema.parse({})),
      1 << 20,
    );
    // LogRecord.attributes = KeyValue{key: varint 1}
    expect(() => dropAll.canonicalize(wrap([0x32, 0x02, 0x08, 0x01]))).toThrow(
      /field 1 has wire type 0, expected 2/,
    );
  });

  it("skips unknown fields", () => {
    const result = canonicalizer.canonicalize(wrap([0x98, 0x06, 0x01, 0x62, 0x01, 0x61]));
    expect(result.records.map(String)).toEqual(['{"logRecord":{"eventName":"a"}}']);
  });
});

describe("canonical bytes primitives", () => {
  it("writes 64-bit integers exactly, as BigInt does, as text and as bytes", () => {
    const rng = prng(64);
    const out = Buffer.alloc(32);
    const edges = [
      0n,
      1n,
      2n ** 32n - 1n,
      2n ** 32n,
      2n ** 53n - 1n,
      2n ** 53n,
      2n ** 63n - 1n,
      2n ** 63n,
      2n ** 64n - 1n,
    ];
    const randoms = Array.from({ length: 5000 }, () => {
      const bits = 1 + rng.int(64);
      let n = 0n;
      for (let b = 0; b < bits; b++) n = (n << 1n) | (rng.next() < 0.5 ? 1n : 0n);
      return n;
    });
    for (const n of [...edges, ...randoms]) {
      const lo = Number(n & 0xffffffffn);
      const hi = Number(n >> 32n);
      expect(uint64Decimal(lo, hi)).toBe(n.toString());
      expect(int64Decimal(lo, hi)).toBe(BigInt.asIntN(64, n).toString());
      out.fill(0x78);
      expect(out.toString("latin1", 1, writeUint64(out, 1, lo, hi))).toBe(n.toString());
      expect(out[1 + n.toString().length]).toBe(0x78);
      const signed = BigInt.asIntN(64, n).toString();
      expect(out.toString("latin1", 1, writeInt64(out, 1, lo, hi))).toBe(signed);
    }
  });

  it("writes sequence numbers in decimal as String does, at every digit boundary", () => {
    const out = Buffer.alloc(40, 0x78);
    const values = [0, 9, 10, 99, 100, 999_999, 1_000_000, 2 ** 31, 2 ** 32, 2 ** 53 - 1];
    for (let n = 1; n < 2 ** 53; n *= 7) values.push(Math.floor(n), Math.floor(n) - 1);
    for (const n of values) {
      out.fill(0x78);
      const end = writeDecimal(out, 3, n);
      expect(decimalLength(n)).toBe(String(n).length);
      expect(out.toString("latin1", 3, end)).toBe(String(n));
      expect(out[end]).toBe(0x78); // nothing written past the digits
    }
  });

  it("accepts exactly the strings node's isUtf8 accepts, and escapes as JSON.stringify", () => {
    const rng = prng(8);
    const writer = new JsonBytesWriter(16);
    let valid = 0;
    for (let i = 0; i < 20000; i++) {
      const bytes = Buffer.from(
        Array.from({ length: rng.int(6) }, () =>
          rng.next() < 0.5
            ? rng.pick([0xc2, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0x80, 0xbf, 0x9f, 0xa0, 0x90, 0x8f])
            : rng.int(256),
        ),
      );
      writer.reset();
      let ok = true;
      try {
        writer.string(bytes, 0, bytes.length);
      } catch {
        ok = false;
      }
      expect(ok, bytes.toString("hex")).toBe(isUtf8(bytes));
      if (ok) {
        valid++;
        expect(writer.buf.toString("utf8", 0, writer.pos)).toBe(
          JSON.stringify(bytes.toString("utf8")),
        );
      }
    }
    expect(valid).toBeGreaterThan(2000);
  });
});

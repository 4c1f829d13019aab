import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { contextSuffix, recordJson, toDecimal } from "../../agent/otlp/canonical-record.js";
import { checkChain } from "../../agent/integrity/chain-check.js";
import {
  CHAIN_ID_PATTERN,
  envelopeJson,
  genesisHash,
  leafHash,
  nodeHash,
} from "../../agent/integrity/format.js";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import { decodeLogsRequestJson } from "../../agent/otlp/json-codec.js";
import type {
  AnyValue,
  EntityRef,
  ExportLogsServiceRequest,
  InstrumentationScope,
  Int64,
  KeyValue,
  LogRecord,
  LongBits,
  Resource,
} from "../../agent/otlp/model.js";
import { ProtobufCanonicalizer } from "../../agent/otlp/protobuf-canonical.js";
import { decodeLogsRequest, otlpTypes } from "../../agent/otlp/protobuf-codec.js";
import { prng, type Rng } from "../helpers/prng.js";

/**
 * The canonical form of chained records (docs/integrity-format.md): the generic RFC 8785
 * serializer against the RFC's own examples, the fast OTLP serializer against the generic
 * one on random records, both decoders round-tripping its output, and the document's
 * worked example as a known-answer test.
 */

const ROOT = join(import.meta.dirname, "../..");
const acceptAll = new ProtobufCanonicalizer(() => true, Number.MAX_SAFE_INTEGER);

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const utf8 = (s: string) => Buffer.from(s, "utf8");

/** The canonical `record` text of every log record in a decoded request, in order. */
function canonicalRecords(req: ExportLogsServiceRequest): string[] {
  const out: string[] = [];
  for (const rl of req.resourceLogs) {
    for (const sl of rl.scopeLogs) {
      const suffix = contextSuffix(rl.resource, rl.schemaUrl, sl.scope, sl.schemaUrl);
      for (const lr of sl.logRecords) out.push(recordJson(lr, suffix));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// (a) RFC 8785 examples for the generic canonicalizer
// ---------------------------------------------------------------------------------------

describe("jcs.canonicalize: RFC 8785 examples", () => {
  it("§3.2.2 / §3.2.4: the sample object, its canonical text and its UTF-8 bytes", () => {
    // RFC 8785 §3.2.2 sample input, parsed from its JSON text exactly as printed.
    const input = String.raw`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }`;
    const out = canonicalize(JSON.parse(input));
    expect(out).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
    // §3.2.4: the same text as UTF-8 (the Euro sign is e2 82 ac, not an escape).
    expect(utf8(out).toString("hex")).toBe(
      [
        "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72",
        "75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a",
        "5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31",
        "65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37",
        "5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30",
        "30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d",
      ]
        .join(" ")
        .replaceAll(" ", ""),
    );
  });

  it("§3.2.3: properties sort by UTF-16 code units (the RFC's sorting example)", () => {
    const input = String.raw`{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }`;
    const out = canonicalize(JSON.parse(input));
    // Read the values in text order (Object.values would move the index-like key "1" first).
    const order = [...out.matchAll(/":"([^"]*)"/g)].map((m) => m[1]);
    expect(order).toEqual([
      "Carriage Return",
      "One",
      "Control",
      "Latin Small Letter O With Diaeresis",
      "Euro Sign",
      "Emoji: Grinning Face",
      "Hebrew Letter Dalet With Dagesh",
    ]);
    expect(out).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control",' +
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",' +
        '"\u{1f600}":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it("§3.2.3: a non-BMP key sorts by its high surrogate, not by its code point", () => {
    // U+1F600 is D83D DE00 in UTF-16, so it sorts before U+FB33 and U+FFFD even though its
    // code point is larger; code-point (or UTF-8 byte) order would put it last.
    const out = canonicalize({ "\ufffd": 3, "\u{1f600}": 2, "\ufb33": 1, "\ud7ff": 0 });
    expect(out).toBe('{"\ud7ff":0,"\u{1f600}":2,"\ufb33":1,"\ufffd":3}');
    // Prefixes sort first; nested objects are sorted too; array order is kept (§3.2.3).
    expect(canonicalize({ b: [{ z: 1, a: 2 }, 3], a: { bb: 1, b: 2, "": 0 }, ab: null })).toBe(
      '{"a":{"":0,"b":2,"bb":1},"ab":null,"b":[{"a":2,"z":1},3]}',
    );
  });

  it("§3.2.2.1 literals and §3.2.1 no whitespace", () => {
    expect(canonicalize(JSON.parse(" [ null , true , false , { } , [ ] ] "))).toBe(
      "[null,true,false,{},[]]",
    );
  });

  it("§3.2.2.2: strings escape only quote, backslash and U+0000..U+001F", () => {
    let controls = "";
    for (let c = 0; c < 0x20; c++) controls += String.fromCharCode(c);
    expect(canonicalize(controls)).toBe(
      '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r' +
        "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018" +
        '\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"',
    );
    // Everything else is written as is: "/" and DEL unescaped, "\u20ac" as the Euro sign
    // itself (UTF-8 e2 82 ac), non-BMP characters and U+2028/U+2029 unescaped.
    expect(canonicalize(JSON.parse(String.raw`"\"\\\/\u007f\u20ac\u2028\u2029\ud83d\ude00"`))).toBe(
      '"\\"\\\\/\u007f€\u2028\u2029😀"',
    );
    expect(utf8(canonicalize("\u20ac")).toString("hex")).toBe("22e282ac22");
  });

  it("Appendix B: number serialization of IEEE 754 values", () => {
    const table: Array<[string, string]> = [
      ["0000000000000000", "0"],
      ["8000000000000000", "0"], // minus zero
      ["0000000000000001", "5e-324"],
      ["8000000000000001", "-5e-324"],
      ["7fefffffffffffff", "1.7976931348623157e+308"],
      ["ffefffffffffffff", "-1.7976931348623157e+308"],
      ["4340000000000000", "9007199254740992"],
      ["c340000000000000", "-9007199254740992"],
      ["4430000000000000", "295147905179352830000"],
      ["44b52d02c7e14af5", "9.999999999999997e+22"],
      ["44b52d02c7e14af6", "1e+23"],
      ["44b52d02c7e14af7", "1.0000000000000001e+23"],
      ["444b1ae4d6e2ef4e", "999999999999999700000"],
      ["444b1ae4d6e2ef4f", "999999999999999900000"],
      ["444b1ae4d6e2ef50", "1e+21"],
      ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
      ["3eb0c6f7a0b5ed8d", "0.000001"],
      ["41b3de4355555553", "333333333.3333332"],
      ["41b3de4355555554", "333333333.33333325"],
      ["41b3de4355555555", "333333333.3333333"],
      ["41b3de4355555556", "333333333.3333334"],
      ["41b3de4355555557", "333333333.33333343"],
      ["becbf647612f3696", "-0.0000033333333333333333"],
      ["43143ff3c1cb0959", "1424953923781206.2"],
    ];
    for (const [bits, text] of table) {
      const d = Buffer.from(bits, "hex").readDoubleBE(0);
      expect(canonicalize(d), bits).toBe(text);
      expect(canonicalize([d]), bits).toBe(`[${text}]`);
    }
    // §3.2.2.3 examples in the text: 1e+21 switches to exponent form, 1e-7 likewise.
    expect(canonicalize(JSON.parse("[1E21, 1e20, 1e-7, 0.000001, 4.50, -0, 2e-3]"))).toBe(
      "[1e+21,100000000000000000000,1e-7,0.000001,4.5,0,0.002]",
    );
    // Appendix B marks NaN (7fffffffffffffff) and Infinity (7ff0000000000000) invalid.
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(() => canonicalize(bad)).toThrow(TypeError);
      expect(() => canonicalize({ a: [bad] })).toThrow(TypeError);
    }
  });
});

// ---------------------------------------------------------------------------------------
// (b) Property test: fast serializer == JCS, and both decoders round-trip its output
// ---------------------------------------------------------------------------------------

const U64_MAX = (1n << 64n) - 1n;

function longBits(n: bigint, unsigned: boolean): LongBits {
  const u = BigInt.asUintN(64, n);
  return {
    low: Number(u & 0xffffffffn) | 0,
    high: Number(u >> 32n) | 0,
    unsigned,
    toString: () => n.toString(),
  };
}

/** A 64-bit integer in one of the shapes the decoders produce (string, Long, number). */
function int64Shape(rng: Rng, n: bigint, unsigned: boolean): Int64 {
  const r = rng.int(3);
  if (r === 0) return longBits(n, unsigned);
  if (r === 1 && n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER))
    return Number(n);
  return n.toString();
}

function randomBig(rng: Rng): bigint {
  return (BigInt(rng.u32()) << 32n) | BigInt(rng.u32());
}

function randomInt64(rng: Rng): bigint {
  const special = [
    -9223372036854775808n,
    9223372036854775807n,
    0n,
    -1n,
    1n,
    2147483648n,
    -2147483649n,
    4294967296n,
    9007199254740993n,
    -9007199254740993n,
  ];
  if (rng.chance(0.4)) return rng.pick(special);
  if (rng.chance(0.3)) return BigInt(rng.int(2001) - 1000);
  return BigInt.asIntN(64, randomBig(rng));
}

function randomUint64(rng: Rng): bigint {
  if (rng.chance(0.3)) return 0n;
  if (rng.chance(0.2)) return rng.pick([1n, U64_MAX, 1n << 63n, (1n << 63n) - 1n, 4294967296n]);
  if (rng.chance(0.5)) return 1767268800000000000n + BigInt(rng.u32()) * 1000n;
  return randomBig(rng);
}

function randomDouble(rng: Rng): number {
  const special = [
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -0,
    0,
    5e-324,
    -5e-324,
    Number.MAX_VALUE,
    -Number.MAX_VALUE,
    1e21,
    1e-7,
    1e23,
    333333333.3333333, // RFC 8785 §3.2.2: 333333333.33333329 parses to this value
    0.1,
    2 ** 53,
    2 ** 53 + 2,
    -1.5,
  ];
  const r = rng.int(4);
  if (r === 0) return rng.pick(special);
  if (r === 1) return rng.int(2_000_001) - 1_000_000;
  if (r === 2) return (rng.next() - 0.5) * 10 ** (rng.int(40) - 20);
  const b = Buffer.alloc(8);
  b.writeUInt32BE(rng.u32(), 0);
  b.writeUInt32BE(rng.u32(), 4);
  return b.readDoubleBE(0); // any bit pattern: subnormals, huge exponents, NaN payloads
}

function randomString(rng: Rng, max = 12): string {
  const n = rng.chance(0.15) ? 0 : rng.int(max) + 1;
  let s = "";
  for (let i = 0; i < n; i++) {
    const r = rng.int(10);
    let cp: number;
    if (r <= 3)
      cp = 0x20 + rng.int(0x5f); // printable ASCII, including " and \
    else if (r === 4)
      cp = rng.chance(0.8) ? rng.int(0x20) : 0x7f; // C0 controls, DEL
    else if (r === 5) cp = rng.pick([0x22, 0x5c, 0x2f, 0x2028, 0x2029, 0xfeff, 0x20ac, 0xfffd]);
    else if (r === 6)
      cp = 0x80 + rng.int(0xd800 - 0x80); // BMP below the surrogates
    else if (r === 7)
      cp = 0xe000 + rng.int(0x10000 - 0xe000); // BMP above them
    else if (r === 8)
      cp = 0x1f300 + rng.int(0x700); // emoji
    else cp = 0x10000 + rng.int(0x100000); // any supplementary-plane code point
    s += String.fromCodePoint(cp);
  }
  return s;
}

const ANY_CASES = [
  "empty",
  "stringValue",
  "boolValue",
  "intValue",
  "doubleValue",
  "bytesValue",
  "arrayValue",
  "kvlistValue",
] as const;

function randomAnyValue(rng: Rng, depth: number): AnyValue {
  const kind = rng.pick(depth > 0 ? ANY_CASES : ANY_CASES.slice(0, 6));
  switch (kind) {
    case "empty":
      return rng.chance(0.5) ? { value: null } : {};
    case "stringValue":
      return { value: kind, stringValue: randomString(rng) };
    case "boolValue":
      return { value: kind, boolValue: rng.chance(0.5) };
    case "intValue":
      return { value: kind, intValue: int64Shape(rng, randomInt64(rng), false) };
    case "doubleValue":
      return { value: kind, doubleValue: randomDouble(rng) };
    case "bytesValue":
      return { value: kind, bytesValue: rng.bytes(rng.chance(0.2) ? 0 : rng.int(20) + 1) };
    case "arrayValue": {
      const n = rng.chance(0.25) ? 0 : rng.int(4) + 1;
      const values = Array.from({ length: n }, () => randomAnyValue(rng, depth - 1));
      return { value: kind, arrayValue: { values } };
    }
    case "kvlistValue": {
      const n = rng.chance(0.25) ? 0 : rng.int(4) + 1;
      return { value: kind, kvlistValue: { values: randomKeyValues(rng, depth - 1, n) } };
    }
  }
}

function randomKeyValues(rng: Rng, depth: number, n = rng.int(5)): KeyValue[] {
  return Array.from({ length: n }, () => ({
    key: rng.chance(0.3) ? rng.pick(["audit", "user.id", "", "http.route"]) : randomString(rng),
    value: rng.chance(0.12) ? null : randomAnyValue(rng, depth),
  }));
}

function maybe<T>(rng: Rng, p: number, make: () => T, otherwise: T): T {
  return rng.chance(p) ? make() : otherwise;
}

function randomU32(rng: Rng): number {
  return rng.pick([0, 0, 1, 7, 0xffffffff, rng.u32()]);
}

function randomLogRecord(rng: Rng): LogRecord {
  if (rng.chance(0.03)) {
    return {
      timeUnixNano: "0",
      observedTimeUnixNano: 0,
      severityNumber: 0,
      severityText: "",
      attributes: [],
      droppedAttributesCount: 0,
      flags: 0,
      traceId: new Uint8Array(0),
      spanId: new Uint8Array(0),
      eventName: "",
    };
  }
  return {
    timeUnixNano: int64Shape(rng, randomUint64(rng), true),
    observedTimeUnixNano: int64Shape(rng, randomUint64(rng), true),
    severityNumber: rng.chance(0.9) ? rng.int(25) : rng.pick([-1, -(2 ** 31), 2 ** 31 - 1, 99]),
    severityText: maybe(rng, 0.5, () => randomString(rng, 6), ""),
    body: maybe(rng, 0.7, () => randomAnyValue(rng, 3), null),
    attributes: randomKeyValues(rng, 3),
    droppedAttributesCount: randomU32(rng),
    flags: randomU32(rng),
    traceId: maybe(rng, 0.6, () => rng.bytes(16), new Uint8Array(0)),
    spanId: maybe(rng, 0.6, () => rng.bytes(8), new Uint8Array(0)),
    eventName: maybe(rng, 0.5, () => randomString(rng), ""),
  };
}

function randomEntityRef(rng: Rng): EntityRef {
  const strings = () => Array.from({ length: rng.int(3) }, () => randomString(rng, 6));
  return {
    schemaUrl: maybe(rng, 0.5, () => randomString(rng), ""),
    type: maybe(rng, 0.7, () => randomString(rng, 8), ""),
    idKeys: strings(),
    descriptionKeys: strings(),
  };
}

function randomResource(rng: Rng): Resource | null {
  if (rng.chance(0.15)) return null;
  return {
    attributes: randomKeyValues(rng, 2),
    droppedAttributesCount: randomU32(rng),
    entityRefs: Array.from({ length: rng.chance(0.5) ? 0 : rng.int(3) + 1 }, () =>
      randomEntityRef(rng),
    ),
  };
}

function randomScope(rng: Rng): InstrumentationScope | null {
  if (rng.chance(0.15)) return null;
  return {
    name: maybe(rng, 0.7, () => randomString(rng), ""),
    version: maybe(rng, 0.5, () => randomString(rng, 6), ""),
    attributes: randomKeyValues(rng, 2),
    droppedAttributesCount: randomU32(rng),
  };
}

function randomSchemaUrl(rng: Rng): string {
  const r = rng.int(3);
  if (r === 0) return "";
  if (r === 1) return `https://opentelemetry.io/schemas/1.${rng.int(40)}.0`;
  return randomString(rng);
}

type Obj = { [key: string]: JsonValue };

/**
 * An independent, deliberately plain reading of docs/integrity-format.md §3: builds the
 * `record` object member by member, to be canonicalized by the generic JCS. The fast
 * serializer must produce exactly the same text.
 */
function referenceRecord(
  lr: LogRecord,
  resource: Resource | null,
  resourceSchemaUrl: string,
  scope: InstrumentationScope | null,
  scopeSchemaUrl: string,
): JsonValue {
  const dec = (v: Int64) => (typeof v === "object" ? v.toString() : BigInt(v).toString());
  const put = (o: Obj, name: string, value: JsonValue, isDefault: boolean) => {
    if (!isDefault) o[name] = value;
  };
  const any = (v: AnyValue): Obj => {
    switch (v.value) {
      case "stringValue":
        return { stringValue: v.stringValue as string };
      case "boolValue":
        return { boolValue: v.boolValue as boolean };
      case "intValue":
        return { intValue: dec(v.intValue as Int64) };
      case "doubleValue": {
        const d = v.doubleValue as number;
        return { doubleValue: Number.isFinite(d) ? d : String(d) };
      }
      case "bytesValue":
        return { bytesValue: Buffer.from(v.bytesValue as Uint8Array).toString("base64") };
      case "arrayValue": {
        const values = v.arrayValue?.values ?? [];
        return { arrayValue: values.length ? { values: values.map(any) } : {} };
      }
      case "kvlistValue": {
        const values = v.kvlistValue?.values ?? [];
        return { kvlistValue: values.length ? { values: values.map(kv) } : {} };
      }
      default:
        return {};
    }
  };
  const kv = (k: KeyValue): Obj =>
    k.value == null ? { key: k.key } : { key: k.key, value: any(k.value) };
  const attrs = (o: Obj, list: KeyValue[]) => put(o, "attributes", list.map(kv), list.length === 0);
  const log: Obj = {};
  attrs(log, lr.attributes);
  if (lr.body != null) log.body = any(lr.body);
  put(log, "droppedAttributesCount", lr.droppedAttributesCount, lr.droppedAttributesCount === 0);
  put(log, "eventName", lr.eventName, lr.eventName === "");
  put(log, "flags", lr.flags, lr.flags === 0);
  const observed = dec(lr.observedTimeUnixNano);
  put(log, "observedTimeUnixNano", observed, observed === "0");
  put(log, "severityNumber", lr.severityNumber, lr.severityNumber === 0);
  put(log, "severityText", lr.severityText, lr.severityText === "");
  put(log, "spanId", hex(lr.spanId), lr.spanId.length === 0);
  const time = dec(lr.timeUnixNano);
  put(log, "timeUnixNano", time, time === "0");
  put(log, "traceId", hex(lr.traceId), lr.traceId.length === 0);
  const out: Obj = { logRecord: log };
  if (resource != null) {
    const r: Obj = {};
    attrs(r, resource.attributes);
    put(
      r,
      "droppedAttributesCount",
      resource.droppedAttributesCount,
      !resource.droppedAttributesCount,
    );
    const refs = resource.entityRefs.map((e) => {
      const o: Obj = {};
      put(o, "schemaUrl", e.schemaUrl, e.schemaUrl === "");
      put(o, "type", e.type, e.type === "");
      put(o, "idKeys", e.idKeys, e.idKeys.length === 0);
      put(o, "descriptionKeys", e.descriptionKeys, e.descriptionKeys.length === 0);
      return o;
    });
    put(r, "entityRefs", refs, refs.length === 0);
    out.resource = r;
  }
  put(out, "resourceSchemaUrl", resourceSchemaUrl, resourceSchemaUrl === "");
  if (scope != null) {
    const o: Obj = {};
    put(o, "name", scope.name, scope.name === "");
    put(o, "version", scope.version, scope.version === "");
    attrs(o, scope.attributes);
    put(o, "droppedAttributesCount", scope.droppedAttributesCount, !scope.droppedAttributesCount);
    out.scope = o;
  }
  put(out, "scopeSchemaUrl", scopeSchemaUrl, scopeSchemaUrl === "");
  return out;
}

/** The OTLP/JSON request carrying exactly the one record described by a canonical `record`. */
function requestFromRecord(record: Obj): Obj {
  const scopeLogs: Obj = { logRecords: [record.logRecord as JsonValue] };
  if (record.scope !== undefined) scopeLogs.scope = record.scope;
  if (record.scopeSchemaUrl !== undefined) scopeLogs.schemaUrl = record.scopeSchemaUrl;
  const resourceLogs: Obj = { scopeLogs: [scopeLogs] };
  if (record.resource !== undefined) resourceLogs.resource = record.resource;
  if (record.resourceSchemaUrl !== undefined) resourceLogs.schemaUrl = record.resourceSchemaUrl;
  return { resourceLogs: [resourceLogs] };
}

const INT64_FIELDS = new Set(["intValue", "timeUnixNano", "observedTimeUnixNano"]);
const UINT32_FIELDS = new Set(["droppedAttributesCount", "flags"]);
const SEVERITY = [
  "UNSPECIFIED",
  ...["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].flatMap((s) => [
    s,
    `${s}2`,
    `${s}3`,
    `${s}4`,
  ]),
];

/**
 * The same request as a client might spell it: snake_case keys, 64-bit integers as JSON
 * numbers, enum names, upper-case ids, unpadded URL-safe base64, explicit nulls and
 * unknown members. The decoder must normalize all of it to the same canonical text.
 */
function respell(v: JsonValue, rng: Rng, name = ""): JsonValue {
  if (Array.isArray(v)) return v.map((e) => respell(e, rng, name));
  if (v !== null && typeof v === "object") {
    const out: Obj = {};
    for (const [k, e] of Object.entries(v)) {
      const key = rng.chance(0.5) ? k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : k;
      out[key] = respell(e, rng, k);
    }
    if (rng.chance(0.1)) out.someFutureField = { nested: [1, "x"] };
    // null means "not set" in OTLP/JSON.
    if (name === "logRecords" && v.body === undefined && rng.chance(0.3)) out.body = null;
    if (name === "scopeLogs" && v.scope === undefined && rng.chance(0.3)) out.scope = null;
    return out;
  }
  if (typeof v === "string") {
    if (INT64_FIELDS.has(name) && rng.chance(0.5)) {
      const n = BigInt(v);
      if (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER))
        return Number(n);
      if (rng.chance(0.5)) return `${n < 0n ? "-" : ""}00${(n < 0n ? -n : n).toString()}`;
    }
    if ((name === "traceId" || name === "spanId") && rng.chance(0.5)) return v.toUpperCase();
    if (name === "bytesValue" && rng.chance(0.5)) {
      return Buffer.from(v, "base64").toString("base64url");
    }
  }
  if (typeof v === "number") {
    if (name === "severityNumber" && v >= 0 && v < 25 && rng.chance(0.5))
      return `SEVERITY_NUMBER_${SEVERITY[v]}`;
    if (UINT32_FIELDS.has(name) && rng.chance(0.3)) return String(v);
    if (name === "doubleValue" && rng.chance(0.2)) return String(v);
  }
  return v;
}

/** A canonical-record-shaped request made ready for protobufjs fromObject. */
function protoObject(v: JsonValue, name = ""): unknown {
  if (Array.isArray(v)) return v.map((e) => protoObject(e, name));
  if (v !== null && typeof v === "object") {
    const out: { [k: string]: unknown } = {};
    for (const [k, e] of Object.entries(v)) out[k] = protoObject(e, k);
    return out;
  }
  if (typeof v === "string") {
    if (name === "traceId" || name === "spanId") return Buffer.from(v, "hex");
    if (name === "bytesValue") return Buffer.from(v, "base64");
    if (name === "intValue") return longBits(BigInt(v), false);
    if (name === "timeUnixNano" || name === "observedTimeUnixNano")
      return longBits(BigInt(v), true);
    if (name === "doubleValue") return Number(v); // "NaN", "Infinity", "-Infinity"
  }
  return v;
}

describe("canonical records: fast serializer, JCS and both decoders agree", () => {
  // Override to explore more: CANONICAL_SEED=1234 CANONICAL_CASES=20000 npx vitest run …
  const SEED = Number(process.env.CANONICAL_SEED ?? 0x5eed_2026);
  const CASES = Number(process.env.CANONICAL_CASES ?? 600);

  it(`holds for ${CASES} random records (seed ${SEED.toString(16)})`, () => {
    const rng = prng(SEED);
    const seen: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const lr = randomLogRecord(rng);
      const resource = randomResource(rng);
      const scope = randomScope(rng);
      const rsu = randomSchemaUrl(rng);
      const ssu = randomSchemaUrl(rng);
      const text = recordJson(lr, contextSuffix(resource, rsu, scope, ssu));
      const where = `case ${i} (seed ${SEED.toString(16)})`;
      seen.push(text);

      // 1. The fast serializer's output is already RFC 8785 canonical, and it is the JCS
      //    form of an independent member-by-member reading of the mapping rules.
      const parsed = JSON.parse(text) as Obj;
      expect(canonicalize(parsed), where).toBe(text);
      expect(canonicalize(referenceRecord(lr, resource, rsu, scope, ssu)), where).toBe(text);

      // 2. OTLP/JSON round trip, as written and as a client might spell it.
      const request = requestFromRecord(parsed);
      const viaJson = canonicalRecords(decodeLogsRequestJson(utf8(JSON.stringify(request))));
      expect(viaJson, `${where}: JSON`).toEqual([text]);
      const respelled = JSON.stringify(respell(request, rng));
      const viaClientJson = canonicalRecords(decodeLogsRequestJson(utf8(respelled)));
      expect(viaClientJson, `${where}: respelled JSON ${respelled}`).toEqual([text]);

      // 3. Protobuf round trip, through both protobufjs readers (Buffer and Uint8Array).
      const { RequestType } = otlpTypes;
      const wire = RequestType.encode(RequestType.fromObject(protoObject(request) as Obj)).finish();
      expect(canonicalRecords(decodeLogsRequest(Buffer.from(wire))), `${where}: pb`).toEqual([
        text,
      ]);
      expect(canonicalRecords(decodeLogsRequest(new Uint8Array(wire))), `${where}: pb u8`).toEqual([
        text,
      ]);

      // 4. The protobuf fast path, which writes canonical bytes straight from the wire.
      const direct = acceptAll.canonicalize(wire).records.map((b) => b.toString("utf8"));
      expect(direct, `${where}: protobuf fast path`).toEqual([text]);
    }

    // The generator really reached every shape the spec names.
    const all = seen.join("\n");
    for (const shape of [
      '"doubleValue":"NaN"',
      '"doubleValue":"Infinity"',
      '"doubleValue":"-Infinity"',
      '"doubleValue":0}',
      '"intValue":"-9223372036854775808"',
      '"intValue":"9223372036854775807"',
      '"timeUnixNano":"18446744073709551615"',
      '"flags":4294967295',
      '"severityNumber":-',
      '"arrayValue":{}',
      '"kvlistValue":{}',
      '"arrayValue":{"values":[{"arrayValue"',
      '"kvlistValue":{"values":[{"key"',
      '"value":{}',
      '"body":{}',
      '"bytesValue":""',
      '"bytesValue":"',
      '"boolValue":false',
      '"stringValue":""',
      '"entityRefs":[{',
      '"descriptionKeys":[',
      '"scope":{"attributes":[',
      '"resource":{}',
      '"resourceSchemaUrl":"',
      '"scopeSchemaUrl":"',
      '"traceId":"',
      '"spanId":"',
      '{"logRecord":{}',
      "\\u0000",
      "\\u001f",
      "\\n",
      '\\"',
      "\\\\",
      "\u2028",
      "\u007f",
    ]) {
      expect(all.includes(shape), shape).toBe(true);
    }
    expect(all).toMatch(/\{"key":"(?:[^"\\]|\\.)*"\}/); // a KeyValue without value
    expect(all).toMatch(/\p{Extended_Pictographic}/u);
    expect(all).toMatch(/[\u{10000}-\u{10ffff}]/u);
  });

  it("toDecimal reads every 64-bit shape the decoders produce", () => {
    const rng = prng(7);
    for (let i = 0; i < 2000; i++) {
      const signed = randomInt64(rng);
      expect(toDecimal(longBits(signed, false))).toBe(signed.toString());
      const unsigned = randomUint64(rng);
      expect(toDecimal(longBits(unsigned, true))).toBe(unsigned.toString());
    }
  });

  it("writes the edge shapes exactly as the spec lists them", () => {
    const empty: LogRecord = {
      timeUnixNano: "0",
      observedTimeUnixNano: longBits(0n, true),
      severityNumber: 0,
      severityText: "",
      body: null,
      attributes: [],
      droppedAttributesCount: 0,
      flags: 0,
      traceId: new Uint8Array(0),
      spanId: new Uint8Array(0),
      eventName: "",
    };
    expect(recordJson(empty, contextSuffix(null, "", null, ""))).toBe('{"logRecord":{}}');
    const lr: LogRecord = {
      ...empty,
      body: {},
      attributes: [
        { key: "none" },
        { key: "empty", value: { value: null } },
        { key: "arr", value: { value: "arrayValue", arrayValue: { values: [] } } },
        { key: "kv", value: { value: "kvlistValue", kvlistValue: { values: [] } } },
        { key: "nan", value: { value: "doubleValue", doubleValue: Number.NaN } },
        { key: "-inf", value: { value: "doubleValue", doubleValue: Number.NEGATIVE_INFINITY } },
        { key: "-0", value: { value: "doubleValue", doubleValue: -0 } },
        { key: "b", value: { value: "bytesValue", bytesValue: new Uint8Array([0xfb, 0xff]) } },
        { key: "min", value: { value: "intValue", intValue: longBits(-(1n << 63n), false) } },
        { key: "f", value: { value: "boolValue", boolValue: false } },
        { key: "s", value: { value: "stringValue", stringValue: "" } },
      ],
      flags: 0xffffffff,
      timeUnixNano: longBits(U64_MAX, true),
    };
    expect(
      recordJson(
        lr,
        contextSuffix({ attributes: [], droppedAttributesCount: 0, entityRefs: [] }, "", null, ""),
      ),
    ).toBe(
      '{"logRecord":{"attributes":[{"key":"none"},{"key":"empty","value":{}},' +
        '{"key":"arr","value":{"arrayValue":{}}},{"key":"kv","value":{"kvlistValue":{}}},' +
        '{"key":"nan","value":{"doubleValue":"NaN"}},' +
        '{"key":"-inf","value":{"doubleValue":"-Infinity"}},' +
        '{"key":"-0","value":{"doubleValue":0}},{"key":"b","value":{"bytesValue":"+/8="}},' +
        '{"key":"min","value":{"intValue":"-9223372036854775808"}},' +
        '{"key":"f","value":{"boolValue":false}},{"key":"s","value":{"stringValue":""}}],' +
        '"body":{},"flags":4294967295,"timeUnixNano":"18446744073709551615"},"resource":{}}',
    );
  });
});

// ---------------------------------------------------------------------------------------
// (c) The worked example of docs/integrity-format.md §8, as a known-answer test
// ---------------------------------------------------------------------------------------

const EXAMPLE_CHAIN_ID = "billing-prod-eu1";
const EXAMPLE_RECEIVED = "1767268800125000000";
const EXAMPLE_REQUEST = {
  resourceLogs: [
    {
      resource: {
        attributes: [
          { key: "service.name", value: { stringValue: "billing-api" } },
          { key: "service.version", value: { stringValue: "4.2.1" } },
          { key: "deployment.environment.name", value: { stringValue: "production" } },
        ],
      },
      schemaUrl: "https://opentelemetry.io/schemas/1.26.0",
      scopeLogs: [
        {
          scope: { name: "com.example.billing.audit", version: "1.3.0" },
          logRecords: [
            {
              timeUnixNano: "1767268800123456789",
              observedTimeUnixNano: "1767268800123500000",
              severityNumber: 9,
              severityText: "INFO",
              eventName: "audit.user.role_granted",
              body: { stringValue: 'role "admin" granted to user 4711 by user 42' },
              attributes: [
                { key: "enduser.id", value: { stringValue: "42" } },
                { key: "target.user.id", value: { intValue: "4711" } },
                {
                  key: "roles",
                  value: {
                    arrayValue: { values: [{ stringValue: "admin" }, { stringValue: "viewer" }] },
                  },
                },
                { key: "risk.score", value: { doubleValue: 0.25 } },
                { key: "client.address", value: { stringValue: "203.0.113.7" } },
              ],
              traceId: "5B8EFFF798038103D269B633813FC60C",
              spanId: "EEE19B7EC3C1B174",
              flags: 1,
            },
            {
              timeUnixNano: "1767268800124000000",
              severityNumber: 13,
              severityText: "WARN",
              eventName: "audit.user.login_failed",
              body: {
                kvlistValue: {
                  values: [
                    { key: "user", value: { stringValue: "mallory" } },
                    { key: "attempts", value: { intValue: 3 } },
                  ],
                },
              },
              attributes: [{ key: "client.address", value: { stringValue: "198.51.100.23" } }],
            },
          ],
        },
      ],
    },
  ],
};

const EXAMPLE_GENESIS = "f7448b55e8af83cec14bd530b5149231fb852e587eaaaf5951c13f9311ffb59a";
const EXAMPLE_CONTEXT =
  '"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing-api"}},' +
  '{"key":"service.version","value":{"stringValue":"4.2.1"}},' +
  '{"key":"deployment.environment.name","value":{"stringValue":"production"}}]},' +
  '"resourceSchemaUrl":"https://opentelemetry.io/schemas/1.26.0",' +
  '"scope":{"name":"com.example.billing.audit","version":"1.3.0"}}';
const EXAMPLE_RECORD_0 =
  '{"logRecord":{"attributes":[{"key":"enduser.id","value":{"stringValue":"42"}},' +
  '{"key":"target.user.id","value":{"intValue":"4711"}},' +
  '{"key":"roles","value":{"arrayValue":{"values":[{"stringValue":"admin"},{"stringValue":"viewer"}]}}},' +
  '{"key":"risk.score","value":{"doubleValue":0.25}},' +
  '{"key":"client.address","value":{"stringValue":"203.0.113.7"}}],' +
  '"body":{"stringValue":"role \\"admin\\" granted to user 4711 by user 42"},' +
  '"eventName":"audit.user.role_granted","flags":1,"observedTimeUnixNano":"1767268800123500000",' +
  '"severityNumber":9,"severityText":"INFO","spanId":"eee19b7ec3c1b174",' +
  '"timeUnixNano":"1767268800123456789","traceId":"5b8efff798038103d269b633813fc60c"},' +
  EXAMPLE_CONTEXT;
const EXAMPLE_RECORD_1 =
  '{"logRecord":{"attributes":[{"key":"client.address","value":{"stringValue":"198.51.100.23"}}],' +
  '"body":{"kvlistValue":{"values":[{"key":"user","value":{"stringValue":"mallory"}},' +
  '{"key":"attempts","value":{"intValue":"3"}}]}},"eventName":"audit.user.login_failed",' +
  '"severityNumber":13,"severityText":"WARN","timeUnixNano":"1767268800124000000"},' +
  EXAMPLE_CONTEXT;
const EXAMPLE_LEAF_0 = "69001ffc0cea59107e227699e0134a80814a9f230e446f41680606144196d19e";
const EXAMPLE_LEAF_1 = "32fe666988ba66d5d301432531d1ea128dae25362836a9401a7b4d7e864ea40f";
// §8.5: unusual but valid spellings and values, and their canonical form.
const EDGE_CLIENT = String.raw`{
  "resource_logs": [
    {
      "resource": {
        "attributes": [{ "key": "host.name", "value": { "stringValue": "node-7" } }],
        "entity_refs": [{ "type": "host", "id_keys": ["host.name"] }]
      },
      "scopeLogs": [
        {
          "scope": { "name": "audit", "attributes": [{ "key": "lib", "value": {} }] },
          "schemaUrl": "",
          "logRecords": [
            {
              "time_unix_nano": "01767268800000000000",
              "observed_time_unix_nano": 42,
              "severityNumber": "SEVERITY_NUMBER_WARN",
              "body": null,
              "traceId": "",
              "attributes": [
                { "key": "note", "value": { "stringValue": "tab\there \u0001 \u20ac 😀" } },
                { "key": "ratio", "value": { "doubleValue": "NaN" } },
                { "key": "neg.zero", "value": { "doubleValue": -0.0 } },
                { "key": "big", "value": { "doubleValue": 1e21 } },
                { "key": "small", "value": { "doubleValue": 1e-7 } },
                { "key": "min", "value": { "intValue": "-9223372036854775808" } },
                { "key": "raw", "value": { "bytesValue": "-_8" } },
                { "key": "list", "value": { "arrayValue": {} } },
                { "key": "map", "value": { "kvlistValue": { "values": [] } } },
                { "key": "unset", "value": {} },
                { "key": "no.value" },
                { "key": "off", "value": { "boolValue": false } }
              ],
              "flags": "256",
              "dropped_attributes_count": 0,
              "spanId": "00F067AA0BA902B7"
            }
          ]
        }
      ]
    }
  ]
}`;
const EDGE_RECORD =
  '{"logRecord":{"attributes":[{"key":"note","value":{"stringValue":"tab\\there \\u0001 € 😀"}},{"key":"ratio","value":{"doubleValue":"NaN"}},{"key":"neg.zero","value":{"doubleValue":0}},{"key":"big","value":{"doubleValue":1e+21}},{"key":"small","value":{"doubleValue":1e-7}},{"key":"min","value":{"intValue":"-9223372036854775808"}},{"key":"raw","value":{"bytesValue":"+/8="}},{"key":"list","value":{"arrayValue":{}}},{"key":"map","value":{"kvlistValue":{}}},{"key":"unset","value":{}},{"key":"no.value"},{"key":"off","value":{"boolValue":false}}],"flags":256,"observedTimeUnixNano":"42","severityNumber":13,"spanId":"00f067aa0ba902b7","timeUnixNano":"1767268800000000000"},"resource":{"attributes":[{"key":"host.name","value":{"stringValue":"node-7"}}],"entityRefs":[{"idKeys":["host.name"],"type":"host"}]},"scope":{"attributes":[{"key":"lib","value":{}}],"name":"audit"}}';
const envelope = (prev: string, record: string, seq: number) =>
  `{"chainId":"${EXAMPLE_CHAIN_ID}","prev":"${prev}","record":${record},"seq":"${seq}",` +
  `"timeReceivedUnixNano":"${EXAMPLE_RECEIVED}","v":1}`;
const EXAMPLE_LINE_0 = envelope(EXAMPLE_GENESIS, EXAMPLE_RECORD_0, 0);
const EXAMPLE_LINE_1 = envelope(EXAMPLE_LEAF_0, EXAMPLE_RECORD_1, 1);

describe("docs/integrity-format.md §8 worked example", () => {
  it("the code produces the documented values", () => {
    expect(CHAIN_ID_PATTERN.test(EXAMPLE_CHAIN_ID)).toBe(true);
    const genesis = genesisHash(EXAMPLE_CHAIN_ID).toString("hex");
    expect(genesis).toBe(EXAMPLE_GENESIS);

    const records = canonicalRecords(
      decodeLogsRequestJson(utf8(JSON.stringify(EXAMPLE_REQUEST, null, 2))),
    );
    expect(records).toEqual([EXAMPLE_RECORD_0, EXAMPLE_RECORD_1]);

    const line0 = envelopeJson(EXAMPLE_CHAIN_ID, genesis, records[0]!, 0, EXAMPLE_RECEIVED);
    expect(line0).toBe(EXAMPLE_LINE_0);
    expect(hex(leafHash(utf8(line0)))).toBe(EXAMPLE_LEAF_0);
    const line1 = envelopeJson(EXAMPLE_CHAIN_ID, EXAMPLE_LEAF_0, records[1]!, 1, EXAMPLE_RECEIVED);
    expect(line1).toBe(EXAMPLE_LINE_1);
    expect(hex(leafHash(utf8(line1)))).toBe(EXAMPLE_LEAF_1);

    // Each line is its own RFC 8785 form, and the two verify as a chain.
    expect(canonicalize(JSON.parse(line0))).toBe(line0);
    expect(canonicalize(JSON.parse(line1))).toBe(line1);
    const result = checkChain([
      { text: line0, location: "example:1" },
      { text: line1, location: "example:2" },
    ]);
    expect(result).toMatchObject({
      records: 2,
      lastSeq: 1,
      lastHash: EXAMPLE_LEAF_1,
      findings: [],
    });
  });

  it("the edge-case example normalizes as documented", () => {
    expect(canonicalRecords(decodeLogsRequestJson(utf8(EDGE_CLIENT)))).toEqual([EDGE_RECORD]);
    expect(canonicalize(JSON.parse(EDGE_RECORD))).toBe(EDGE_RECORD);
  });

  it("the protobuf encoding of the same request gives the same records", () => {
    const { RequestType } = otlpTypes;
    const pb = protoObject(JSON.parse(JSON.stringify(EXAMPLE_REQUEST)) as JsonValue) as Obj;
    // The example's one JSON-number int64 (attempts: 3) and upper-case ids are fine here.
    const wire = RequestType.encode(RequestType.fromObject(pb)).finish();
    expect(canonicalRecords(decodeLogsRequest(wire))).toEqual([EXAMPLE_RECORD_0, EXAMPLE_RECORD_1]);
    expect(acceptAll.canonicalize(wire).records.map((b) => b.toString("utf8"))).toEqual([
      EXAMPLE_RECORD_0,
      EXAMPLE_RECORD_1,
    ]);
  });

  it("the document shows exactly these values", () => {
    const doc = readFileSync(join(ROOT, "docs/integrity-format.md"), "utf8");
    for (const value of [
      EXAMPLE_CHAIN_ID,
      EXAMPLE_RECEIVED,
      EXAMPLE_GENESIS,
      EXAMPLE_RECORD_0,
      EXAMPLE_LINE_0,
      EXAMPLE_LINE_1,
      EXAMPLE_LEAF_0,
      EXAMPLE_LEAF_1,
      JSON.stringify(EXAMPLE_REQUEST, null, 2),
      utf8(`otel-audit-chain:v1:genesis:${EXAMPLE_CHAIN_ID}`).toString("hex"),
      hex(leafHash(new Uint8Array(0))),
      EDGE_CLIENT,
      EDGE_RECORD,
    ]) {
      expect(doc.includes(value), value.slice(0, 80)).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------
// (d) Hash known answers
// ---------------------------------------------------------------------------------------

describe("hash constructions", () => {
  it("leafHash is the RFC 6962 §2.1 leaf hash", () => {
    // MTH({}) of a single empty leaf: SHA-256(0x00).
    expect(hex(leafHash(new Uint8Array(0)))).toBe(
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    );
    expect(hex(leafHash(Buffer.from("00", "hex")))).toBe(
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    );
  });

  it("nodeHash reproduces the RFC 6962 reference tree roots", () => {
    // The leaves of the certificate-transparency reference tests (RFC 6962 test data).
    const leaves = [
      "",
      "00",
      "10",
      "2021",
      "3031",
      "40414243",
      "5051525354555657",
      "606162636465666768696a6b6c6d6e6f",
    ].map((h) => leafHash(Buffer.from(h, "hex")));
    const [l0, l1, l2, l3, l4, l5, l6, l7] = leaves as [
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
    ];
    const n01 = nodeHash(l0, l1);
    const n0123 = nodeHash(n01, nodeHash(l2, l3));
    expect(hex(n01)).toBe("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125");
    expect(hex(nodeHash(n01, l2))).toBe(
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    );
    expect(hex(n0123)).toBe("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7");
    expect(hex(nodeHash(n0123, nodeHash(nodeHash(l4, l5), nodeHash(l6, l7))))).toBe(
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    );
  });

  it("genesisHash is SHA-256 of the domain-separated chain id", () => {
    expect(genesisHash(EXAMPLE_CHAIN_ID).toString("hex")).toBe(EXAMPLE_GENESIS);
    // A generated chain id (16 random bytes as hex, wal.ts); values from `sha256sum`.
    expect(genesisHash("3f2c9a0d6b1e4f7a8c5d2e1f0a9b8c7d").toString("hex")).toBe(
      "452ca3b1aec3521f74e33525231737b92697941b9e7134e2983be39382ea7f2e",
    );
  });
});

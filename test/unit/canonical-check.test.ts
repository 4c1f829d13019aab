import { describe, expect, it } from "vitest";
import {
  type EnvelopeHeader,
  isCanonicalJson,
  matchEnvelope,
  receivedOf,
  scanEnvelope,
} from "../../agent/integrity/canonical-check.js";
import { parseEnvelope } from "../../agent/integrity/chain-check.js";
import { envelopeJson, sourceJson } from "../../agent/integrity/format.js";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import { prng, type Rng } from "../helpers/prng.js";

/**
 * The verifier's one-scan canonical check (agent/chain/canonical-check.ts) against the
 * generic definition, canonicalize(JSON.parse(text)) === text: on hand-picked edge cases,
 * on random JSON written canonically and respelled, on random single-character edits, and
 * on record envelopes (both the OTLP-shaped pattern and the generic scan).
 */

function generic(text: string): boolean {
  try {
    return canonicalize(JSON.parse(text) as JsonValue) === text;
  } catch {
    return false; // not JSON, or a number RFC 8785 cannot write (1e400)
  }
}

function header(text: string): EnvelopeHeader | null {
  const env = parseEnvelope(text);
  if (typeof env === "string") return null;
  const { chainId, prev, seq, v, timeReceivedUnixNano } = env;
  return { chainId, prev, seq, v, timeReceivedUnixNano };
}

const SEED = Number(process.env.CANONICAL_SEED ?? 0xc0ffee);
const CASES = Number(process.env.CANONICAL_CASES ?? 1500);

const CHARS = [
  "a",
  "Z",
  "0",
  " ",
  '"',
  "\\",
  "/",
  "\b",
  "\t",
  "\n",
  "\f",
  "\r",
  "\u0000",
  "\u0001",
  "\u000b",
  "\u001f",
  "\u007f",
  "é",
  "€",
  "\u2028",
  "\ufeff",
  "\ufffd",
  "\ufb33",
  "中",
  "😀",
  "\u{10ffff}",
  "\ud800",
  "\udbff",
  "\udc00",
  "\udfff",
];
const KEYS = [
  "",
  "a",
  "b",
  "aa",
  "ab",
  "B",
  "key",
  "value",
  "1",
  "10",
  "2",
  "é",
  "€",
  "😀",
  "\ufb33",
  "\ud7ff",
  "\ufffd",
  "__proto__",
  "a\u0000",
  "a\\",
];
const NUMBERS = [
  0,
  -0,
  1,
  -1,
  7,
  4.5,
  0.1,
  -1.5,
  1e21,
  1e20,
  1e-7,
  1e-6,
  0.000001,
  1e23,
  5e-324,
  -5e-324,
  Number.MAX_VALUE,
  2 ** 53,
  2 ** 53 + 2,
  123456789012345,
  1234567890123456,
  333333333.3333333,
  4294967295,
  -2147483648,
  1e15,
  1e16,
];

/**
 * Random text; lone surrogates only when `lone`. RFC 8785 has no canonical text for a string
 * holding one (I-JSON), so values with them are only ever the rejected kind.
 */
function randomString(rng: Rng, max = 8, lone = false): string {
  const chars = lone ? CHARS : CHARS.slice(0, -4);
  let s = "";
  for (let n = rng.int(max + 1); n > 0; n--) s += rng.pick(chars);
  return s;
}

/** A string for a record: well-formed, as the receivers only ever store. */
function recordString(rng: Rng, max = 8): string {
  return randomString(rng, max);
}

/** Listed values, integers, any magnitude, any bit pattern (subnormals; never NaN or ±∞). */
function randomNumber(rng: Rng): number {
  const make = [
    () => rng.pick(NUMBERS),
    () => rng.int(2_000_001) - 1_000_000,
    () => (rng.next() - 0.5) * 10 ** (rng.int(60) - 30),
    () => new Float64Array(new Uint32Array([rng.u32(), rng.u32()]).buffer)[0] as number,
  ];
  const d = rng.pick(make)();
  return Number.isFinite(d) ? d : 0;
}

function randomValue(rng: Rng, depth: number): JsonValue {
  switch (rng.int(depth > 0 ? 8 : 6)) {
    case 0:
      return rng.pick([null, true, false]);
    case 1:
    case 2:
      return randomString(rng);
    case 3:
    case 4:
    case 5:
      return randomNumber(rng);
    case 6:
      return Array.from({ length: rng.int(4) }, () => randomValue(rng, depth - 1));
    default: {
      const o: { [key: string]: JsonValue } = {};
      for (let n = rng.int(5); n > 0; n--) {
        const key = rng.chance(0.6) ? rng.pick(KEYS) : randomString(rng, 4);
        // defineProperty: "__proto__" becomes a member, as JSON.parse makes it.
        Object.defineProperty(o, key, {
          value: randomValue(rng, depth - 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return o;
    }
  }
}

/** Another spelling of a string: every character possibly escaped some other way. */
function respellString(rng: Rng, s: string): string {
  let out = '"';
  for (const ch of s.split("")) {
    const code = ch.charCodeAt(0);
    const r = rng.int(12);
    if (r === 0) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else if (r === 1) out += `\\u${code.toString(16).padStart(4, "0").toUpperCase()}`;
    else if (r === 2 && ch === "/") out += "\\/";
    else if (r === 3)
      out += ch; // raw, even where JSON needs an escape
    else out += JSON.stringify(ch).slice(1, -1);
  }
  return `${out}"`;
}

function respellNumber(rng: Rng, d: number): string {
  const plain = JSON.stringify(d);
  switch (rng.int(8)) {
    case 0:
      return d.toExponential();
    case 1:
      return plain.toUpperCase();
    case 2:
      return plain.replace("e+", "e");
    case 3:
      return plain.includes(".") ? `${plain}0` : `${plain}.0`;
    case 4:
      return Object.is(d, 0) ? "-0" : `0${plain}`;
    case 5:
      return d.toPrecision(17);
    default:
      return plain;
  }
}

/** The value written with random deviations from RFC 8785, some of which cancel out. */
function respell(rng: Rng, v: JsonValue): string {
  const ws = () => (rng.chance(0.03) ? rng.pick([" ", "\n", "\t"]) : "");
  if (v === null || typeof v === "boolean") return ws() + String(v) + ws();
  if (typeof v === "number") return ws() + respellNumber(rng, v) + ws();
  if (typeof v === "string") return rng.chance(0.3) ? respellString(rng, v) : JSON.stringify(v);
  if (Array.isArray(v)) return `[${ws()}${v.map((x) => respell(rng, x)).join(",")}]`;
  let keys = Object.keys(v).sort();
  if (rng.chance(0.2)) keys = keys.reverse();
  if (rng.chance(0.1) && keys.length > 0) keys.push(keys[0] as string); // a repeated member
  const members = keys.map(
    (k) =>
      `${ws()}${rng.chance(0.2) ? respellString(rng, k) : JSON.stringify(k)}:${respell(rng, v[k] as JsonValue)}`,
  );
  return `{${members.join(",")}${ws()}}`;
}

const EDIT_CHARS = [
  ...'{}[]:,"\\ 0123456789-+.eEtrufalsn/u',
  "\u0000",
  "\u001f",
  "\ud800",
  "\udc00",
  "é",
  "😀",
];

function edit(rng: Rng, text: string): string {
  const at = rng.int(text.length + 1);
  const ch = rng.pick(EDIT_CHARS);
  switch (rng.int(3)) {
    case 0:
      return text.slice(0, at) + ch + text.slice(at);
    case 1:
      return text.slice(0, at) + text.slice(at + 1);
    default:
      return text.slice(0, at) + ch + text.slice(at + 1);
  }
}

describe("isCanonicalJson agrees with canonicalize(JSON.parse(text)) === text", () => {
  it("on edge cases", () => {
    const accepted = [
      "{}",
      "[]",
      '""',
      "0",
      "-1",
      "true",
      "null",
      "1e+21",
      "1e-7",
      "0.000001",
      "4.5",
      "-1.5",
      "123456789012345",
      "9007199254740992",
      "5e-324",
      "1.7976931348623157e+308",
      "333333333.3333333",
      '"\\u001f"',
      '"\\u0000"',
      '"\\b\\t\\n\\f\\r"',
      '"\\\\"',
      '"\\""',
      '"/"',
      '"\u007f"',
      '"😀"',
      '"\u2028"',
      '"é€"',
      '{"":0,"a":1}',
      '{"a":1,"b":[2,{"c":null}]}',
      '{"\u20ac":1,"😀":2,"\ufb33":3}',
      '{"1":1,"10":2,"2":3}',
      '{"__proto__":1}',
      "[[[[[]]]]]",
    ];
    const rejected = [
      "",
      " {}",
      "{} ",
      "{ }",
      "[1 ]",
      "[1,]",
      "[,1]",
      '{"a":1,}',
      '{"a" :1}',
      '{"b":1,"a":2}',
      '{"a":1,"a":1}',
      '{"a":1,"a":2}',
      '{"😀":2,"\u20ac":1}',
      '{"\ufb33":3,"😀":2}',
      '{"10":2,"2":3,"1":1}',
      "1E21",
      "1e21",
      "1e+021",
      "-0",
      "0.10",
      "01",
      "1.0",
      "+1",
      ".5",
      "1.",
      "9007199254740993",
      "1234567890123456789",
      "1e400",
      "-1e400",
      "NaN",
      "Infinity",
      '"\\/"',
      // Lone surrogates, escaped (RFC 8785 §3.1: I-JSON strings are well-formed Unicode).
      '"\\ud800"',
      '"\\udc00x"',
      '"\\udbff\\udbff"',
      '{"\\ud800":1}',
      '"\\u0041"',
      '"\\u001F"',
      '"\\u0008"',
      '"\\u000a"',
      '"\t"',
      '"\u0000"',
      '"\\ud83d\\ude00"',
      '"\\uD800"',
      '"\ud800"',
      '"\udc00"',
      '"\ud800\\udc00"',
      '"\\ud800\udc00"',
      '"abc',
      '"\\"',
      "tru",
      "nul",
      '{"a":1}x',
      "[1][2]",
      '{"a"}',
      '{"a":}',
      "{,}",
      '"\\x41"',
      '"\\U0041"',
    ];
    for (const text of accepted) {
      expect(generic(text), `generic accepts ${JSON.stringify(text)}`).toBe(true);
      expect(isCanonicalJson(text), JSON.stringify(text)).toBe(true);
    }
    for (const text of rejected) {
      expect(generic(text), `generic rejects ${JSON.stringify(text)}`).toBe(false);
      expect(isCanonicalJson(text), JSON.stringify(text)).toBe(false);
    }
  });

  it("refuses every spelling of a string holding a lone surrogate, as the generic form does", () => {
    const rng = prng(SEED + 2);
    for (let i = 0; i < 300; i++) {
      const s = `${randomString(rng, 3)}${rng.pick(["\ud800", "\udbff", "\udc00", "\udfff"])}${randomString(rng, 3)}`;
      for (const text of [JSON.stringify(s), respellString(rng, s), `{"k":${JSON.stringify(s)}}`]) {
        expect(generic(text), JSON.stringify(text)).toBe(false);
        expect(isCanonicalJson(text), JSON.stringify(text)).toBe(false);
      }
    }
  });

  it(`on ${CASES} random values, their respellings and single-character edits (seed ${SEED.toString(16)})`, () => {
    const rng = prng(SEED);
    let respelledCanonical = 0;
    let respelledNot = 0;
    for (let i = 0; i < CASES; i++) {
      const value = randomValue(rng, 4);
      const text = canonicalize(value);
      const where = `case ${i} (seed ${SEED.toString(16)})`;
      expect(isCanonicalJson(text), `${where}: ${text}`).toBe(true);
      for (let k = 0; k < 3; k++) {
        const other = respell(rng, value);
        const expected = generic(other);
        if (expected) respelledCanonical++;
        else respelledNot++;
        expect(isCanonicalJson(other), `${where}: ${JSON.stringify(other)}`).toBe(expected);
      }
      for (let k = 0; k < 5; k++) {
        const other = edit(rng, text);
        expect(isCanonicalJson(other), `${where}: ${JSON.stringify(other)}`).toBe(generic(other));
      }
    }
    // Both answers were exercised.
    expect(respelledCanonical).toBeGreaterThan(CASES / 2);
    expect(respelledNot).toBeGreaterThan(CASES / 2);
  });

  it("answers for nesting deeper than the stack allows (the generic path decides)", () => {
    const deep = `${"[".repeat(200_000)}${"]".repeat(200_000)}`;
    expect(isCanonicalJson(deep)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------
// Record envelopes
// ---------------------------------------------------------------------------------------

function otlpAny(rng: Rng, depth: number): JsonValue {
  switch (rng.int(depth > 0 ? 9 : 7)) {
    case 0:
      return {};
    case 1:
      return { stringValue: recordString(rng, 20) };
    case 2:
      return { boolValue: rng.chance(0.5) };
    case 3:
      return { intValue: String(rng.int(2 ** 31) - 2 ** 30) };
    case 4:
      return { doubleValue: rng.chance(0.5) ? rng.int(1000) : randomNumber(rng) };
    case 5:
      return { bytesValue: Buffer.from(recordString(rng)).toString("base64") };
    case 6:
      return { doubleValue: rng.pick(["NaN", "Infinity", "-Infinity"]) };
    case 7:
      return {
        arrayValue: { values: Array.from({ length: rng.int(3) }, () => otlpAny(rng, depth - 1)) },
      };
    default:
      return { kvlistValue: { values: otlpAttributes(rng, depth - 1) } };
  }
}

function otlpAttributes(rng: Rng, depth: number): JsonValue[] {
  return Array.from({ length: rng.int(4) }, () =>
    rng.chance(0.1)
      ? { key: recordString(rng) }
      : { key: recordString(rng), value: otlpAny(rng, depth) },
  );
}

/** A `record` member of the §3 shape; only what matters here: member names and nesting. */
function otlpRecord(rng: Rng): JsonValue {
  const depth = rng.pick([0, 1, 1, 1, 2, 3]);
  const logRecord: { [key: string]: JsonValue } = {};
  if (rng.chance(0.8)) logRecord.attributes = otlpAttributes(rng, depth);
  if (rng.chance(0.7)) logRecord.body = otlpAny(rng, depth);
  for (const [name, make] of [
    ["eventName", () => recordString(rng)],
    ["flags", () => rng.int(2 ** 32)],
    ["severityNumber", () => rng.int(25)],
    ["severityText", () => "INFO"],
    ["spanId", () => "eee19b7ec3c1b174"],
    ["timeUnixNano", () => "1795325185945000000"],
    ["traceId", () => "5b8efff798038103d269b633813fc60c"],
    ["droppedAttributesCount", () => 3],
    ["observedTimeUnixNano", () => "1795325185945001000"],
  ] as const)
    if (rng.chance(0.5)) logRecord[name] = make();
  const record: { [key: string]: JsonValue } = { logRecord };
  if (rng.chance(0.8))
    record.resource = {
      attributes: otlpAttributes(rng, 1),
      entityRefs: [{ idKeys: ["a"], type: "t" }],
    };
  if (rng.chance(0.3)) record.resourceSchemaUrl = "https://opentelemetry.io/schemas/1.26.0";
  if (rng.chance(0.8)) record.scope = { name: recordString(rng), version: "1.0" };
  if (rng.chance(0.3)) record.scopeSchemaUrl = recordString(rng);
  return record;
}

/** Source member names: documented ones, and others of the dotted shape or not. */
const SOURCE_KEYS = [
  "client.address",
  "tls.client.subject",
  "tls.client.hash.sha256",
  "k8s.pod.name",
  "k8s.namespace.name",
  "container.image.name",
  "a",
  "a_1.b2",
  "x.y.z",
];

/** A random valid `source` text (sourceJson sorts it), or null when it came out empty. */
function randomSource(rng: Rng): string | null {
  const members: Record<string, string> = {};
  const n = 1 + rng.int(4);
  for (let i = 0; i < n; i++) members[rng.pick(SOURCE_KEYS)] = recordString(rng) || "v";
  return sourceJson(members);
}

describe("scanEnvelope and matchEnvelope agree with parseEnvelope", () => {
  it(`on ${CASES} random envelopes and their edits (seed ${SEED.toString(16)})`, () => {
    const rng = prng(SEED + 1);
    let matched = 0;
    for (let i = 0; i < CASES; i++) {
      const record = canonicalize(otlpRecord(rng));
      // envelopeJson writes the receive time as it is given (the agent's are digits).
      const received = rng.chance(0.9)
        ? "1795325186074781000"
        : JSON.stringify(recordString(rng)).slice(1, -1);
      const prev = rng.chance(0.5) ? "0".repeat(64) : "ab".repeat(32);
      const source = rng.chance(0.5) ? randomSource(rng) : null;
      const text = envelopeJson(`chain-${i}`, prev, record, i, received, source);
      const where = `case ${i} (seed ${(SEED + 1).toString(16)}): ${text}`;
      const expected = header(text);
      expect(expected, where).not.toBe(null);
      expect(scanEnvelope(text), where).toEqual(expected);
      expect(receivedOf(text), where).toBe(expected?.timeReceivedUnixNano);
      const m = matchEnvelope(text);
      if (m !== null) {
        matched++;
        expect(m, where).toEqual(expected);
      }
      for (let k = 0; k < 6; k++) {
        const other = rng.chance(0.3)
          ? `${text.slice(0, text.indexOf('"record":') + 9)}${respell(rng, JSON.parse(record) as JsonValue)}${text.slice(text.indexOf('"record":') + 9 + record.length)}`
          : source !== null && rng.chance(0.3)
            ? text.replace(
                `"source":${source}`,
                `"source":${respell(rng, JSON.parse(source) as JsonValue)}`,
              )
            : edit(rng, text);
        const want = header(other);
        expect(scanEnvelope(other), `${where} edited: ${JSON.stringify(other)}`).toEqual(want);
        const mm = matchEnvelope(other);
        if (mm !== null) expect(mm, `${where} edited: ${JSON.stringify(other)}`).toEqual(want);
      }
    }
    // Records as the agent writes them take the pattern; fractions and deep nesting do not.
    expect(matched).toBeGreaterThan(CASES / 3);
  });

  it("the pattern takes the records the agent writes, and refuses non-canonical ones", () => {
    const record =
      '{"logRecord":{"attributes":[{"key":"audit","value":{"boolValue":true}},{"key":"n","value":{"intValue":"-4711"}},{"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"a"},{"doubleValue":-3}]}}},{"key":"m","value":{"kvlistValue":{"values":[{"key":"k"},{"key":"e","value":{}}]}}}],"body":{"stringValue":"line 1\\nline \\"2\\"\\u0001 😀 é"},"droppedAttributesCount":1,"eventName":"audit.user.login","flags":1,"observedTimeUnixNano":"1795325185945001000","severityNumber":9,"severityText":"INFO","spanId":"eee19b7ec3c1b174","timeUnixNano":"1795325185945000000","traceId":"5b8efff798038103d269b633813fc60c"},"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"pay"}}],"droppedAttributesCount":2,"entityRefs":[{"descriptionKeys":["x"],"idKeys":["a","b"],"schemaUrl":"s","type":"t"}]},"resourceSchemaUrl":"r","scope":{"attributes":[],"droppedAttributesCount":0,"name":"s","version":"1"},"scopeSchemaUrl":"u"}';
    const text = envelopeJson("c0ffee", "0".repeat(64), record, 12, "1700000000000000000");
    const want = {
      chainId: "c0ffee",
      prev: "0".repeat(64),
      seq: "12",
      v: 1,
      timeReceivedUnixNano: "1700000000000000000",
    };
    expect(header(text)).toEqual(want);
    expect(matchEnvelope(text)).toEqual(want);
    const variants = [
      text.replace('"flags":1,', ""), // still canonical: a member left out
      text.replace('"flags":1', '"flags":1.0'),
      text.replace('"doubleValue":-3', '"doubleValue":1e400'),
      text.replace('"doubleValue":-3', '"doubleValue":-3.5'), // canonical, for the generic scan
      text.replace(
        '"eventName":"audit.user.login","flags":1',
        '"flags":1,"eventName":"audit.user.login"',
      ),
      text.replace('"severityNumber":9', '"severityNumber":09'),
      text.replace('"severityNumber":9', '"severityNumber":-0'),
      text.replace("\\u0001", "\\u0001".toUpperCase()),
      text.replace("line 1\\n", "line 1\\u000a"),
      text.replace("😀", "\\ud83d\\ude00"),
      text.replace("😀", "\ud83d"),
      text.replace('"values":[{"key":"k"},', '"values":[{"key":"k"},,'),
      text.replace('{"key":"k"},{"key":"e","value":{}}]', '{"key":"k"},{"key":"e","value":{}},]'),
      text.replace('"tags"', '"tags" '),
      text.replace('"audit","value"', '"audit","key":"audit","value"'),
      text.replace('"scopeSchemaUrl":"u"}', '"scopeSchemaUrl":"u","extra":1}'),
      text.replace(',"v":1}', ',"v":2}'),
      text.replace('"seq":"12"', '"seq":"012"'),
      text.replace('"prev":"0', '"prev":"A'),
    ];
    expect(matchEnvelope(variants[0] as string)).not.toBe(null);
    for (const other of variants) {
      const expected = header(other);
      expect(scanEnvelope(other), other).toEqual(expected);
      if (expected === null) expect(matchEnvelope(other), other).toBe(null);
    }
  });
});

describe("version-2 lines: the source member (integrity-format §2.4)", () => {
  const record = '{"logRecord":{"eventName":"audit.x"}}';
  const source = '{"client.address":"10.0.0.7","k8s.pod.name":"pay-7d9f"}';
  const v2 = envelopeJson("c0ffee", "0".repeat(64), record, 3, "1700000000000000000", source);
  const v1 = envelopeJson("c0ffee", "0".repeat(64), record, 3, "1700000000000000000");

  /** What every path says of `text`: the pattern, the generic scan and parseEnvelope. */
  function verdicts(text: string) {
    const parsed = parseEnvelope(text);
    return {
      parsed: typeof parsed === "string" ? parsed : header(text),
      scanned: scanEnvelope(text),
      matched: matchEnvelope(text),
    };
  }

  it("accepts a valid one on every path, with v 2, and reads its receive time", () => {
    expect(v2).toBe(
      `{"chainId":"c0ffee","prev":"${"0".repeat(64)}","record":${record},"seq":"3","source":${source},"timeReceivedUnixNano":"1700000000000000000","v":2}`,
    );
    const want = {
      chainId: "c0ffee",
      prev: "0".repeat(64),
      seq: "3",
      v: 2,
      timeReceivedUnixNano: "1700000000000000000",
    };
    expect(verdicts(v2)).toEqual({ parsed: want, scanned: want, matched: want });
    expect(receivedOf(v2)).toBe("1700000000000000000");
    expect(parseEnvelope(v2)).toMatchObject({
      source: { "client.address": "10.0.0.7", "k8s.pod.name": "pay-7d9f" },
    });
    // A record the pattern does not take goes by the generic scan, with the same answer.
    const generic = v2.replace('"audit.x"}', '"audit.x","flags":1.5}');
    expect(matchEnvelope(generic)).toBe(null);
    expect(scanEnvelope(generic)).toEqual(header(generic));
    expect(header(generic)).not.toBe(null);
  });

  it.each([
    ["a non-string value", v2.replace('"10.0.0.7"', "7"), /source member client.address/],
    ["an empty value", v2.replace('"10.0.0.7"', '""'), /non-empty string/],
    ["an array value", v2.replace('"10.0.0.7"', '["10.0.0.7"]'), /source member/],
    [
      "unsorted names",
      v2.replace(source, '{"k8s.pod.name":"p","client.address":"a"}'),
      /canonical/,
    ],
    ["a repeated name", v2.replace(source, '{"a":"1","a":"2"}'), /repeated member name/],
    ["an upper-case name", v2.replace("k8s.pod.name", "K8s.pod.name"), /dotted lowercase/],
    ["a name with a space", v2.replace("k8s.pod.name", "k8s.pod name"), /dotted lowercase/],
    ["an empty object", v2.replace(source, "{}"), /no members/],
    ["a string source", v2.replace(source, '"10.0.0.7"'), /not an object/],
    ["an unknown member", v2.replace('"source"', '"source","x":1'), /not JSON/],
    ["an unknown member too", v2.replace(',"v":2}', ',"v":2,"z":1}'), /unexpected members/],
    ["v 2 without a source", v1.replace(',"v":1}', ',"v":2}'), /version-2 line without/],
    ["v 1 with a source", v2.replace(',"v":2}', ',"v":1}'), /source in a version-1 line/],
    ["v 3", v2.replace(',"v":2}', ',"v":3}'), /unsupported format version 3/],
    [
      "source out of place",
      v2.replace(`,"source":${source}`, "").replace('{"chainId"', `{"source":${source},"chainId"`),
      /canonical/,
    ],
    ["a space", v2.replace('"source":{', '"source": {'), /canonical/],
    [
      "33 members",
      v2.replace(
        source,
        `{${Array.from({ length: 33 }, (_, i) => `"k${String(i).padStart(2, "0")}":"v"`).join(",")}}`,
      ),
      /more than 32/,
    ],
  ])("refuses %s on every path", (_what, text, problem) => {
    const { parsed, scanned, matched } = verdicts(text);
    expect(parsed).toMatch(problem);
    expect(scanned).toBe(null);
    expect(matched).toBe(null);
  });

  it("takes values with escapes and non-ASCII text in place, and 32 members", () => {
    const members: Record<string, string> = {
      "tls.client.subject": 'CN=a\\,b,O="x"\n é 😀',
      "client.address": "::1",
    };
    for (let i = 0; i < 30; i++) members[`k${i}`] = "v";
    const text = envelopeJson("c", "0".repeat(64), record, 0, "1", sourceJson(members));
    const want = header(text);
    expect(want).toMatchObject({ v: 2 });
    expect(matchEnvelope(text)).toEqual(want);
    expect(scanEnvelope(text.replace('"audit.x"}', '"audit.x","flags":1.5}'))).toMatchObject({
      v: 2,
    });
  });
});

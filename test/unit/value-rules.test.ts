import { describe, expect, it } from "vitest";
import { AgentError } from "../../agent/common/errors.js";
import {
  decodeLogsRequestJson,
  decodeLogsRequestJsonPartial,
} from "../../agent/otlp/json-codec.js";
import { MAX_ANY_VALUE_DEPTH } from "../../agent/otlp/model.js";
import {
  checkProtobufNesting,
  ProtobufCanonicalizer,
} from "../../agent/otlp/protobuf-canonical.js";
import { decodeLogsRequest, otlpTypes } from "../../agent/otlp/protobuf-codec.js";

/**
 * The rules every transport applies to values (docs/integrity-format.md §3.11), at the
 * codec level: the parts the integration tests (json-strictness, sdk-partial-success)
 * cannot reach over the wire alone.
 */

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

const text = (tag: number, s: string) => lengthPrefixed(tag, Buffer.from(s, "utf8"));
/** AnyValue{array_value{values: [inner]}}. */
const inArray = (inner: Buffer) => lengthPrefixed(0x2a, lengthPrefixed(0x0a, inner));
function deepValue(levels: number): Buffer {
  let v = text(0x0a, "x");
  for (let i = 1; i < levels; i++) v = inArray(v);
  return v;
}
/** A request with one ResourceLogs holding `resource` (bytes, optional) and `records`. */
function request(records: Buffer[], resource?: Buffer): Buffer {
  const scopeLogs = Buffer.concat(records.map((r) => lengthPrefixed(0x12, r)));
  const rl = Buffer.concat([
    resource ? lengthPrefixed(0x0a, resource) : Buffer.alloc(0),
    lengthPrefixed(0x12, scopeLogs),
  ]);
  return lengthPrefixed(0x0a, rl);
}
const auditRecord = (body: Buffer) =>
  Buffer.concat([text(0x62, "audit.x"), lengthPrefixed(0x2a, body)]);
const otherRecord = (body: Buffer) =>
  Buffer.concat([text(0x62, "app.x"), lengthPrefixed(0x2a, body)]);

const auditOnly = (record: { eventName: string }) => record.eventName.startsWith("audit.");

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return (err as Error).message;
  }
  throw new Error("accepted");
}

describe("protobuf: the nesting and oneof rules", () => {
  it("is the shared constant, 64 levels", () => {
    expect(MAX_ANY_VALUE_DEPTH).toBe(64);
  });

  it("the fast path reads only what it stores: a too-deep value of a non-audit record is dropped unread", () => {
    const body = request([otherRecord(deepValue(65)), auditRecord(text(0x0a, "ok"))]);
    const result = new ProtobufCanonicalizer(auditOnly, 1 << 20).canonicalize(body);
    expect(result.records.map(String)).toEqual([
      '{"logRecord":{"body":{"stringValue":"ok"},"eventName":"audit.x"}}',
    ]);
    expect(result.filtered).toBe(1);
  });

  it("the pass-through path checks every value of the request before protobufjs decodes it", () => {
    const body = request([auditRecord(text(0x0a, "ok")), otherRecord(deepValue(65))]);
    expect(refusal(() => checkProtobufNesting(body))).toMatch(
      /resourceLogs\[0\]\.scopeLogs\[0\]\.logRecords\[1\]\.body\.arrayValue\.values\[0\].*: values nested deeper than 64 levels$/,
    );
    const fine = request([otherRecord(deepValue(64))]);
    expect(() => checkProtobufNesting(fine)).not.toThrow();
    // protobufjs is given the room a 64-level value takes (its own default is 100 messages).
    expect(decodeLogsRequest(fine).resourceLogs[0]?.scopeLogs[0]?.logRecords).toHaveLength(1);
  });

  it("a mistyped field around a value is refused, so protobufjs cannot read bytes that were not checked", () => {
    // Resource{attributes: KeyValue{key: "k", value sent as a varint}}
    const kv = Buffer.concat([text(0x0a, "k"), Buffer.from([0x10, 0x05])]);
    const body = request([auditRecord(text(0x0a, "ok"))], lengthPrefixed(0x0a, kv));
    const canonicalizer = new ProtobufCanonicalizer(() => true, 1 << 20);
    expect(refusal(() => canonicalizer.canonicalize(body))).toMatch(
      /field 2 has wire type 0, expected 2/,
    );
    expect(refusal(() => checkProtobufNesting(body))).toMatch(/field 2 has wire type 0/);
  });

  it("an AnyValue setting two different fields is refused wherever it is; one field twice is last-wins", () => {
    const two = Buffer.concat([text(0x0a, "a"), Buffer.from([0x18, 0x05])]);
    const canonicalizer = new ProtobufCanonicalizer(() => true, 1 << 20);
    const inScope = request([
      Buffer.concat([
        text(0x62, "audit.x"),
        lengthPrefixed(
          0x32,
          Buffer.concat([text(0x0a, "k"), lengthPrefixed(0x12, inArray(inArray(two)))]),
        ),
      ]),
    ]);
    expect(refusal(() => canonicalizer.canonicalize(inScope))).toBe(
      "request is not a valid protobuf ExportLogsServiceRequest: resourceLogs[0].scopeLogs[0].logRecords[0].attributes[0].value.arrayValue.values[0].arrayValue.values[0]: an AnyValue with more than one of its value fields set",
    );
    const twice = request([auditRecord(Buffer.concat([text(0x0a, "a"), text(0x0a, "b")]))]);
    expect(canonicalizer.canonicalize(twice).records.map(String)).toEqual([
      '{"logRecord":{"body":{"stringValue":"b"},"eventName":"audit.x"}}',
    ]);
    const { RequestType } = otlpTypes;
    expect(RequestType.toObject(RequestType.decode(twice)).resourceLogs[0].scopeLogs[0]).toEqual({
      logRecords: [{ eventName: "audit.x", body: { stringValue: "b" } }],
    });
  });
});

describe("OTLP/JSON decoding", () => {
  const wrap = (value: string) =>
    Buffer.from(
      `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"attributes":[{"key":"k","value":${value}}]}]}]}]}`,
    );

  it("reads integers from the number's text, not through a double", () => {
    const value = (v: string) =>
      decodeLogsRequestJson(wrap(v)).resourceLogs[0]?.scopeLogs[0]?.logRecords[0]?.attributes[0]
        ?.value;
    expect(value('{"intValue":-9007199254740991}')).toEqual({
      value: "intValue",
      intValue: "-9007199254740991",
    });
    expect(value('{"intValue":12.5e1}')).toEqual({ value: "intValue", intValue: "125" });
    expect(value('{"intValue":-0}')).toEqual({ value: "intValue", intValue: "0" });
    expect(value('{"intValue":0e99999999999}')).toEqual({ value: "intValue", intValue: "0" });
    expect(() => decodeLogsRequestJson(wrap('{"intValue":1e-99999999999}'))).toThrow(
      /expected an integer/,
    );
  });

  it("refuses absurd numbers as values beyond their range, without computing them", () => {
    for (const v of ['{"intValue":1e99999999999}', `{"intValue":"${"9".repeat(100_000)}"}`]) {
      const started = performance.now();
      const { refused } = decodeLogsRequestJsonPartial(wrap(v));
      expect(refused?.message).toMatch(/is outside the int64 range/);
      expect(performance.now() - started).toBeLessThan(500);
    }
  });

  it("the strict decoder refuses what the partial one refuses per record", () => {
    expect(() => decodeLogsRequestJson(wrap('{"intValue":1e21}'))).toThrow(
      /intValue: 1e21 is outside the int64 range/,
    );
  });

  it("a member named __proto__ is an unknown member like any other (and is not assigned)", () => {
    const body = (members: string) =>
      Buffer.from(
        `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{${members}"eventName":"audit.p"}]}]}]}`,
      );
    const record = decodeLogsRequestJson(body('"__proto__":{"eventName":"x"},')).resourceLogs[0]
      ?.scopeLogs[0]?.logRecords[0];
    expect(record?.eventName).toBe("audit.p");
    expect(() => decodeLogsRequestJson(body('"__proto__":1,"__proto__":2,'))).toThrow(
      /member "__proto__" appears more than once/,
    );
  });

  it("a repeated member is reported once the request is decoded, so another error wins", () => {
    const body = Buffer.from(
      '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"flags":1,"flags":"x"}]}]}]}',
    );
    expect(() => decodeLogsRequestJson(body)).toThrow(
      /logRecords\[0\]\.flags: expected an integer/,
    );
    const dup = Buffer.from('{"resourceLogs":[],"resourceLogs":[]}');
    expect(() => decodeLogsRequestJson(dup)).toThrow(
      /request: member "resourceLogs" appears more than once/,
    );
  });
});

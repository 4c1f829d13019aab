import { isUtf8 } from "node:buffer";
import { AgentError } from "../common/errors.js";
import { utf8SequenceLength } from "../integrity/json-bytes.js";
import {
  type AnyValue,
  type EntityRef,
  type ExportLogsServiceRequest,
  type InstrumentationScope,
  type KeyValue,
  type LogRecord,
  MAX_ANY_VALUE_DEPTH,
  type Resource,
  type ResourceLogs,
  type ScopeLogs,
} from "./model.js";

/**
 * OTLP/JSON decoding (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).
 *
 * The record stored is exactly what the client sent, or it is refused
 * (docs/integrity-format.md §3.11 lists every refusal):
 *
 * - The body is parsed here, not by JSON.parse, which would replace ill-formed UTF-8 with
 *   U+FFFD, round every number to a double (2^53 + 1, 1e400 → Infinity) and let a repeated
 *   member silently win. This parser refuses ill-formed UTF-8 and repeated members, keeps
 *   each number's text so integers are read exactly, and stops at MAX_JSON_DEPTH.
 * - Strict about types and spellings: a value of the wrong type, an integer string that is
 *   not decimal digits, a double string that is not a JSON number, more AnyValue levels
 *   than MAX_ANY_VALUE_DEPTH: each refuses the request (OTLP_BAD_JSON, HTTP 400), naming
 *   its path.
 * - A well-formed number in an AnyValue that its type cannot hold exactly (an intValue
 *   outside int64, or a JSON-number intValue beyond ±(2^53−1); a doubleValue beyond the
 *   double range) refuses only the records it belongs to: they are left out of the request
 *   and reported as refused, so the client gets an OTLP partial success, not a 400 that
 *   would lose the batch's other records.
 * - Lenient about spelling where the value is unchanged, like the Collector:
 *   lowerCamelCase or the proto's snake_case names (not both), 64-bit integers as decimal
 *   strings or JSON numbers, enums as integers or names, `null` as "not set". Unknown
 *   members are ignored, as protojson's DiscardUnknown does.
 */

/** A JSON number, kept as its text so integers are read exactly rather than as a double. */
class JsonNumber {
  constructor(readonly text: string) {}
}

type Json = null | boolean | string | JsonNumber | Json[] | JsonObject;
/** A JSON object's members, as own properties (a member named `__proto__` is not kept). */
type JsonObject = { [name: string]: Json };

/**
 * The deepest JSON nesting the parser follows: room for MAX_ANY_VALUE_DEPTH levels of
 * kvlistValues (four JSON levels each) under the envelope, so a too-deep AnyValue is
 * normally reported by the AnyValue check, and nothing deeper is ever recursed into.
 */
const MAX_JSON_DEPTH = 4 * MAX_ANY_VALUE_DEPTH + 16;

const EMPTY = new Uint8Array(0);
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
/** The integers every JSON implementation reads and writes exactly (RFC 7493 §2.2). */
const JSON_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** An integer whose magnitude is beyond any 64-bit range, not worth computing exactly. */
const HUGE = Symbol("huge");

/** Decimal digits with an optional minus; leading zeros denote the same integer. */
const DECIMAL = /^-?\d+$/;
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const NUMBER_PARTS = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/** The request is not a valid ExportLogsServiceRequest: refused whole (HTTP 400). */
class JsonShapeError extends Error {}
/** The body is not JSON text. */
class JsonSyntaxError extends Error {}
/** Thrown by the parser when it reaches the string at the position it was asked to locate. */
class Located extends Error {
  constructor(readonly path: string) {
    super(path);
  }
}

// ---------------------------------------------------------------------------------------
// The JSON parser (RFC 8259, with I-JSON's unique member names)
// ---------------------------------------------------------------------------------------

const NUMBER_TOKEN = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
// Characters a string holds as they are: not a quote, a backslash or a control character.
// eslint-disable-next-line no-control-regex -- the control characters are what it excludes
const PLAIN_CHARS = /[^"\\\u0000-\u001f]*/y;
const ESCAPES: Record<string, string> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

/** A path for a message, shortened in the middle when long (deeply nested values). */
function shortPath(path: string): string {
  return path.length > 240 ? `${path.slice(0, 160)}…${path.slice(-70)}` : path;
}

/** `resourceLogs[0].scopeLogs[1]` from its segments, shortened in the middle when long. */
function formatPath(segments: ReadonlyArray<string | number>): string {
  let out = "";
  for (const s of segments) {
    if (typeof s === "number") out += `[${s}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) out += out === "" ? s : `.${s}`;
    else out += `[${JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s)}]`;
  }
  return out === "" ? "request" : shortPath(out);
}

class JsonParser {
  /**
   * The first repeated member name, described. It refuses the request, but only once the
   * request is decoded (each name's last value counts there), so that another error in
   * the request is the one reported.
   */
  duplicate: string | null = null;
  private pos = 0;
  /** segments[d] is the member name or index leading into depth d + 1. */
  private readonly segments: Array<string | number> = [];

  /** `locate`: a position in `text`; reaching the string that holds it throws Located. */
  constructor(
    private readonly text: string,
    private readonly locate = -1,
  ) {}

  parse(): Json {
    this.space();
    const value = this.value(0);
    this.space();
    if (this.pos < this.text.length) this.fail("unexpected text after the JSON value");
    return value;
  }

  /** A value inside `depth` containers. */
  private value(depth: number): Json {
    const text = this.text;
    const c = text.charCodeAt(this.pos);
    if (c === 0x7b) return this.object(depth + 1);
    if (c === 0x5b) return this.array(depth + 1);
    if (c === 0x22) return this.string(depth);
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    for (const [word, value] of LITERALS) {
      if (text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.fail(Number.isNaN(c) ? "unexpected end of the body" : "expected a JSON value");
  }

  private object(depth: number): JsonObject {
    if (depth > MAX_JSON_DEPTH) this.tooDeep(depth);
    const text = this.text;
    const out: JsonObject = {};
    // No OTLP member is named __proto__, and assigning it would set the prototype: it is
    // only remembered, for the repeated-name check.
    let sawProto = false;
    this.pos++;
    this.space();
    if (text.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return out;
    }
    for (;;) {
      if (text.charCodeAt(this.pos) !== 0x22) this.fail("expected a member name in double quotes");
      const name = this.string(depth - 1);
      const repeated = name === "__proto__" ? sawProto : Object.hasOwn(out, name);
      if (repeated && this.duplicate === null) {
        const where = formatPath(this.segments.slice(0, depth - 1));
        this.duplicate = `${where}: member ${JSON.stringify(name)} appears more than once (JSON member names must be unique)`;
      }
      this.space();
      if (text.charCodeAt(this.pos) !== 0x3a) this.fail("expected ':' after a member name");
      this.pos++;
      this.space();
      this.segments[depth - 1] = name;
      const value = this.value(depth);
      if (name === "__proto__") sawProto = true;
      else out[name] = value;
      this.space();
      const c = text.charCodeAt(this.pos);
      if (c === 0x7d) {
        this.pos++;
        return out;
      }
      if (c !== 0x2c) this.fail("expected ',' or '}' after an object member");
      this.pos++;
      this.space();
    }
  }

  private array(depth: number): Json[] {
    if (depth > MAX_JSON_DEPTH) this.tooDeep(depth);
    const text = this.text;
    const out: Json[] = [];
    this.pos++;
    this.space();
    if (text.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.segments[depth - 1] = out.length;
      out.push(this.value(depth));
      this.space();
      const c = text.charCodeAt(this.pos);
      if (c === 0x5d) {
        this.pos++;
        return out;
      }
      if (c !== 0x2c) this.fail("expected ',' or ']' after an array element");
      this.pos++;
      this.space();
    }
  }

  /** A string at the path of `pathDepth` segments (for Located). */
  private string(pathDepth: number): string {
    const text = this.text;
    const start = this.pos + 1;
    PLAIN_CHARS.lastIndex = start;
    PLAIN_CHARS.test(text);
    let pos = PLAIN_CHARS.lastIndex;
    let out = text.slice(start, pos);
    while (text.charCodeAt(pos) === 0x5c) {
      const e = text[pos + 1] ?? "";
      if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(pos + 2, pos + 6))) {
        out += String.fromCharCode(parseInt(text.slice(pos + 2, pos + 6), 16));
        pos += 6;
      } else if (ESCAPES[e] !== undefined) {
        out += ESCAPES[e];
        pos += 2;
      } else {
        this.pos = pos;
        this.fail("invalid escape in a string");
      }
      PLAIN_CHARS.lastIndex = pos;
      PLAIN_CHARS.test(text);
      out += text.slice(pos, PLAIN_CHARS.lastIndex);
      pos = PLAIN_CHARS.lastIndex;
    }
    if (text.charCodeAt(pos) !== 0x22) {
      this.pos = pos;
      this.fail(
        pos >= text.length ? "unterminated string" : "unescaped control character in a string",
      );
    }
    this.pos = pos + 1;
    if (this.locate >= start && this.locate < pos)
      throw new Located(formatPath(this.segments.slice(0, pathDepth)));
    return out;
  }

  private number(): JsonNumber {
    NUMBER_TOKEN.lastIndex = this.pos;
    if (!NUMBER_TOKEN.test(this.text)) this.fail("invalid number");
    const token = this.text.slice(this.pos, NUMBER_TOKEN.lastIndex);
    this.pos = NUMBER_TOKEN.lastIndex;
    return new JsonNumber(token);
  }

  private space(): void {
    const text = this.text;
    let c = text.charCodeAt(this.pos);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++this.pos);
  }

  private tooDeep(depth: number): never {
    throw new JsonShapeError(
      `${formatPath(this.segments.slice(0, depth - 1))}: JSON nested deeper than ${MAX_JSON_DEPTH} levels (values may be nested at most ${MAX_ANY_VALUE_DEPTH} levels)`,
    );
  }

  private fail(what: string): never {
    throw new JsonSyntaxError(`${what} at position ${this.pos}`);
  }
}

const LITERALS: ReadonlyArray<[string, Json]> = [
  ["true", true],
  ["false", false],
  ["null", null],
];

function firstInvalidUtf8(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length;) {
    if ((bytes[i] as number) < 0x80) {
      i++;
      continue;
    }
    const n = utf8SequenceLength(bytes, i, bytes.length);
    if (n === 0) return i;
    i += n;
  }
  return -1;
}

/** The refusal of a body that is not UTF-8, naming the string that holds the bad byte. */
function notUtf8(bytes: Buffer, text: string): AgentError {
  const at = firstInvalidUtf8(bytes);
  let where = "";
  try {
    // The valid prefix decodes to the same characters in the lossy text.
    new JsonParser(text, bytes.toString("utf8", 0, at).length).parse();
  } catch (err) {
    if (err instanceof Located) where = `, in a string at ${err.path}`;
  }
  const hex = (bytes[at] as number).toString(16).padStart(2, "0");
  return new AgentError(
    "OTLP_BAD_JSON",
    `request body is not valid UTF-8 (byte 0x${hex} at offset ${at}${where}): JSON text must be UTF-8, and it is refused rather than stored with U+FFFD in its place`,
  );
}

/** The parsed body, and its first repeated member name (JsonParser.duplicate). */
function parseBody(body: Uint8Array): { json: Json; duplicate: string | null } {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const text = bytes.toString("utf8");
  if (!isUtf8(bytes)) throw notUtf8(bytes, text);
  try {
    const parser = new JsonParser(text);
    const json = parser.parse();
    return { json, duplicate: parser.duplicate };
  } catch (err) {
    if (err instanceof JsonSyntaxError)
      throw new AgentError("OTLP_BAD_JSON", `request body is not valid JSON: ${err.message}`);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

function preview(v: Json | undefined): string {
  if (v === undefined) return "nothing";
  if (v instanceof JsonNumber) return v.text.length > 40 ? `${v.text.slice(0, 40)}…` : v.text;
  if (typeof v === "string")
    return v.length > 40 ? `${JSON.stringify(v.slice(0, 40))}…` : JSON.stringify(v);
  if (Array.isArray(v)) return "an array";
  if (isObject(v)) return "an object";
  return String(v);
}

function fail(path: string, what: string, got: Json | undefined): never {
  throw new JsonShapeError(`${shortPath(path)}: expected ${what}, got ${preview(got)}`);
}

/**
 * Reads `obj[camel]` or `obj[snake]`; null counts as absent. Both spellings at once are
 * one field sent twice, and refused like any repeated member.
 */
function field(o: JsonObject, camel: string, snake: string, path: string): Json | undefined {
  // Own members only: no OTLP member name is also a property of Object.prototype.
  let v = Object.hasOwn(o, camel) ? o[camel] : undefined;
  if (snake !== camel && Object.hasOwn(o, snake)) {
    if (v !== undefined)
      throw new JsonShapeError(
        `${shortPath(path)}: both ${camel} and ${snake} are present (one field)`,
      );
    v = o[snake];
  }
  return v === null ? undefined : v;
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof JsonNumber);
}

function asObject(v: Json | undefined, path: string): JsonObject {
  if (!isObject(v)) fail(path, "an object", v);
  return v;
}

function asArray(v: Json | undefined, path: string): Json[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail(path, "an array", v);
  return v;
}

function asString(v: Json | undefined, path: string): string {
  if (v === undefined) return "";
  if (typeof v !== "string") fail(path, "a string", v);
  // RFC 8785 (and UTF-8 on the wire) cannot carry lone surrogates: refuse rather than alter.
  if (!v.isWellFormed())
    throw new JsonShapeError(
      `${shortPath(path)}: expected a well-formed Unicode string, got one with a lone surrogate (a \\ud800–\\udfff escape without its pair)`,
    );
  return v;
}

function asBool(v: Json | undefined, path: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== "boolean") fail(path, "true or false", v);
  return v;
}

/**
 * The exact integer that a JSON number's text denotes (`1e3` and `1.0e1` included), null
 * when it has a fractional part, HUGE when its magnitude is beyond 10^40.
 */
function exactInteger(text: string): bigint | null | typeof HUGE {
  const [, sign, whole, fraction = "", exponent = "0"] = NUMBER_PARTS.exec(text) as RegExpExecArray;
  let digits = `${whole}${fraction}`.replace(/^0+/, "");
  if (digits === "") return 0n;
  let scale = Number(exponent) - fraction.length;
  if (scale < 0) {
    const trailingZeros = digits.length - digits.replace(/0+$/, "").length;
    if (trailingZeros < -scale) return null;
    digits = digits.slice(0, digits.length + scale);
    scale = 0;
  }
  if (digits.length + scale > 40) return HUGE;
  const n = BigInt(digits) * 10n ** BigInt(scale);
  return sign === "-" ? -n : n;
}

/** A decimal string's integer, or HUGE past 40 significant digits (no huge BigInt parse). */
function decimalInteger(text: string): bigint | typeof HUGE {
  const significant = text.replace(/^-?0*/, "");
  return significant.length > 40 ? HUGE : BigInt(text);
}

function outside(n: bigint | typeof HUGE, min: bigint, max: bigint): boolean {
  return n === HUGE || n < min || n > max;
}

/** An integer field of the envelope or LogRecord: all its errors refuse the request. */
function parseInteger(v: Json | undefined, path: string, min: bigint, max: bigint): bigint {
  if (v === undefined) return 0n;
  let n: bigint | typeof HUGE;
  if (v instanceof JsonNumber) {
    const exact = exactInteger(v.text);
    if (exact === null) return fail(path, "an integer", v);
    n = exact;
    // A 64-bit field needs a string past ±(2^53−1); a 32-bit one is just out of range.
    if (outside(n, -JSON_SAFE, JSON_SAFE) && max > JSON_SAFE)
      fail(
        path,
        "a decimal string for an integer this large (JSON numbers above 2^53 lose precision)",
        v,
      );
  } else if (typeof v === "string" && DECIMAL.test(v)) {
    n = decimalInteger(v);
  } else {
    return fail(path, "an integer (a JSON number or a decimal string)", v);
  }
  if (outside(n, min, max)) fail(path, `an integer between ${min} and ${max}`, v);
  return n as bigint;
}

/** 64-bit values are kept as normalized decimal strings ("007" becomes "7"). */
function asUint64(v: Json | undefined, path: string): string {
  return parseInteger(v, path, 0n, U64_MAX).toString();
}

function asUint32(v: Json | undefined, path: string): number {
  return Number(parseInteger(v, path, 0n, 0xffffffffn));
}

/**
 * The first value of the record, resource or scope being decoded that cannot be stored
 * exactly. It refuses the records it belongs to, not the request.
 */
class Unrepresentable {
  first: string | null = null;
  note(path: string, what: string): void {
    this.first ??= `${shortPath(path)}: ${what}`;
  }
}

/** AnyValue.intValue: an int64, from a decimal string or an exactly carried JSON number. */
function anyInt64(v: Json, path: string, bad: Unrepresentable): string {
  let n: bigint | typeof HUGE;
  if (v instanceof JsonNumber) {
    const exact = exactInteger(v.text);
    if (exact === null) return fail(path, "an integer", v);
    n = exact;
    if (!outside(n, I64_MIN, I64_MAX) && outside(n, -JSON_SAFE, JSON_SAFE)) {
      bad.note(
        path,
        `the JSON number ${preview(v)} is beyond ±(2^53−1), where JSON numbers do not carry integers exactly; send it as a decimal string`,
      );
      return "0";
    }
  } else if (typeof v === "string" && DECIMAL.test(v)) {
    n = decimalInteger(v);
  } else {
    return fail(path, "an integer (a JSON number or a decimal string)", v);
  }
  if (outside(n, I64_MIN, I64_MAX)) {
    bad.note(path, `${preview(v)} is outside the int64 range (${I64_MIN} to ${I64_MAX})`);
    return "0";
  }
  return n.toString();
}

/** AnyValue.doubleValue: a JSON number, the same as a string, or "NaN"/"Infinity"/"-Infinity". */
function asDouble(v: Json, path: string, bad: Unrepresentable): number {
  let text: string;
  if (v instanceof JsonNumber) text = v.text;
  else if (v === "NaN") return Number.NaN;
  else if (v === "Infinity") return Number.POSITIVE_INFINITY;
  else if (v === "-Infinity") return Number.NEGATIVE_INFINITY;
  else if (typeof v === "string" && JSON_NUMBER.test(v)) text = v;
  else
    return fail(path, 'a number (or "NaN", "Infinity", "-Infinity", or a JSON number string)', v);
  // Number() of a JSON number's text is the nearest double, as JSON.parse would give.
  const d = Number(text);
  if (!Number.isFinite(d)) {
    bad.note(path, `${preview(v)} is beyond the range of a double (±1.8e308)`);
    return 0;
  }
  return d;
}

const SEVERITY_NAMES = [
  "UNSPECIFIED",
  "TRACE",
  "TRACE2",
  "TRACE3",
  "TRACE4",
  "DEBUG",
  "DEBUG2",
  "DEBUG3",
  "DEBUG4",
  "INFO",
  "INFO2",
  "INFO3",
  "INFO4",
  "WARN",
  "WARN2",
  "WARN3",
  "WARN4",
  "ERROR",
  "ERROR2",
  "ERROR3",
  "ERROR4",
  "FATAL",
  "FATAL2",
  "FATAL3",
  "FATAL4",
];

function asSeverity(v: Json | undefined, path: string): number {
  if (typeof v === "string" && v.startsWith("SEVERITY_NUMBER_")) {
    const n = SEVERITY_NAMES.indexOf(v.slice("SEVERITY_NUMBER_".length));
    if (n >= 0) return n;
  }
  if (typeof v === "string" && !DECIMAL.test(v)) {
    fail(path, "a SeverityNumber (an integer or a SEVERITY_NUMBER_* name)", v);
  }
  return Number(parseInteger(v, path, -(2n ** 31n), 2n ** 31n - 1n));
}

/** Trace and span ids are hex in OTLP/JSON (not base64 as in plain proto3 JSON). */
function asHexId(v: Json | undefined, path: string, bytes: number): Uint8Array {
  if (v === undefined || v === "") return EMPTY;
  if (typeof v !== "string" || v.length !== bytes * 2 || !/^[0-9a-fA-F]+$/.test(v)) {
    fail(path, `${bytes * 2} hex digits`, v);
  }
  return Buffer.from(v, "hex");
}

function asBase64(v: Json | undefined, path: string): Uint8Array {
  if (v === undefined) return EMPTY;
  if (typeof v !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) fail(path, "base64 bytes", v);
  const encoding = v.includes("-") || v.includes("_") ? "base64url" : "base64";
  const bytes = Buffer.from(v, encoding);
  // Node decodes leniently (dropping stray trailing bits); only accept text that re-encodes to itself.
  if (bytes.toString(encoding).replace(/=+$/, "") !== v.replace(/=+$/, ""))
    fail(path, "base64 of a valid length", v);
  return bytes;
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

/** One AnyValue at nesting `level` (1: a body or a top-level attribute's value). */
function anyValue(v: Json | undefined, path: string, level: number, bad: Unrepresentable) {
  if (level > MAX_ANY_VALUE_DEPTH)
    throw new JsonShapeError(
      `${shortPath(path)}: values nested deeper than ${MAX_ANY_VALUE_DEPTH} levels`,
    );
  const o = asObject(v, path);
  let out: AnyValue | null = null;
  const set = (value: AnyValue) => {
    if (out !== null) fail(path, "at most one of the AnyValue fields", o);
    out = value;
  };
  let x = field(o, "stringValue", "string_value", path);
  if (x !== undefined)
    set({ value: "stringValue", stringValue: asString(x, `${path}.stringValue`) });
  x = field(o, "boolValue", "bool_value", path);
  if (x !== undefined) set({ value: "boolValue", boolValue: asBool(x, `${path}.boolValue`) });
  x = field(o, "intValue", "int_value", path);
  if (x !== undefined) set({ value: "intValue", intValue: anyInt64(x, `${path}.intValue`, bad) });
  x = field(o, "doubleValue", "double_value", path);
  if (x !== undefined)
    set({ value: "doubleValue", doubleValue: asDouble(x, `${path}.doubleValue`, bad) });
  x = field(o, "bytesValue", "bytes_value", path);
  if (x !== undefined) set({ value: "bytesValue", bytesValue: asBase64(x, `${path}.bytesValue`) });
  x = field(o, "arrayValue", "array_value", path);
  if (x !== undefined) {
    const p = `${path}.arrayValue`;
    const values = asArray(field(asObject(x, p), "values", "values", p), `${p}.values`);
    set({
      value: "arrayValue",
      arrayValue: {
        values: values.map((e, i) => anyValue(e, `${p}.values[${i}]`, level + 1, bad)),
      },
    });
  }
  x = field(o, "kvlistValue", "kvlist_value", path);
  if (x !== undefined) {
    const p = `${path}.kvlistValue`;
    const values = asArray(field(asObject(x, p), "values", "values", p), `${p}.values`);
    set({
      value: "kvlistValue",
      kvlistValue: { values: keyValues(values, `${p}.values`, level + 1, bad) },
    });
  }
  return out ?? ({ value: null } as AnyValue);
}

/** KeyValues whose values are at nesting `level`. */
function keyValues(list: Json[], path: string, level: number, bad: Unrepresentable): KeyValue[] {
  const out: KeyValue[] = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const p = `${path}[${i}]`;
    const o = asObject(list[i], p);
    const value = field(o, "value", "value", p);
    out[i] = {
      key: asString(field(o, "key", "key", p), `${p}.key`),
      value: value === undefined ? null : anyValue(value, `${p}.value`, level, bad),
    };
  }
  return out;
}

function attributes(o: JsonObject, path: string, bad: Unrepresentable): KeyValue[] {
  const p = `${path}.attributes`;
  return keyValues(asArray(field(o, "attributes", "attributes", path), p), p, 1, bad);
}

function entityRef(v: Json, path: string): EntityRef {
  const o = asObject(v, path);
  const strings = (camel: string, snake: string) =>
    asArray(field(o, camel, snake, path), `${path}.${camel}`).map((s, i) =>
      asString(s, `${path}.${camel}[${i}]`),
    );
  return {
    schemaUrl: asString(field(o, "schemaUrl", "schema_url", path), `${path}.schemaUrl`),
    type: asString(field(o, "type", "type", path), `${path}.type`),
    idKeys: strings("idKeys", "id_keys"),
    descriptionKeys: strings("descriptionKeys", "description_keys"),
  };
}

function droppedCount(o: JsonObject, path: string): number {
  return asUint32(
    field(o, "droppedAttributesCount", "dropped_attributes_count", path),
    `${path}.droppedAttributesCount`,
  );
}

function resource(v: Json | undefined, path: string, bad: Unrepresentable): Resource | null {
  if (v === undefined) return null;
  const o = asObject(v, path);
  return {
    attributes: attributes(o, path, bad),
    droppedAttributesCount: droppedCount(o, path),
    entityRefs: asArray(field(o, "entityRefs", "entity_refs", path), `${path}.entityRefs`).map(
      (e, i) => entityRef(e, `${path}.entityRefs[${i}]`),
    ),
  };
}

function scope(
  v: Json | undefined,
  path: string,
  bad: Unrepresentable,
): InstrumentationScope | null {
  if (v === undefined) return null;
  const o = asObject(v, path);
  return {
    name: asString(field(o, "name", "name", path), `${path}.name`),
    version: asString(field(o, "version", "version", path), `${path}.version`),
    attributes: attributes(o, path, bad),
    droppedAttributesCount: droppedCount(o, path),
  };
}

function logRecord(v: Json, path: string, bad: Unrepresentable): LogRecord {
  const o = asObject(v, path);
  const body = field(o, "body", "body", path);
  return {
    timeUnixNano: asUint64(
      field(o, "timeUnixNano", "time_unix_nano", path),
      `${path}.timeUnixNano`,
    ),
    observedTimeUnixNano: asUint64(
      field(o, "observedTimeUnixNano", "observed_time_unix_nano", path),
      `${path}.observedTimeUnixNano`,
    ),
    severityNumber: asSeverity(
      field(o, "severityNumber", "severity_number", path),
      `${path}.severityNumber`,
    ),
    severityText: asString(field(o, "severityText", "severity_text", path), `${path}.severityText`),
    body: body === undefined ? null : anyValue(body, `${path}.body`, 1, bad),
    attributes: attributes(o, path, bad),
    droppedAttributesCount: droppedCount(o, path),
    flags: asUint32(field(o, "flags", "flags", path), `${path}.flags`),
    traceId: asHexId(field(o, "traceId", "trace_id", path), `${path}.traceId`, 16),
    spanId: asHexId(field(o, "spanId", "span_id", path), `${path}.spanId`, 8),
    eventName: asString(field(o, "eventName", "event_name", path), `${path}.eventName`),
  };
}

/** Records refused one by one (OTLP partial success), counted over the whole request. */
class Refusals {
  count = 0;
  first = "";
  add(message: string): void {
    this.count++;
    if (this.first === "") this.first = message;
  }
}

/**
 * A ScopeLogs with the records that can be stored; the others are counted in `refusals`.
 * `inherited`: why every record of it is refused (a value of its resource), or null.
 */
function scopeLogs(v: Json, path: string, inherited: string | null, refusals: Refusals) {
  const o = asObject(v, path);
  const bad = new Unrepresentable();
  const theScope = scope(field(o, "scope", "scope", path), `${path}.scope`, bad);
  const shared =
    inherited ?? (bad.first === null ? null : `${bad.first}; it refuses every record of ${path}`);
  const records = asArray(field(o, "logRecords", "log_records", path), `${path}.logRecords`);
  const kept: LogRecord[] = [];
  for (let i = 0; i < records.length; i++) {
    bad.first = null;
    const record = logRecord(records[i] as Json, `${path}.logRecords[${i}]`, bad);
    const why = shared ?? bad.first;
    if (why === null) kept.push(record);
    else refusals.add(why);
  }
  const out: ScopeLogs = {
    scope: theScope,
    logRecords: kept,
    schemaUrl: asString(field(o, "schemaUrl", "schema_url", path), `${path}.schemaUrl`),
  };
  return out;
}

function resourceLogs(v: Json, path: string, refusals: Refusals): ResourceLogs {
  const o = asObject(v, path);
  const bad = new Unrepresentable();
  const theResource = resource(field(o, "resource", "resource", path), `${path}.resource`, bad);
  const inherited = bad.first === null ? null : `${bad.first}; it refuses every record of ${path}`;
  const scopes = asArray(field(o, "scopeLogs", "scope_logs", path), `${path}.scopeLogs`);
  return {
    resource: theResource,
    scopeLogs: scopes.map((s, i) => scopeLogs(s, `${path}.scopeLogs[${i}]`, inherited, refusals)),
    schemaUrl: asString(field(o, "schemaUrl", "schema_url", path), `${path}.schemaUrl`),
  };
}

/** Log records of a JSON request refused on their own: reported as OTLP partial success. */
export interface RefusedRecords {
  /** How many log records (audit or not) were left out. */
  count: number;
  /** Why the first of them was, naming the value's path. */
  message: string;
}

export interface DecodedJsonRequest {
  /** The request without the refused records. */
  request: ExportLogsServiceRequest;
  refused: RefusedRecords | null;
}

/**
 * Decodes an OTLP/JSON ExportLogsServiceRequest, leaving out the log records holding a
 * value that cannot be stored exactly (reported in `refused`). Throws AgentError
 * OTLP_BAD_JSON, before anything is stored, when the body is not a valid request.
 */
export function decodeLogsRequestJsonPartial(body: Uint8Array): DecodedJsonRequest {
  // A zero-byte body is an empty request, as it is in protobuf: it succeeds and stores nothing.
  if (body.byteLength === 0) return { request: { resourceLogs: [] }, refused: null };
  try {
    const parsed = parseBody(body);
    const o = asObject(parsed.json, "request");
    const list = asArray(field(o, "resourceLogs", "resource_logs", "request"), "resourceLogs");
    const refusals = new Refusals();
    const request = {
      resourceLogs: list.map((r, i) => resourceLogs(r, `resourceLogs[${i}]`, refusals)),
    };
    const refused =
      refusals.count === 0 ? null : { count: refusals.count, message: refusals.first };
    if (parsed.duplicate !== null) throw new JsonShapeError(parsed.duplicate);
    return { request, refused };
  } catch (err) {
    if (err instanceof JsonShapeError) {
      throw new AgentError(
        "OTLP_BAD_JSON",
        `request is not a valid OTLP/JSON ExportLogsServiceRequest: ${err.message}`,
      );
    }
    throw err;
  }
}

/**
 * Decodes an OTLP/JSON ExportLogsServiceRequest whole; throws AgentError OTLP_BAD_JSON when
 * it is not valid or any of its records would be refused.
 */
export function decodeLogsRequestJson(body: Uint8Array): ExportLogsServiceRequest {
  const { request, refused } = decodeLogsRequestJsonPartial(body);
  if (refused !== null) {
    throw new AgentError(
      "OTLP_BAD_JSON",
      `request is not a valid OTLP/JSON ExportLogsServiceRequest: ${refused.message}`,
    );
  }
  return request;
}

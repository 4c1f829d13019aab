import { LONE_SURROGATE } from "./jcs.js";
import {
  CHAIN_ID_PATTERN,
  FORMAT_VERSION,
  MAX_SOURCE_KEY_LENGTH,
  MAX_SOURCE_MEMBERS,
  SOURCE_FORMAT_VERSION,
  sourceProblem,
} from "./format.js";
import { jsonStructureProblem, MAX_LINE_DEPTH } from "./json-structure.js";

/**
 * Checks that stored text is canonical RFC 8785 JSON without building the value: one scan
 * that accepts exactly the texts for which `canonicalize(JSON.parse(text)) === text` (jcs.ts),
 * the verifier's per-record check (docs/integrity-format.md §4). Common tokens are checked in
 * place: strings without escapes or surrogates, integers of up to 15 digits, literals. Every
 * other string or number is decided by JSON.parse and JSON.stringify on that token alone,
 * exactly as the generic canonicalizer serializes it. Keys must be strictly increasing in
 * UTF-16 code units, which rules out repeated members as well. The scan recurses once per
 * level of nesting and refuses to go deeper than MAX_LINE_DEPTH (json-structure.ts), deeper
 * than any line the agent writes: such text is "not shown canonical", on every run alike.
 *
 * Callers treat "not canonical" as a reason to ask the generic path why: this scan must
 * never accept a text the generic check rejects, and is tested against it.
 */

/** Set by stringEnd: whether the string just scanned holds an escape or a surrogate. */
let lastStringSpecial = false;

/** Whether `text` is exactly the RFC 8785 serialization of the JSON value it holds. */
export function isCanonicalJson(text: string): boolean {
  try {
    return valueEnd(text, 0, 1) === text.length;
  } catch (err) {
    return notTooDeep(err, false);
  }
}

/**
 * The members of a record envelope (§2) that the verifier uses: everything but `record` and
 * `source` (`v` says whether the line has one: 2 when it has).
 */
export interface EnvelopeHeader {
  chainId: string;
  prev: string;
  seq: string;
  v: number;
  timeReceivedUnixNano: string;
}

/**
 * Reads a record line that is a valid, canonical envelope (§2, §4); null for any other text,
 * and the generic parseEnvelope (chain-check.ts) then says why. Records of the OTLP shape
 * (§3) are matched by one regular expression; any other record, unless it repeats a member
 * name or nests too deep (json-structure.ts), is scanned generically.
 */
export function scanEnvelope(text: string): EnvelopeHeader | null {
  const matched = matchEnvelope(text);
  if (matched !== null) return matched;
  return jsonStructureProblem(text) === null ? scanAnyEnvelope(text) : null;
}

/**
 * The generic scan alone, for a line that matchEnvelope did not match and that
 * jsonStructureProblem passed: a valid, canonical envelope, or null.
 */
export function scanAnyEnvelope(text: string): EnvelopeHeader | null {
  try {
    return scanGenericEnvelope(text);
  } catch (err) {
    return notTooDeep(err, null);
  }
}

/** The regular expression alone: a valid envelope whose record has the OTLP shape, or null. */
export function matchEnvelope(text: string): EnvelopeHeader | null {
  const m = ENVELOPE.exec(text);
  if (m === null) return null;
  const [, chainId, prev, seq, source, time, v] = m as unknown as [
    string,
    string,
    string,
    string,
    string | undefined,
    string,
    string,
  ];
  // A line has `source` exactly when it is a version-2 line (§2.4).
  if (source === undefined ? v !== "1" : v !== "2" || !sourceNamesValid(source)) return null;
  return { chainId, prev, seq, v: Number(v), timeReceivedUnixNano: stringValue(time) };
}

/** A `source` member name where it starts: after `{` or `,` (never so inside a string). */
const SOURCE_NAME = /[{,]"([^"]*)":/g;

/**
 * Whether the names of a `source` object the pattern matched (so each is of the dotted
 * shape, and each value a non-empty canonical string) are strictly increasing, of the
 * allowed length and number. Inside a canonical string every quote is escaped, so `{"` and
 * `,"` start member names only.
 */
function sourceNamesValid(source: string): boolean {
  let before = "";
  let count = 0;
  for (const m of source.matchAll(SOURCE_NAME)) {
    const name = m[1] as string;
    if (name.length > MAX_SOURCE_KEY_LENGTH || !(before < name) || ++count > MAX_SOURCE_MEMBERS)
      return false;
    before = name;
  }
  return true;
}

function stringValue(token: string): string {
  return token.includes("\\") ? (JSON.parse(token) as string) : token.slice(1, -1);
}

// ---------------------------------------------------------------------------------------
// Records of the OTLP shape: one regular expression
// ---------------------------------------------------------------------------------------

/*
 * The pattern accepts only canonical text: every object lists its members in sorted order,
 * each at most once (all optional here), with one comma between them; strings hold plain
 * characters, the escapes JSON.stringify writes and surrogate pairs; numbers are integers of
 * at most 15 digits without a leading zero or a minus zero. Member names are those of §3, so
 * every record the agent writes matches unless it holds fractions, 16-digit integers, lone
 * surrogates, or AnyValues nested deeper than ANY_DEPTH; those take the generic scan. Each
 * alternative starts with its own literal, so matching never backtracks more than a token.
 * V8 compiles patterns under 20 KB to fast native code, and every level of nesting doubles
 * the size: ANY_DEPTH 1 gives about 13 KB.
 */
const PLAIN = String.raw`[^"\\\x00-\x1f\ud800-\udfff]*`;
const ESCAPE = String.raw`\\["\\bfnrt]|\\u00(?:0[0-7bef]|1[0-9a-f])|[\ud800-\udbff][\udc00-\udfff]`;
const STRING = `"${PLAIN}(?:(?:${ESCAPE})${PLAIN})*"`;
const INTEGER = String.raw`(?:0|-?[1-9]\d{0,14})`;
const BOOLEAN = "(?:true|false)";
const ANY_DEPTH = 1;

/** An object of the given members, sorted, each optional; a comma only before another member. */
function object(members: readonly (readonly [string, string])[]): string {
  members.forEach(([name], i) => {
    const before = members[i - 1]?.[0];
    if (before !== undefined && !(before < name)) throw new Error(`${before} sorts after ${name}`);
  });
  return String.raw`\{${members.map(([name, value]) => `(?:"${name}":${value}(?:,(?=")|(?=\\})))?`).join("")}\}`;
}

/** An array of elements; a comma only before another element. */
function list(element: string): string {
  return String.raw`\[(?:${element}(?:,(?!\])|(?=\])))*\]`;
}

function anyValue(depth: number): string {
  const nested = depth > 0;
  return object([
    ...(nested ? [["arrayValue", object([["values", list(anyValue(depth - 1))]])] as const] : []),
    ["boolValue", BOOLEAN],
    ["bytesValue", STRING],
    ["doubleValue", INTEGER],
    ["intValue", STRING],
    ...(nested ? [["kvlistValue", object([["values", list(keyValue(depth - 1))]])] as const] : []),
    ["stringValue", STRING],
  ]);
}

function keyValue(depth: number): string {
  return object([
    ["key", STRING],
    ["value", anyValue(depth)],
  ]);
}

const ATTRIBUTES = ["attributes", list(keyValue(ANY_DEPTH))] as const;
const DROPPED = ["droppedAttributesCount", INTEGER] as const;
const RECORD_PATTERN = object([
  [
    "logRecord",
    object([
      ATTRIBUTES,
      ["body", anyValue(ANY_DEPTH)],
      DROPPED,
      ["eventName", STRING],
      ["flags", INTEGER],
      ["observedTimeUnixNano", STRING],
      ["severityNumber", INTEGER],
      ["severityText", STRING],
      ["spanId", STRING],
      ["timeUnixNano", STRING],
      ["traceId", STRING],
    ]),
  ],
  [
    "resource",
    object([
      ATTRIBUTES,
      DROPPED,
      [
        "entityRefs",
        list(
          object([
            ["descriptionKeys", list(STRING)],
            ["idKeys", list(STRING)],
            ["schemaUrl", STRING],
            ["type", STRING],
          ]),
        ),
      ],
    ]),
  ],
  ["resourceSchemaUrl", STRING],
  ["scope", object([ATTRIBUTES, DROPPED, ["name", STRING], ["version", STRING]])],
  ["scopeSchemaUrl", STRING],
]);
const CHAIN_ID = CHAIN_ID_PATTERN.source.replace(/^\^|\$$/g, "");
/** A `source` object (§2.4) of dotted names and non-empty strings; names' order is checked apart. */
const SOURCE_MEMBER = String.raw`"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*":(?!"")${STRING}`;
const SOURCE = String.raw`\{${SOURCE_MEMBER}(?:,${SOURCE_MEMBER})*\}`;
const ENVELOPE = new RegExp(
  `^\\{"chainId":"(${CHAIN_ID})","prev":"([0-9a-f]{64})","record":${RECORD_PATTERN},` +
    `"seq":"(0|[1-9]\\d*)"(?:,"source":(${SOURCE}))?,"timeReceivedUnixNano":(${STRING}),` +
    `"v":([${FORMAT_VERSION}${SOURCE_FORMAT_VERSION}])\\}$`,
);

// ---------------------------------------------------------------------------------------
// Any canonical JSON: a scan
// ---------------------------------------------------------------------------------------

const HEAD = '{"chainId":"';
const PREV = '","prev":"';
const RECORD = '","record":';
const SEQ = ',"seq":"';
const SOURCE_MEMBER_NAME = ',"source":';
const RECEIVED = ',"timeReceivedUnixNano":';
const TAIL = `,"v":${FORMAT_VERSION}}`;
const SOURCE_TAIL = `,"v":${SOURCE_FORMAT_VERSION}}`;

/**
 * The envelope by a generic scan of its record. Members sort as chainId < prev < record <
 * seq < source < timeReceivedUnixNano < v, and chain id, prev and seq never need escapes,
 * so a valid line has exactly this shape around its canonical record (and its `source`,
 * when it has one).
 */
function scanGenericEnvelope(text: string): EnvelopeHeader | null {
  if (!text.startsWith(HEAD)) return null;
  const idEnd = text.indexOf('"', HEAD.length);
  if (idEnd < 0) return null;
  const chainId = text.slice(HEAD.length, idEnd);
  if (!CHAIN_ID_PATTERN.test(chainId) || !text.startsWith(PREV, idEnd)) return null;
  const prevStart = idEnd + PREV.length;
  const prev = text.slice(prevStart, prevStart + 64);
  const recordStart = prevStart + 64 + RECORD.length;
  if (!HEX64.test(prev) || !text.startsWith(RECORD, prevStart + 64)) return null;
  if (text.charCodeAt(recordStart) !== 0x7b) return null; // the record is an object
  const recordEnd = containerEnd(text, recordStart, 2);
  if (recordEnd < 0 || !text.startsWith(SEQ, recordEnd)) return null;
  const seqStart = recordEnd + SEQ.length;
  const seqEnd = text.indexOf('"', seqStart);
  if (seqEnd < 0) return null;
  const seq = text.slice(seqStart, seqEnd);
  if (!SEQ_PATTERN.test(seq)) return null;
  const sourceEnd = scanSource(text, seqEnd + 1);
  if (sourceEnd < 0 || !text.startsWith(RECEIVED, sourceEnd)) return null;
  const timeStart = sourceEnd + RECEIVED.length;
  if (text.charCodeAt(timeStart) !== 0x22) return null;
  const timeEnd = stringEnd(text, timeStart);
  const v = sourceEnd > seqEnd + 1 ? SOURCE_FORMAT_VERSION : FORMAT_VERSION;
  const tail = v === FORMAT_VERSION ? TAIL : SOURCE_TAIL;
  if (timeEnd < 0 || timeEnd + tail.length !== text.length || !text.endsWith(tail)) return null;
  const timeReceivedUnixNano = stringValue(text.slice(timeStart, timeEnd));
  return { chainId, prev, seq, v, timeReceivedUnixNano };
}

/**
 * The end of the `source` member at `at` (§2.4), `at` itself when there is none there, or
 * -1 for one that is not a canonical object of the documented shape.
 */
function scanSource(text: string, at: number): number {
  if (!text.startsWith(SOURCE_MEMBER_NAME, at)) return at;
  const start = at + SOURCE_MEMBER_NAME.length;
  if (text.charCodeAt(start) !== 0x7b) return -1;
  const end = containerEnd(text, start, 2);
  // Canonical, hence without repeated names: JSON.parse reads it as written.
  return end >= 0 && sourceProblem(JSON.parse(text.slice(start, end))) === null ? end : -1;
}

/**
 * The receive time of a line that scanEnvelope accepted, read again from its text: its
 * `timeReceivedUnixNano` is the envelope's last member but `v`, so it follows the last
 * occurrence of its name (the name elsewhere, inside a string, has escaped quotes).
 */
export function receivedOf(validLine: string): string {
  const at = validLine.lastIndexOf(RECEIVED) + RECEIVED.length;
  return stringValue(validLine.slice(at, validLine.length - TAIL.length));
}

const HEX64 = /^[0-9a-f]{64}$/;
const SEQ_PATTERN = /^(0|[1-9]\d*)$/;

/**
 * A guard only: the scan stops at MAX_LINE_DEPTH levels, far inside any stack. Should the
 * stack still run out, the text is "not shown canonical" here and the generic path decides.
 */
function notTooDeep<T>(err: unknown, answer: T): T {
  if (err instanceof RangeError) return answer;
  throw err;
}

/** The index just past the canonical JSON value at `i`, at nesting `depth`, or -1. */
function valueEnd(s: string, i: number, depth: number): number {
  const c = s.charCodeAt(i);
  switch (c) {
    case 0x22: // "
      return stringEnd(s, i);
    case 0x7b: // {
    case 0x5b: // [
      return containerEnd(s, i, depth);
    case 0x74: // t
      return s.startsWith("true", i) ? i + 4 : -1;
    case 0x66: // f
      return s.startsWith("false", i) ? i + 5 : -1;
    case 0x6e: // n
      return s.startsWith("null", i) ? i + 4 : -1;
    default:
      return c === 0x2d || (c >= 0x30 && c <= 0x39) ? numberEnd(s, i) : -1;
  }
}

/**
 * The end of the object or array at `i`, at nesting `depth` (1: the outermost): values joined
 * by single commas, members sorted. -1 also for a container deeper than MAX_LINE_DEPTH.
 */
function containerEnd(s: string, i: number, depth: number): number {
  if (depth > MAX_LINE_DEPTH) return -1;
  const isObject = s.charCodeAt(i) === 0x7b;
  const close = isObject ? 0x7d : 0x5d;
  let j = i + 1;
  if (s.charCodeAt(j) === close) return j + 1;
  let prevKey: string | null = null;
  for (;;) {
    if (isObject) {
      if (s.charCodeAt(j) !== 0x22) return -1;
      const keyEnd = stringEnd(s, j);
      if (keyEnd < 0 || s.charCodeAt(keyEnd) !== 0x3a) return -1;
      const key = lastStringSpecial
        ? (JSON.parse(s.slice(j, keyEnd)) as string)
        : s.slice(j + 1, keyEnd - 1);
      // JavaScript compares strings by UTF-16 code units, the order RFC 8785 §3.2.3 sorts by.
      if (prevKey !== null && !(prevKey < key)) return -1;
      prevKey = key;
      j = keyEnd + 1;
    }
    j = valueEnd(s, j, depth + 1);
    if (j < 0) return -1;
    const c = s.charCodeAt(j);
    if (c === close) return j + 1;
    if (c !== 0x2c) return -1;
    j++;
  }
}

/**
 * The end of the string token at `i` (its opening quote), or -1. A string of plain
 * characters is canonical as it stands; one with an escape or a surrogate is canonical when
 * it holds no lone surrogate (RFC 8785 §3.1, integrity-format §4) and JSON.stringify writes
 * its decoded value back to the same token.
 */
function stringEnd(s: string, i: number): number {
  const n = s.length;
  for (let j = i + 1; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x22) {
      lastStringSpecial = false;
      return j + 1;
    }
    if (c < 0x20) return -1; // a raw control character is not JSON
    if (c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return specialStringEnd(s, i, j);
  }
  return -1;
}

function specialStringEnd(s: string, i: number, from: number): number {
  const n = s.length;
  for (let j = from; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x5c) j++;
    else if (c === 0x22) {
      const token = s.slice(i, j + 1);
      lastStringSpecial = true;
      const value = parseToken(token);
      return typeof value === "string" &&
        !LONE_SURROGATE.test(value) &&
        JSON.stringify(value) === token
        ? j + 1
        : -1;
    } else if (c < 0x20) return -1;
  }
  return -1;
}

/**
 * The end of the number token at `i`, or -1. An integer of at most 15 digits without a
 * leading zero is exact in binary64 and written back digit for digit; `-0`, fractions,
 * exponents and longer integers are canonical only when ECMAScript writes their value so.
 */
function numberEnd(s: string, i: number): number {
  const start = s.charCodeAt(i) === 0x2d ? i + 1 : i;
  const first = s.charCodeAt(start);
  let j = start + 1;
  if (first >= 0x31 && first <= 0x39) while (isDigit(s.charCodeAt(j))) j++;
  else if (first !== 0x30) return -1;
  const negativeZero = first === 0x30 && start > i;
  if (!isNumberChar(s.charCodeAt(j)) && j - start <= 15 && !negativeZero) return j;
  while (isNumberChar(s.charCodeAt(j))) j++;
  const token = s.slice(i, j);
  const value = parseToken(token);
  return typeof value === "number" && Number.isFinite(value) && JSON.stringify(value) === token
    ? j
    : -1;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isNumberChar(c: number): boolean {
  return isDigit(c) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}

function parseToken(token: string): unknown {
  try {
    return JSON.parse(token) as unknown;
  } catch {
    return undefined;
  }
}

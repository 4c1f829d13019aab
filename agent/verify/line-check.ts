import { isUtf8 } from "node:buffer";
import { hash as oneShotHash } from "node:crypto";
import { checkEnvelope } from "../integrity/chain-check.js";
import { writeTime } from "./receive-times.js";

/**
 * Step 1 of verification (docs/integrity-format.md §7) for a page of record lines: each
 * line's RFC 6962 leaf hash and its envelope checked and read — the per-record work, which
 * depends on nothing but the line, so it can run on another thread (line-checkers.ts). What
 * comes back is flat: numbers and bytes, no object per line.
 */
export interface CheckedLines {
  count: number;
  /** Each line's seq; NaN for a line that is not a valid envelope of the chain. */
  seqs: Float64Array;
  /** 64 bytes a line: its leaf hash, then its `prev` (its own ArrayBuffer, to transfer). */
  hashes: Buffer;
  /**
   * Each valid line's `timeReceivedUnixNano` as whole seconds and nanoseconds, two numbers a
   * line (receive-times.ts writeTime); NaN for one that is not digits or is too long.
   */
  times: Float64Array;
  /** The times of more than 24 digits, by line, as text. */
  longTimes: Map<number, string>;
  /** Why each invalid line is `malformed`, by line. */
  problems: Map<number, string>;
}

const NEWLINE = 0x0a;

/** Byte 0 is the leaf-hash prefix 0x00; a line copied after it is hashed in one call. */
let scratch = Buffer.alloc(64 * 1024);

/**
 * Checks lines stored as bytes, each ending in "\n". The bytes are hashed as stored: a line
 * that is not valid UTF-8 is `malformed` (the agent writes none). `bytes` is written to while
 * it is checked (the byte before each line becomes the prefix 0x00 for a moment) and left as
 * it was.
 */
export function checkLineBytes(view: Uint8Array, chainId: string): CheckedLines {
  const bytes = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  let count = 0;
  for (let at = bytes.indexOf(NEWLINE); at >= 0; at = bytes.indexOf(NEWLINE, at + 1)) count++;
  const out = emptyResult(count);
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = bytes.indexOf(NEWLINE, start);
    const text = bytes.toString("utf8", start, end);
    if (text.includes("\uFFFD") && !isUtf8(bytes.subarray(start, end)))
      fail(out, i, "not valid UTF-8");
    else if (readEnvelope(out, i, text, chainId)) {
      // SHA-256(0x00 ‖ line) over the bytes in place: the byte before the line (the last
      // one's newline) is the prefix for the moment; the first line is copied.
      const leaf =
        start === 0 ? hashCopied(bytes.subarray(0, end)) : hashInPlace(bytes, start, end);
      out.hashes.write(leaf, 64 * i, 32, "latin1");
    }
    start = end + 1;
  }
  return out;
}

/** Checks lines a reader holds as text (Loki, Elasticsearch): hashed as their UTF-8 bytes. */
export function checkLineTexts(texts: readonly string[], chainId: string): CheckedLines {
  const out = emptyResult(texts.length);
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i] as string;
    if (!readEnvelope(out, i, text, chainId)) continue;
    const most = 1 + text.length * 3;
    if (scratch.length < most) scratch = Buffer.alloc(Math.max(most, 2 * scratch.length));
    const n = scratch.write(text, 1, "utf8");
    out.hashes.write(leafHashOf(scratch, 0, 1 + n), 64 * i, 32, "latin1");
  }
  return out;
}

function emptyResult(count: number): CheckedLines {
  return {
    count,
    seqs: new Float64Array(count),
    hashes: Buffer.from(new ArrayBuffer(64 * count)),
    times: new Float64Array(2 * count),
    longTimes: new Map(),
    problems: new Map(),
  };
}

/** The envelope of line `i` into `out` (seq, prev, time); false, with the problem, if invalid. */
function readEnvelope(out: CheckedLines, i: number, text: string, chainId: string): boolean {
  const env = checkEnvelope(text);
  if (typeof env === "string") return fail(out, i, env);
  if (env.chainId !== chainId)
    return fail(out, i, `record of chain ${env.chainId} stored with chain ${chainId}`);
  out.seqs[i] = Number(env.seq);
  out.hashes.write(env.prev, 64 * i + 32, 32, "hex");
  const long = writeTime(env.timeReceivedUnixNano, out.times, 2 * i);
  if (long !== null) out.longTimes.set(i, long);
  return true;
}

function fail(out: CheckedLines, i: number, problem: string): false {
  out.seqs[i] = Number.NaN;
  out.problems.set(i, problem);
  return false;
}

function hashInPlace(bytes: Buffer, start: number, end: number): string {
  const before = bytes[start - 1] as number;
  bytes[start - 1] = 0;
  try {
    return leafHashOf(bytes, start - 1, end);
  } finally {
    bytes[start - 1] = before;
  }
}

function hashCopied(line: Buffer): string {
  if (scratch.length < line.length + 1)
    scratch = Buffer.alloc(Math.max(line.length + 1, 2 * scratch.length));
  line.copy(scratch, 1);
  return leafHashOf(scratch, 0, line.length + 1);
}

/** The leaf hash as a latin1 string: it costs less to make than a Buffer (frontier.ts). */
function leafHashOf(input: Buffer, from: number, to: number): string {
  return oneShotHash("sha256", input.subarray(from, to), "binary");
}

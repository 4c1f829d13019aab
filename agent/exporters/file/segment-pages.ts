import { isUtf8 } from "node:buffer";
import { open } from "node:fs/promises";
import { basename } from "node:path";
import { AgentError } from "../../common/errors.js";
import type { RecordBytes } from "../source.js";

/**
 * A segment file read as bytes, a few MiB at a time, cut at the last newline of each read:
 * the verifier's record stream (RecordBytes). Lines are never decoded here; the verifier
 * hashes the bytes as stored.
 */

/** Bytes read at a time: about 700 records of 1.5 KB. */
const READ_BYTES = 1 << 20;

/** A piece of a segment: whole lines, or the final line when it has no newline. */
export type SegmentPiece =
  { kind: "lines"; page: RecordBytes } | { kind: "unterminated"; location: string };

const NEWLINE = 0x0a;

/**
 * The whole lines of the segment at `path`, a read at a time, each page locating its lines
 * as `name:line`. A final line without a newline (cut, or still being written) comes last as
 * `unterminated`. A file that cannot be read makes the source unreadable.
 */
export async function* segmentPieces(path: string): AsyncIterable<SegmentPiece> {
  const name = basename(path);
  const file = await open(path, "r").catch((err: unknown) => {
    throw unreadable(path, err);
  });
  try {
    let carry = Buffer.alloc(0);
    let nextLine = 1;
    for (;;) {
      // A fresh buffer each time: a page may be handed to another thread and kept there.
      const buf = Buffer.allocUnsafeSlow(Math.max(READ_BYTES, 2 * carry.length));
      carry.copy(buf, 0);
      const { bytesRead } = await file
        .read(buf, carry.length, buf.length - carry.length, null)
        .catch((err: unknown) => {
          throw unreadable(path, err);
        });
      const filled = carry.length + bytesRead;
      if (bytesRead === 0) {
        if (filled > 0) yield { kind: "unterminated", location: `${name}:${nextLine}` };
        return;
      }
      const end = buf.lastIndexOf(NEWLINE, filled - 1) + 1;
      // No newline yet: a line longer than the buffer, read on into a larger one.
      carry = end === 0 ? buf.subarray(0, filled) : Buffer.from(buf.subarray(end, filled));
      if (end === 0) continue;
      const bytes = buf.subarray(0, end);
      const first = nextLine;
      nextLine += countLines(bytes);
      yield { kind: "lines", page: { bytes, locate: (i) => `${name}:${first + i}` } };
    }
  } finally {
    await file.close();
  }
}

function countLines(bytes: Buffer): number {
  let n = 0;
  for (let at = bytes.indexOf(NEWLINE); at >= 0; at = bytes.indexOf(NEWLINE, at + 1)) n++;
  return n;
}

function unreadable(path: string, err: unknown): AgentError {
  return new AgentError("SOURCE_UNREADABLE", `cannot read ${path}: ${(err as Error).message}`, {
    cause: err,
  });
}

/**
 * The page without its leading lines whose seq is below `fromSeq` (an incremental run's
 * start), and whether it reached a line at or after it: after that, lines are handed over
 * as they are. A line whose seq cannot be read is handed over.
 */
export function skipBefore(
  page: RecordBytes,
  fromSeq: number,
): { page: RecordBytes | null; reached: boolean } {
  const bytes = page.bytes as Buffer;
  let start = 0;
  let skipped = 0;
  while (start < bytes.length) {
    const end = bytes.indexOf(NEWLINE, start);
    if (lineSeq(bytes, start, end) >= fromSeq) break;
    start = end + 1;
    skipped++;
  }
  if (start === bytes.length) return { page: null, reached: false };
  if (skipped === 0) return { page, reached: true };
  const locate = page.locate;
  return {
    page: { bytes: bytes.subarray(start), locate: (i) => locate(i + skipped) },
    reached: true,
  };
}

/**
 * The page without its lines that are not valid UTF-8 (the agent writes none; as text they
 * would read as U+FFFD, which is not what is stored), and the locations of those. One check of
 * the whole page in the common case.
 */
export function withoutInvalidUtf8(page: RecordBytes): {
  page: RecordBytes | null;
  invalid: string[];
} {
  const bytes = Buffer.from(page.bytes.buffer, page.bytes.byteOffset, page.bytes.byteLength);
  if (isUtf8(bytes)) return { page, invalid: [] };
  const invalid: string[] = [];
  const kept: Buffer[] = [];
  const keptLines: number[] = [];
  for (let start = 0, i = 0; start < bytes.length; i++) {
    const end = bytes.indexOf(NEWLINE, start) + 1;
    const line = bytes.subarray(start, end);
    if (isUtf8(line)) {
      kept.push(line);
      keptLines.push(i);
    } else invalid.push(page.locate(i));
    start = end;
  }
  if (kept.length === 0) return { page: null, invalid };
  const locate = page.locate;
  return {
    page: { bytes: Buffer.concat(kept), locate: (i) => locate(keptLines[i] as number) },
    invalid,
  };
}

const SEQ_MEMBER = Buffer.from(',"seq":"');

/**
 * The seq of the envelope in bytes [start, end), read without parsing: `seq` is the
 * envelope's last member but two (RFC 8785 orders members), after the record, so its last
 * occurrence in the line is the envelope's own. Infinity when there is none.
 */
function lineSeq(bytes: Buffer, start: number, end: number): number {
  const at = bytes.lastIndexOf(SEQ_MEMBER, end - SEQ_MEMBER.length);
  if (at < start) return Number.POSITIVE_INFINITY;
  const from = at + SEQ_MEMBER.length;
  const close = bytes.indexOf(0x22, from);
  if (close <= from || close > end) return Number.POSITIVE_INFINITY;
  const seq = Number(bytes.toString("latin1", from, close));
  return Number.isSafeInteger(seq) ? seq : Number.POSITIVE_INFINITY;
}

import { hash as oneShotHash } from "node:crypto";
import {
  ENVELOPE_MIDDLE,
  ENVELOPE_SEQ,
  envelopeEnd,
  envelopeHead,
  envelopeReceived,
} from "../integrity/format.js";
import { decimalLength, writeAscii, writeDecimal, writeHex } from "../integrity/json-bytes.js";
import { CHUNK_HEADER, ENTRY_HEADER, storedChunk } from "./chunk.js";
import type { ChunkEntry } from "./chunk-index.js";
import { HEAD_KEY, recordKey } from "./keyspace.js";
import { HASH_BYTES, storedLength } from "./record.js";
import type { WriteOp } from "./store.js";

/**
 * Chaining: turns a group of canonical `record` texts into stored chunks. Each record is
 * wrapped in its envelope (chain id, prev, seq, receive time; integrity-format §3), hashed
 * (RFC 6962 leaf hash over the stored bytes themselves) and linked to the one before it.
 * This is the ingest hot path: bytes are written in place, one pass to size, one to write.
 */

/** A record's canonical `record` text, as a string or as its UTF-8 bytes. */
export type RecordText = string | Uint8Array;

/** Records that arrived together with one receive time (one client request). */
export interface ReceivedRecords {
  readonly records: ReadonlyArray<RecordText>;
  readonly receivedUnixNano: string;
  /**
   * The canonical text of their envelopes' `source` (integrity-format §2.4), or null (absent:
   * version-1 lines). One request has one sender, so one text for all its records.
   */
  readonly source?: string | null;
}

/** A chained group, ready to write in one synced LevelDB batch. */
export interface ChainedGroup {
  /** The seq after the group's last record, and that record's leaf hash in hex. */
  endSeq: number;
  endPrev: string;
  chunks: ChunkEntry[];
  ops: WriteOp[];
  /** Bytes the group stores in LevelDB (keys and values of its chunks). */
  bytes: number;
}

const ENVELOPE_MIDDLE_BYTES = Buffer.from(ENVELOPE_MIDDLE, "latin1");
const ENVELOPE_SEQ_BYTES = Buffer.from(ENVELOPE_SEQ, "latin1");

/**
 * The tail's bytes around the receive-time digits, made once per `source` text rather than
 * per record: `","timeReceivedUnixNano":"` and `","v":1}` without one; with one,
 * `","source":{…},"timeReceivedUnixNano":"` and `","v":2}`.
 */
interface TailBytes {
  readonly received: Buffer;
  readonly end: Buffer;
  /** Their length and ENVELOPE_SEQ's: the tail's bytes other than the digits. */
  readonly fixed: number;
}

function tailBytes(source: string | null): TailBytes {
  const received = Buffer.from(envelopeReceived(source), "utf8");
  const end = Buffer.from(envelopeEnd(source), "latin1");
  return { received, end, fixed: ENVELOPE_SEQ_BYTES.length + received.length + end.length };
}

const PLAIN_TAIL = tailBytes(null);
/** The last `source` tail made: a client's requests come one after another with the same. */
let lastSourceTail: { source: string; tail: TailBytes } | null = null;

function tailFor(source: string | null | undefined): TailBytes {
  if (source === null || source === undefined) return PLAIN_TAIL;
  if (lastSourceTail?.source !== source) lastSourceTail = { source, tail: tailBytes(source) };
  return lastSourceTail.tail;
}

/** Chunks are cut at about this size, so a reader never loads a huge value for one record. */
const CHUNK_TARGET_BYTES = 1 << 20;
/**
 * Groups smaller than this are written uncompressed (see chainGroup): deflating a few
 * records saves fewer bytes than it costs. From a few dozen records on, deflate (on the
 * event loop, chunk.ts) costs less than the synced write and the compactions it shrinks.
 */
const COMPRESS_MIN_BYTES = 8 << 10;

/** Where pass 1 found each record and where chunks are cut. */
interface Layout {
  records: RecordText[];
  received: string[];
  /** Per record, its request's tail bytes (one object per request, shared). */
  tails: TailBytes[];
  /** Per record: the bytes its entry takes after the entry header. */
  entryLens: number[];
  /** Index one past each chunk's last record. */
  cuts: number[];
}

/**
 * Chains `groups` after (firstSeq − 1, prevHex) and compresses the chunks in the libuv
 * pool. Pure: it does not touch the log, whose head moves only once the group is durable.
 */
export async function chainGroup(
  chainId: string,
  groups: readonly ReceivedRecords[],
  firstSeq: number,
  prevHex: string,
): Promise<ChainedGroup> {
  const head = Buffer.from(envelopeHead(chainId), "latin1");
  const layout = measure(groups, firstSeq, head.length);
  const { chunks, endPrev } = encodeChunks(layout, head, firstSeq, prevHex);
  const endSeq = firstSeq + layout.records.length;
  const ops: WriteOp[] = [];
  let bytes = 0;
  // Chunks are compressed (large ones in the libuv pool, in parallel; chunk.ts). A small
  // write is stored as it is.
  let chunkBytes = 0;
  for (const c of chunks) chunkBytes += c.chunkBytes;
  const stored =
    chunkBytes < COMPRESS_MIN_BYTES
      ? chunks.map((c) => c.cached as Buffer)
      : await Promise.all(chunks.map((c) => storedChunk(c.cached as Buffer)));
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i] as ChunkEntry;
    const key = recordKey(c.firstSeq);
    const value = stored[i] as Buffer;
    c.bytes = key.length + value.length;
    bytes += c.bytes;
    ops.push({ type: "put", key, value });
  }
  ops.push({
    type: "put",
    key: HEAD_KEY,
    value: Buffer.from(`{"seq":${endSeq - 1},"hash":"${endPrev}"}`),
  });
  return { endSeq, endPrev, chunks, ops, bytes };
}

/**
 * Pass 1: the exact byte length of every record's stored entry (the envelope's parts are
 * known ahead: prev is always 64 hex digits), and where chunks are cut.
 */
function measure(groups: readonly ReceivedRecords[], firstSeq: number, headLen: number): Layout {
  const layout: Layout = { records: [], received: [], tails: [], entryLens: [], cuts: [] };
  const headFixedLen = storedLength(0) + headLen + 64 + ENVELOPE_MIDDLE_BYTES.length;
  let chunkSize = CHUNK_HEADER;
  let seq = firstSeq;
  for (const g of groups) {
    const tail = tailFor(g.source);
    const fixedLen = headFixedLen + tail.fixed + g.receivedUnixNano.length;
    for (const record of g.records) {
      const len = typeof record === "string" ? Buffer.byteLength(record, "utf8") : record.length;
      const entryLen = fixedLen + len + decimalLength(seq++);
      layout.records.push(record);
      layout.received.push(g.receivedUnixNano);
      layout.tails.push(tail);
      layout.entryLens.push(entryLen);
      chunkSize += ENTRY_HEADER + entryLen;
      if (chunkSize >= CHUNK_TARGET_BYTES) {
        layout.cuts.push(layout.records.length);
        chunkSize = CHUNK_HEADER;
      }
    }
  }
  const n = layout.records.length;
  if (layout.cuts[layout.cuts.length - 1] !== n) layout.cuts.push(n);
  return layout;
}

/**
 * Pass 2: writes each chunk's entries in place and hashes them: 0x00 || canonical text is
 * the RFC 6962 leaf-hash input; the hash is stored and, in hex, is the next prev.
 */
function encodeChunks(
  layout: Layout,
  head: Buffer,
  firstSeq: number,
  prevHex: string,
): { chunks: ChunkEntry[]; endPrev: string } {
  const { records, received, tails, entryLens } = layout;
  const chunks: ChunkEntry[] = [];
  let seq = firstSeq;
  let prevHash: Buffer | null = null;
  let prevHashAt = 0;
  let from = 0;
  for (const to of layout.cuts) {
    if (to === from) continue;
    let size = CHUNK_HEADER;
    for (let i = from; i < to; i++) size += ENTRY_HEADER + (entryLens[i] as number);
    const chunk = Buffer.allocUnsafe(size);
    chunk.writeUInt32BE(to - from, 0);
    const chunkFirstSeq = seq;
    let at = CHUNK_HEADER;
    for (let i = from; i < to; i++) {
      const entryStart = at + ENTRY_HEADER;
      let w = entryStart + storedLength(0);
      chunk.set(head, w);
      w += head.length;
      // prev: the previous record's leaf hash in hex, from its bytes when we hold them.
      w =
        prevHash === null
          ? writeAscii(chunk, w, prevHex)
          : writeHex(chunk, w, prevHash, prevHashAt, HASH_BYTES);
      chunk.set(ENVELOPE_MIDDLE_BYTES, w);
      w += ENVELOPE_MIDDLE_BYTES.length;
      const record = records[i] as RecordText;
      if (typeof record === "string") w += chunk.write(record, w, "utf8");
      else {
        chunk.set(record, w);
        w += record.length;
      }
      // The tail: ,"seq":"N"[,"source":{…}],"timeReceivedUnixNano":"T","v":1|2} (format.ts
      // envelopeTail).
      const tail = tails[i] as TailBytes;
      chunk.set(ENVELOPE_SEQ_BYTES, w);
      w = writeDecimal(chunk, w + ENVELOPE_SEQ_BYTES.length, seq);
      chunk.set(tail.received, w);
      w = writeAscii(chunk, w + tail.received.length, received[i] as string);
      chunk.set(tail.end, w);
      w += tail.end.length;
      chunk.writeUInt32BE(w - entryStart, at);
      chunk[entryStart + HASH_BYTES] = 0x00;
      const digest = oneShotHash(
        "sha256",
        chunk.subarray(entryStart + HASH_BYTES, w),
        "buffer",
      ) as unknown as Buffer;
      chunk.set(digest, entryStart);
      prevHash = chunk;
      prevHashAt = entryStart;
      at = w;
      seq++;
    }
    chunks.push({
      firstSeq: chunkFirstSeq,
      lastSeq: seq - 1,
      bytes: 0,
      chunkBytes: chunk.length,
      cached: chunk,
      writtenAt: 0,
    });
    from = to;
  }
  const endPrev =
    prevHash === null ? prevHex : prevHash.toString("hex", prevHashAt, prevHashAt + HASH_BYTES);
  return { chunks, endPrev };
}

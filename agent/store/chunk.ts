import { promisify } from "node:util";
import { deflateRaw, deflateRawSync, inflateRaw } from "node:zlib";
import { StoredRecord } from "./record.js";

const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);

/**
 * How the WAL packs records into LevelDB values. One value ("chunk") holds consecutive
 * records, so a synced flush of thousands of records is a handful of LevelDB operations:
 *
 *   u32 count, then per record: u32 length, then `length` bytes of
 *   leaf hash (32) | 0x00 | canonical text
 *
 * A record's bytes are exactly the stored-record value the rest of the agent uses
 * (record.ts: hash at 0, leaf-hash input from 32), handed out as zero-copy views.
 */
export const CHUNK_HEADER = 4;
export const ENTRY_HEADER = 4;

/**
 * How a chunk is stored in LevelDB: 0x01, its u32 record count, its u32 length, then the
 * chunk deflated
 * (raw DEFLATE, level 1, in the libuv pool). Canonical records repeat their keys, resource
 * and scope, so chunks shrink several-fold, and the synced write — the cost that bounds
 * ingest — shrinks with them. A stored value that starts with 0x00 is an uncompressed
 * chunk (its count's high byte; chunks hold far fewer than 2^24 records), as earlier
 * versions wrote them.
 */
const COMPRESSED = 0x01;
const STORED_HEADER = 9;

/**
 * zlib's async calls work in `chunkSize` pieces (16 KiB by default), and every piece is a
 * round trip from the libuv pool to the event loop. Under load the event loop is busy for
 * milliseconds at a time, so a 1 MiB chunk took tens of milliseconds of waiting. One piece
 * as large as the whole output makes it one pool job. deflateBound is about n + n/1000 + 12.
 */
function oneJob(bytes: number): number {
  return bytes + (bytes >>> 9) + 1024;
}

/**
 * Chunks up to this size are deflated on the event loop. An async deflate costs about
 * 250 µs of CPU beyond the compression itself (a new zlib stream, its state, the pool round
 * trip; 110 µs of it on the event loop), while deflating a 40 KiB chunk (100 records) at
 * level 1 takes about 40 µs: the pool only pays for itself on large chunks (bursts), where
 * the event loop would otherwise stall for a millisecond or more.
 */
const DEFLATE_ON_LOOP_MAX = 256 << 10;

export async function storedChunk(chunk: Buffer): Promise<Buffer> {
  const deflated =
    chunk.length <= DEFLATE_ON_LOOP_MAX
      ? deflateRawSync(chunk, { level: 1, chunkSize: oneJob(chunk.length) })
      : await deflate(chunk, { level: 1, chunkSize: oneJob(chunk.length) });
  const stored = Buffer.allocUnsafe(STORED_HEADER + deflated.length);
  stored[0] = COMPRESSED;
  stored.writeUInt32BE(chunk.readUInt32BE(0), 1);
  stored.writeUInt32BE(chunk.length, 5);
  deflated.copy(stored, STORED_HEADER);
  return stored;
}

/** The chunk a stored value holds. */
export async function chunkOf(stored: Buffer): Promise<Buffer> {
  if (stored[0] !== COMPRESSED) return stored;
  // The header's length sizes the one piece; capped, as a damaged header must not make
  // zlib allocate gigabytes (a longer output simply takes more pieces).
  const length = Math.min(Math.max(stored.readUInt32BE(5), 64), 16 << 20);
  return inflate(stored.subarray(STORED_HEADER), { chunkSize: length + 64 });
}

/** Records in a stored value, read from its header. */
export function storedCount(stored: Buffer): number {
  return stored[0] === COMPRESSED ? stored.readUInt32BE(1) : stored.readUInt32BE(0);
}

/** Length of the chunk a stored value holds, read from its header. */
export function storedChunkLength(stored: Buffer): number {
  return stored[0] === COMPRESSED ? stored.readUInt32BE(5) : stored.length;
}

/**
 * Appends to `out` the records of a chunk (first record `firstSeq`) from seq `fromSeq` on,
 * stopping once `out` holds `maxRecords` or `maxBytes` of values is reached (counting from
 * `bytes`). Entries before `fromSeq` are stepped over without making objects for them: a
 * reader usually wants the tail of one chunk and the head of the next. Returns the new
 * byte count, or −1 when a limit stopped it.
 */
export function appendChunkRecords(
  out: StoredRecord[],
  firstSeq: number,
  chunk: Buffer,
  fromSeq: number,
  maxRecords: number,
  maxBytes: number,
  bytes: number,
): number {
  const count = chunk.readUInt32BE(0);
  let at = CHUNK_HEADER;
  for (let i = 0; i < count; i++) {
    const len = chunk.readUInt32BE(at);
    at += ENTRY_HEADER;
    if (firstSeq + i >= fromSeq) {
      out.push(new StoredRecord(firstSeq + i, chunk.subarray(at, at + len)));
      bytes += len;
      if (out.length >= maxRecords || bytes >= maxBytes) return -1;
    }
    at += len;
  }
  return bytes;
}

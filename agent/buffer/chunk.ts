import type { StoredRecord } from "./wal.js";

/**
 * How the WAL packs records into LevelDB values. One value ("chunk") holds consecutive
 * records, so a synced flush of thousands of records is a handful of LevelDB operations:
 *
 *   u32 count, then per record: u32 length, then `length` bytes of
 *   leaf hash (32) | 0x00 | canonical text
 *
 * A record's bytes are exactly the stored-record value the rest of the agent uses
 * (keys.ts: hash at 0, leaf-hash input from 32), handed out as zero-copy views.
 */
export const CHUNK_HEADER = 4;
export const ENTRY_HEADER = 4;

export function chunkCount(chunk: Buffer): number {
  return chunk.readUInt32BE(0);
}

/** The records of a chunk whose first record has seq `firstSeq`. */
export function decodeChunk(firstSeq: number, chunk: Buffer): StoredRecord[] {
  const count = chunk.readUInt32BE(0);
  const out: StoredRecord[] = new Array(count);
  let at = CHUNK_HEADER;
  for (let i = 0; i < count; i++) {
    const len = chunk.readUInt32BE(at);
    at += ENTRY_HEADER;
    out[i] = { seq: firstSeq + i, value: chunk.subarray(at, at + len) };
    at += len;
  }
  return out;
}

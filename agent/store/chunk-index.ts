import { createHash } from "node:crypto";
import { AgentError } from "../common/errors.js";
import { appendChunkRecords, chunkOf, storedChunkLength, storedCount } from "./chunk.js";
import { RECORD_RANGE, recordKey, seqOfRecordKey } from "./keyspace.js";
import type { StoredRecord } from "./record.js";
import { isStoreDamage, type Store } from "./store.js";

/** One stored chunk (see chunk.ts): its seq range, size, and its bytes while cached. */
export interface ChunkEntry {
  firstSeq: number;
  lastSeq: number;
  /** Bytes stored in LevelDB (key and compressed value). */
  bytes: number;
  /** Bytes of the chunk itself (uncompressed): what it costs in the cache and to read. */
  chunkBytes: number;
  cached: Buffer | null;
  /**
   * When its first record was received (epoch ms). NaN for a chunk found on disk at open
   * until it is read (receivedTimeOf): an agent restarted on a backlog must not report it
   * as new.
   */
  writtenAt: number;
}

/** Recent chunks kept in memory for the sealer and exporters, which read right behind ingest. */
const DEFAULT_CACHE_BYTES = 16 << 20;

/**
 * The in-memory index of the chunks the chain log holds, oldest first, with the newest
 * kept in memory up to a budget. It reads records by seq and hands out the chunks that a
 * release may delete; it writes nothing itself.
 */
export class ChunkIndex {
  private cachedBytes = 0;
  /** Bytes of every indexed chunk as stored (keys and values). */
  storedBytes: number;

  private constructor(
    private readonly store: Store,
    private readonly chunks: ChunkEntry[],
    private readonly cacheBytes: number,
  ) {
    this.storedBytes = 0;
    for (const c of chunks) this.storedBytes += c.bytes;
  }

  /** Indexes the chunks held in `store` (after a restart). */
  static async scan(store: Store, cacheBytes = DEFAULT_CACHE_BYTES): Promise<ChunkIndex> {
    const chunks: ChunkEntry[] = [];
    for await (const [key, value] of store.entries(RECORD_RANGE)) {
      const firstSeq = seqOfRecordKey(key);
      chunks.push({
        firstSeq,
        lastSeq: firstSeq + storedCount(value) - 1,
        bytes: key.length + value.length,
        chunkBytes: storedChunkLength(value),
        cached: null,
        writtenAt: Number.NaN,
      });
    }
    refuseGaps(store.directory, chunks);
    const index = new ChunkIndex(store, chunks, cacheBytes);
    const oldest = chunks[0];
    if (oldest) await index.resolveWrittenAt(oldest);
    return index;
  }

  /** When the store was opened: chunks found then were written before it. */
  private readonly openedAt = Date.now();
  private readonly resolving = new Set<ChunkEntry>();

  /** Seq of the oldest record held, or null when none is. */
  get firstSeq(): number | null {
    return this.chunks[0]?.firstSeq ?? null;
  }

  /** Indexes chunks just made durable (in seq order, after every indexed one). */
  add(chunks: readonly ChunkEntry[], writtenAt: number): void {
    for (const c of chunks) {
      c.writtenAt = writtenAt;
      this.chunks.push(c);
      this.storedBytes += c.bytes;
      this.cachedBytes += c.chunkBytes;
    }
    this.evictCache();
  }

  /** The oldest chunks whose records are all at or before `throughSeq`. */
  releasable(throughSeq: number): ChunkEntry[] {
    let n = 0;
    while (n < this.chunks.length && (this.chunks[n] as ChunkEntry).lastSeq <= throughSeq) n++;
    return this.chunks.slice(0, n);
  }

  /** Forgets the `gone` chunks (the oldest ones, deleted from the store). */
  drop(gone: readonly ChunkEntry[]): void {
    // Appends only push at the end, so the released chunks are still the first ones.
    this.chunks.splice(0, gone.length);
    for (const c of gone) {
      this.storedBytes -= c.bytes;
      if (c.cached) this.cachedBytes -= c.chunkBytes;
    }
  }

  /**
   * Up to `maxRecords` records with seq > afterSeq, stopping early once maxBytes is reached.
   * Chunks not in the cache are fetched together: under a saturating ingest every await
   * costs a full event-loop turn, so one LevelDB read after another would let a reader
   * fall further behind the further behind it is.
   */
  async read(afterSeq: number, maxRecords: number, maxBytes: number): Promise<StoredRecord[]> {
    const out: StoredRecord[] = [];
    let bytes = 0;
    let next = afterSeq + 1;
    for (;;) {
      // Locate by seq on every pass: releases splice the chunk index while we await a read.
      const entries = this.chunksToRead(next, maxRecords - out.length, maxBytes - bytes);
      if (entries.length === 0) return out;
      const bufs = await Promise.all(
        entries.map((e) => e.cached ?? this.readChunk(e).then((b) => b && this.checked(e, b))),
      );
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i] as ChunkEntry;
        const buf = bufs[i];
        if (!buf) {
          if (this.chunks.includes(entry)) {
            throw new Error(
              `WAL chunk ${entry.firstSeq}..${entry.lastSeq} is missing from LevelDB`,
            );
          }
          break; // released while we read: look again from `next`
        }
        // Chunks must follow one another: a gap or a broken link between two of them is a
        // chunk lost or a key altered on disk, never records to skip.
        if (entry.firstSeq > next)
          throw this.damaged({
            seq: next,
            detail: `is missing: the log goes on at seq ${entry.firstSeq} (a record chunk was lost or its key altered)`,
          });
        const before = out.length;
        bytes = appendChunkRecords(out, entry.firstSeq, buf, next, maxRecords, maxBytes, bytes);
        this.checkLink(out, before);
        if (bytes < 0) return out;
        next = entry.lastSeq + 1;
      }
    }
  }

  /**
   * A chunk read back from LevelDB, once each record in it is shown unaltered: its stored
   * leaf hash is the hash of its text, and its `prev` the leaf hash of the record before it
   * in the chunk. A chunk still in memory never left this process; one read from disk may
   * have rotted there or been edited, and nothing altered may leave the WAL
   * (docs/architecture.md). A mismatch is a RecordAlteredError, which stops ingest too.
   */
  private checked(entry: ChunkEntry, chunk: Buffer): Buffer {
    let problem: RecordDamage | null;
    try {
      problem = alteredRecord(entry.firstSeq, chunk, entry.lastSeq - entry.firstSeq + 1);
    } catch (err) {
      // Its framing (record lengths) was altered: it cannot even be split into records.
      problem = {
        seq: entry.firstSeq,
        detail: `cannot be read back (its chunk is malformed: ${(err as Error).message})`,
      };
    }
    if (problem === null) return chunk;
    throw this.damaged(problem);
  }

  /** The first record a chunk added at `at` links to the one before it, when both were read. */
  private checkLink(out: readonly StoredRecord[], at: number): void {
    const previous = out[at - 1];
    const first = out[at];
    if (!previous || !first || first.seq !== previous.seq + 1) return;
    if (prevOf(first.value) !== previous.leafHashHex())
      throw this.damaged({
        seq: first.seq,
        detail: `does not link to seq ${previous.seq} (its prev is not that record's leaf hash)`,
      });
  }

  /** The first altered record found (sticky: the log stays refused until it is repaired). */
  damage: RecordDamage | null = null;
  /** Called once with the first altered record found. */
  onDamage?: (damage: RecordDamage) => void;

  /** The chunks from the one holding `seq` on that cover `records` or `bytes`. */
  private chunksToRead(seq: number, records: number, bytes: number): ChunkEntry[] {
    const entries: ChunkEntry[] = [];
    let span = 0;
    let fetchBytes = 0;
    for (let i = this.indexOf(seq); i < this.chunks.length; i++) {
      const entry = this.chunks[i] as ChunkEntry;
      entries.push(entry);
      span += entry.lastSeq - Math.max(entry.firstSeq, seq) + 1;
      fetchBytes += entry.chunkBytes;
      if (span >= records || fetchBytes >= bytes) break;
    }
    return entries;
  }

  /** A chunk read back from LevelDB (undefined when it was released meanwhile). */
  private async readChunk(entry: ChunkEntry): Promise<Buffer | undefined> {
    let stored: Buffer | undefined;
    try {
      stored = await this.store.get(recordKey(entry.firstSeq));
    } catch (err) {
      // LevelDB found a damaged block (a checksum): the records in it are altered too.
      if (!isStoreDamage(err)) throw err;
      throw this.damaged({ seq: entry.firstSeq, detail: `cannot be read back: ${String(err)}` });
    }
    if (stored === undefined) return undefined;
    try {
      return await chunkOf(stored);
    } catch (err) {
      // The chunk's compressed bytes were altered: nothing in it can be trusted.
      throw this.damaged({
        seq: entry.firstSeq,
        detail: `cannot be read back (its chunk does not decompress: ${(err as Error).message})`,
      });
    }
  }

  /** Records the first damage found and makes the error that reports it. */
  private damaged(problem: RecordDamage): RecordAlteredError {
    this.damage ??= problem;
    this.onDamage?.(problem);
    return new RecordAlteredError(problem);
  }

  /**
   * When the record `seq` was received (epoch ms; its chunk's first record's), or null when
   * it is not held. For a chunk found at open and not read yet, the open time (it is at least
   * that old) while its receive time is read, for the next call.
   */
  writtenAt(seq: number): number | null {
    const c = this.chunks[this.indexOf(seq)];
    if (!c || c.firstSeq > seq) return null;
    if (!Number.isNaN(c.writtenAt)) return c.writtenAt;
    void this.resolveWrittenAt(c);
    return this.openedAt;
  }

  /** Reads a chunk found at open for its first record's receive time. */
  private async resolveWrittenAt(c: ChunkEntry): Promise<void> {
    if (this.resolving.has(c)) return;
    this.resolving.add(c);
    try {
      const chunk = await this.readChunk(c);
      const first: StoredRecord[] = [];
      if (chunk) appendChunkRecords(first, c.firstSeq, chunk, c.firstSeq, 1, Infinity, 0);
      const received = first[0] ? receivedAtMs(first[0].canonicalText()) : null;
      c.writtenAt = received ?? this.openedAt;
    } catch {
      c.writtenAt = this.openedAt; // unreadable here: the reader that needs it will say so
    } finally {
      this.resolving.delete(c);
    }
  }

  /** Index of the chunk holding `seq` (or the first one after it). */
  private indexOf(seq: number): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.chunks[mid] as ChunkEntry).lastSeq < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Keeps the newest chunks in memory up to the cache budget. */
  private evictCache(): void {
    for (let i = 0; this.cachedBytes > this.cacheBytes && i < this.chunks.length; i++) {
      const c = this.chunks[i] as ChunkEntry;
      if (c.cached) {
        this.cachedBytes -= c.chunkBytes;
        c.cached = null;
      }
    }
  }
}

const RECEIVED = '"timeReceivedUnixNano":"';

/** The receive time (epoch ms) in a record envelope's text, or null. */
function receivedAtMs(text: string): number | null {
  const at = text.lastIndexOf(RECEIVED);
  if (at < 0) return null;
  const from = at + RECEIVED.length;
  const digits = text.slice(from, text.indexOf('"', from));
  if (!/^\d{7,25}$/.test(digits)) return null;
  return Number(digits.slice(0, -6));
}

/**
 * Chunks found at open must follow one another without a gap or an overlap (released
 * chunks go from the oldest end only): otherwise a chunk was lost or a key altered, and
 * the log is refused before anything reads past the hole.
 */
function refuseGaps(directory: string, chunks: readonly ChunkEntry[]): void {
  for (let i = 1; i < chunks.length; i++) {
    const before = chunks[i - 1] as ChunkEntry;
    const c = chunks[i] as ChunkEntry;
    if (c.firstSeq !== before.lastSeq + 1)
      throw new AgentError(
        "WAL_DAMAGED",
        `the write-ahead log at ${directory} is damaged: its records jump from seq ${before.lastSeq} to seq ${c.firstSeq} (a record chunk was lost or its key altered on disk); the agent stops rather than export or acknowledge around the hole, and changed nothing. See what survives with \`audit-agent wal check --dir ${directory}\`; restore the WAL from a backup, or declare the loss with \`audit-agent wal new-chain --dir ${directory} --reason "<what happened>"\``,
      );
  }
}

/** A record of the WAL that does not match its stored leaf hash or link. */
export interface RecordDamage {
  seq: number;
  detail: string;
}

export class RecordAlteredError extends AgentError {
  constructor(readonly damage: RecordDamage) {
    super(
      "WAL_RECORD_ALTERED",
      `record seq ${damage.seq} in the write-ahead log ${damage.detail}: the disk altered it, or someone did. Nothing altered is exported, and no request is acknowledged until the log is repaired`,
    );
  }
}

const PREV_MEMBER = Buffer.from('"prev":"');

/** The `prev` member of a stored record's text (64 hex digits), or "" when it has none. */
export function prevOf(value: Buffer): string {
  const at = value.indexOf(PREV_MEMBER, 33);
  return at < 0
    ? ""
    : value.toString("latin1", at + PREV_MEMBER.length, at + PREV_MEMBER.length + 64);
}

/** The first record of `chunk` that is altered, or null: see ChunkIndex.checked. */
export function alteredRecord(firstSeq: number, chunk: Buffer, count: number): RecordDamage | null {
  const records: StoredRecord[] = [];
  appendChunkRecords(
    records,
    firstSeq,
    chunk,
    firstSeq,
    Number.POSITIVE_INFINITY,
    Number.POSITIVE_INFINITY,
    0,
  );
  if (records.length !== count)
    return {
      seq: firstSeq,
      detail: `cannot be read back (its chunk holds ${records.length} records, its key and header say ${count})`,
    };
  let before: StoredRecord | null = null;
  for (const r of records) {
    const v = r.value;
    // value: leaf hash (32) | 0x00 | canonical text; the hash input starts at the 0x00.
    const computed = createHash("sha256").update(v.subarray(32)).digest();
    if (v[32] !== 0 || !computed.equals(v.subarray(0, 32)))
      return { seq: r.seq, detail: "does not match its stored leaf hash" };
    if (before !== null) {
      if (prevOf(v) !== before.value.toString("hex", 0, 32))
        return {
          seq: r.seq,
          detail: `does not link to seq ${before.seq} (its prev is not that record's leaf hash)`,
        };
    }
    before = r;
  }
  return null;
}

import { hash as oneShotHash, randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { ClassicLevel } from "classic-level";
import {
  CHAIN_ID_PATTERN,
  ENVELOPE_MIDDLE,
  envelopeHead,
  ENVELOPE_END,
  ENVELOPE_RECEIVED,
  ENVELOPE_SEQ,
  genesisHash,
} from "../integrity/format.js";
import { AgentError } from "../common/errors.js";
import { decimalLength, writeAscii, writeDecimal, writeHex } from "../integrity/json-bytes.js";
import {
  CHUNK_HEADER,
  chunkOf,
  appendChunkRecords,
  ENTRY_HEADER,
  storedChunk,
  storedChunkLength,
  storedCount,
} from "./chunk.js";
import {
  CANONICAL_OFFSET,
  CHAIN_KEY,
  CURSOR_PREFIX,
  cursorKey,
  exporterStateKey,
  HASH_BYTES,
  HEAD_KEY,
  RECORD_KEY_END,
  recordKey,
  seqOfRecordKey,
} from "./keyspace.js";

/**
 * The write-ahead log: the chain's durable home between receipt and export.
 *
 * - append() resolves only after the records are in LevelDB with sync: true.
 * - Appends that arrive while a write is in flight are queued and written together in
 *   the next single synced batch (group commit), so fsync cost is shared.
 * - Seq, prev and leaf hash are assigned when the batch is built, in write order, and the
 *   head is advanced only after the write succeeds: a failed write leaves no gap.
 * - A request's records are never split across batches, so a crash keeps all or none.
 * - Records leave the log only when every exporter's cursor has passed them.
 */

export interface WalOptions {
  directory: string;
  maxBytes: number;
  /** Fixed chain id from config; when absent the persisted one is used or a new one made. */
  chainId?: string;
  /** Upper bound on one group-commit batch, so a burst does not become one giant write. */
  maxBatchBytes?: number;
  /** Bytes of recent records kept in memory for the batcher and exporters (default 16 MiB). */
  cacheBytes?: number;
}

export interface ExporterState {
  get(key: string): Promise<string | undefined>;
  /** Synced: the value is durable when the promise resolves. */
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
}

export interface StoredRecord {
  seq: number;
  /** hash(32) | 0x00 | canonical text; see keys.ts. */
  value: Buffer;
}

export interface AppendResult {
  firstSeq: number;
  count: number;
}

/** A record's canonical `record` text, as a string or as its UTF-8 bytes. */
export type RecordText = string | Uint8Array;

interface PendingAppend {
  records: ReadonlyArray<RecordText>;
  receivedUnixNano: string;
  estimate: number;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

/** A group commit ready to write: its chained chunks, its LevelDB batch and its appends. */
interface PreparedGroup {
  batch: PendingAppend[];
  firstSeq: number;
  /** The seq after the group's last record, and that record's leaf hash in hex. */
  endSeq: number;
  endPrev: string;
  chunks: ChunkEntry[];
  ops: Array<{ type: "put"; key: Buffer; value: Buffer }>;
  /** Bytes the group stores in LevelDB (keys and values of its chunks). */
  bytes: number;
  estimate: number;
  /** Set when preparing failed (compression): the group is failed as its write would be. */
  failure: unknown;
}

const ENVELOPE_MIDDLE_BYTES = Buffer.from(ENVELOPE_MIDDLE, "latin1");
const ENVELOPE_SEQ_BYTES = Buffer.from(ENVELOPE_SEQ, "latin1");
const ENVELOPE_RECEIVED_BYTES = Buffer.from(ENVELOPE_RECEIVED, "latin1");
const ENVELOPE_END_BYTES = Buffer.from(ENVELOPE_END, "latin1");
/** The tail's bytes other than the seq and receive-time digits. */
const TAIL_FIXED_BYTES =
  ENVELOPE_SEQ_BYTES.length + ENVELOPE_RECEIVED_BYTES.length + ENVELOPE_END_BYTES.length;

/** Group commits smaller than this are written uncompressed (see prepare). */
const COMPRESS_MIN_BYTES = 64 << 10;

function bytesInChunks(chunks: readonly ChunkEntry[]): number {
  let n = 0;
  for (const c of chunks) n += c.chunkBytes;
  return n;
}

/** Bytes charged for a record beyond its canonical `record` text: envelope, hash and key. */
const PER_RECORD_OVERHEAD = 260;
const DEFAULT_MAX_BATCH_BYTES = 16 * 1024 * 1024;

export class BufferFullError extends AgentError {
  constructor(maxBytes: number) {
    super(
      "WAL_FULL",
      `the write-ahead log is full (${maxBytes} bytes): exporters are behind; retry later`,
    );
  }
}

export class StorageError extends AgentError {
  constructor(cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super("WAL_WRITE_FAILED", `could not write to the write-ahead log: ${why}`, { cause });
  }
}

interface HeadState {
  seq: number;
  hash: string;
}

/** One stored chunk (see chunk.ts): its seq range, size, and its bytes while cached. */
interface ChunkEntry {
  firstSeq: number;
  lastSeq: number;
  /** Bytes stored in LevelDB (key and compressed value). */
  bytes: number;
  /** Bytes of the chunk itself (uncompressed): what it costs in the cache and to read. */
  chunkBytes: number;
  cached: Buffer | null;
  /** When the chunk was written (epoch ms; at open for chunks found on disk). */
  writtenAt: number;
}

/** Chunks are cut at about this size, so a reader never loads a huge value for one record. */
const CHUNK_TARGET_BYTES = 1 << 20;
/** Recent chunks kept in memory for the batcher and exporters, which read right behind ingest. */
const DEFAULT_CACHE_BYTES = 16 << 20;

export class WriteAheadLog {
  readonly chainId: string;
  readonly directory: string;
  readonly maxBytes: number;
  private readonly db: ClassicLevel<Buffer, Buffer>;
  private readonly maxBatchBytes: number;
  private nextSeq: number;
  private prevHex: string;
  private pending: PendingAppend[] = [];
  private pendingBytes = 0;
  private writing = false;
  private closed = false;
  private storedBytes: number;
  /** Every stored chunk, oldest first: the in-memory index of the log. */
  private readonly chunks: ChunkEntry[];
  private cachedBytes = 0;
  private readonly cacheBytes: number;
  /** Highest seq already removed from the log (−1 when nothing was). */
  private releasedThrough: number;
  private releasing: Promise<void> = Promise.resolve();
  private readonly cursors = new Map<string, number>();
  private appendWaiters: Array<() => void> = [];
  /** Synced LevelDB writes made so far; fewer than appends when group commit shares them. */
  syncedWrites = 0;
  /**
   * Asked before each group commit is prepared: null to go ahead, or a promise to wait for
   * (the batcher's sealingGate). Appends keep queuing meanwhile, within max_size_mib.
   */
  writeGate: (() => Promise<void> | null) | null = null;
  /** Observer of each synced group-commit write: its duration and how many records it held. */
  onSyncedWrite: ((seconds: number, records: number) => void) | null = null;
  private idleWaiters: Array<() => void> = [];

  private constructor(
    db: ClassicLevel<Buffer, Buffer>,
    options: WalOptions,
    chainId: string,
    head: HeadState,
    storedBytes: number,
    chunks: ChunkEntry[],
    releasedThrough: number,
  ) {
    this.db = db;
    this.directory = options.directory;
    this.maxBytes = options.maxBytes;
    this.maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.chainId = chainId;
    this.nextSeq = head.seq + 1;
    this.prevHex = head.hash;
    this.storedBytes = storedBytes;
    this.chunks = chunks;
    this.cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
    this.releasedThrough = releasedThrough;
  }

  static async open(options: WalOptions): Promise<WriteAheadLog> {
    mkdirSync(options.directory, { recursive: true });
    const db = new ClassicLevel<Buffer, Buffer>(options.directory, {
      keyEncoding: "buffer",
      valueEncoding: "buffer",
      // Records usually leave the log seconds after they arrive: a larger memtable lets
      // most of them be written and deleted before they are ever flushed and compacted.
      writeBufferSize: 16 << 20,
    });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: Error }).cause ?? err;
      const why = cause instanceof Error ? cause.message : String(cause);
      const hint = /lock/i.test(why)
        ? " (another audit-agent process is using this WAL directory; give each agent its own)"
        : "";
      throw new AgentError(
        "WAL_OPEN_FAILED",
        `cannot open the write-ahead log at ${options.directory}: ${why}${hint}`,
        { cause: err },
      );
    }
    try {
      const chainId = await WriteAheadLog.loadChainId(db, options);
      const headRaw = await db.get(HEAD_KEY);
      const head: HeadState = headRaw
        ? (JSON.parse(headRaw.toString("utf8")) as HeadState)
        : { seq: -1, hash: genesisHash(chainId).toString("hex") };
      const { storedBytes, chunks, firstSeq } = await WriteAheadLog.scanStored(db);
      const releasedThrough = firstSeq === null ? head.seq : firstSeq - 1;
      return new WriteAheadLog(db, options, chainId, head, storedBytes, chunks, releasedThrough);
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  private static async loadChainId(
    db: ClassicLevel<Buffer, Buffer>,
    options: WalOptions,
  ): Promise<string> {
    const raw = await db.get(CHAIN_KEY);
    if (raw) {
      const stored = (JSON.parse(raw.toString("utf8")) as { chainId: string }).chainId;
      if (options.chainId && options.chainId !== stored) {
        throw new AgentError(
          "WAL_CHAIN_MISMATCH",
          `the write-ahead log at ${options.directory} holds chain "${stored}" but the config sets chain_id "${options.chainId}": remove chain_id from the config or point the WAL at a new directory`,
        );
      }
      return stored;
    }
    const chainId = options.chainId ?? randomBytes(16).toString("hex");
    if (!CHAIN_ID_PATTERN.test(chainId)) {
      throw new AgentError(
        "WAL_BAD_CHAIN_ID",
        `chain id "${chainId}" must match ${CHAIN_ID_PATTERN}`,
      );
    }
    const meta = { chainId, createdAt: new Date().toISOString() };
    await db.put(CHAIN_KEY, Buffer.from(JSON.stringify(meta)), { sync: true });
    return chainId;
  }

  /** Indexes the chunks still held (after a restart). */
  private static async scanStored(db: ClassicLevel<Buffer, Buffer>) {
    let storedBytes = 0;
    const chunks: ChunkEntry[] = [];
    for await (const [key, value] of db.iterator({ gte: recordKey(0), lt: RECORD_KEY_END })) {
      const firstSeq = seqOfRecordKey(key);
      const bytes = key.length + value.length;
      chunks.push({
        firstSeq,
        lastSeq: firstSeq + storedCount(value) - 1,
        bytes,
        chunkBytes: storedChunkLength(value),
        cached: null,
        writtenAt: Date.now(),
      });
      storedBytes += bytes;
    }
    return { storedBytes, chunks, firstSeq: chunks[0]?.firstSeq ?? null };
  }

  /** Seq of the last durable record, −1 when the chain is empty. */
  get headSeq(): number {
    return this.nextSeq - 1;
  }

  get headHash(): string {
    return this.prevHex;
  }

  /** Bytes of records held, plus bytes accepted but not yet written. */
  get usedBytes(): number {
    return this.storedBytes + this.pendingBytes;
  }

  get oldestHeldSeq(): number {
    return this.releasedThrough + 1;
  }

  /**
   * Chains and durably stores `records` (each the canonical JSON of one `record` member).
   * Rejects with BufferFullError, without touching anything, when they would not fit.
   */
  append(records: ReadonlyArray<RecordText>, receivedUnixNano: string): Promise<AppendResult> {
    if (records.length === 0) return Promise.resolve({ firstSeq: this.nextSeq, count: 0 });
    if (this.closed)
      return Promise.reject(new AgentError("WAL_CLOSED", "the agent is shutting down"));
    let estimate = 0;
    for (let i = 0; i < records.length; i++)
      estimate += (records[i] as RecordText).length + PER_RECORD_OVERHEAD;
    if (this.storedBytes + this.pendingBytes + estimate > this.maxBytes) {
      return Promise.reject(new BufferFullError(this.maxBytes));
    }
    return new Promise<AppendResult>((resolve, reject) => {
      this.pending.push({ records, receivedUnixNano, estimate, resolve, reject });
      this.pendingBytes += estimate;
      // Writes already in flight pick the queue up when they finish; otherwise start one
      // after the current tick so requests decoded in the same tick share it.
      if (!this.writing) {
        this.writing = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private takeBatch(): PendingAppend[] {
    let bytes = 0;
    let n = 0;
    while (n < this.pending.length) {
      const p = this.pending[n] as PendingAppend;
      if (n > 0 && bytes + p.estimate > this.maxBatchBytes) break;
      bytes += p.estimate;
      n++;
    }
    return this.pending.splice(0, n);
  }

  /**
   * The group-commit loop. Each group is chained, hashed and compressed, then written in
   * one synced LevelDB batch. While a group's write is in flight the next group — whatever
   * arrived meanwhile — is chained from the head that write will make and compressed, so
   * under load the disk and the CPU work overlap instead of taking turns. Writes stay
   * strictly one after another: a group is written only once the one before it is durable.
   */
  private async flush(): Promise<void> {
    await this.admitted();
    let group: PreparedGroup | null = await this.prepare(
      this.takeBatch(),
      this.nextSeq,
      this.prevHex,
    );
    while (group !== null) {
      const started = performance.now();
      const written = group.failure
        ? Promise.resolve(group.failure)
        : this.db.batch(group.ops, { sync: true }).then(
            () => null,
            (err: unknown) => err,
          );
      // The next group is prepared now unless the gate holds it (then it waits below).
      const held = this.pending.length > 0 ? (this.writeGate?.() ?? null) : null;
      const following: Promise<PreparedGroup> | null =
        this.pending.length > 0 && held === null
          ? this.prepare(this.takeBatch(), group.endSeq, group.endPrev)
          : null;
      const failure = await written;
      this.onSyncedWrite?.((performance.now() - started) / 1000, group.endSeq - group.firstSeq);
      if (failure === null) {
        this.commitGroup(group);
        group = following ? await following : null;
      } else {
        // The write may or may not have reached the disk; the persisted head is the truth.
        await this.reloadHead();
        const error = new StorageError(failure);
        this.pendingBytes -= group.estimate;
        for (const p of group.batch) p.reject(error);
        // The next group was chained onto a head that never became durable: queue its
        // appends again, to be chained from the head actually on disk.
        if (following) {
          const requeued = (await following).batch;
          this.pending.unshift(...requeued);
        }
        group = null;
      }
      if (group === null && this.pending.length > 0) {
        if (held) await held;
        else await this.admitted();
        group = await this.prepare(this.takeBatch(), this.nextSeq, this.prevHex);
      }
    }
    this.writing = false;
    const idle = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of idle) w();
  }

  private async admitted(): Promise<void> {
    const wait = this.writeGate?.();
    if (wait) await wait;
  }

  /**
   * Chains `batch` after (firstSeq − 1, prevHex): writes each record's stored entry into
   * chunks and hashes it, then compresses the chunks in the libuv pool. Does not touch the
   * log's head, which moves only when the group is durable (commitGroup).
   */
  private async prepare(
    batch: PendingAppend[],
    firstSeq: number,
    prevHex: string,
  ): Promise<PreparedGroup> {
    const ops: Array<{ type: "put"; key: Buffer; value: Buffer }> = [];
    const newChunks: ChunkEntry[] = [];
    const head = envelopeHead(this.chainId);
    const headLen = head.length;
    const middleLen = ENVELOPE_MIDDLE.length;
    let seq = firstSeq;
    let prev = prevHex;
    let estimate = 0;
    // Pass 1: exact byte length of every record's stored entry (the envelope's parts are
    // known ahead: prev is always 64 hex digits), and where chunks are cut.
    const records: RecordText[] = [];
    const received: string[] = [];
    // Per record: the bytes its entry takes after the entry header.
    const entryLens: number[] = [];
    const cuts: number[] = []; // index one past each chunk's last record
    const fixedLen = CANONICAL_OFFSET + headLen + 64 + middleLen + TAIL_FIXED_BYTES;
    let chunkSize = CHUNK_HEADER;
    let s = seq;
    for (const p of batch) {
      estimate += p.estimate;
      const receivedLen = p.receivedUnixNano.length;
      for (const record of p.records) {
        const len = typeof record === "string" ? Buffer.byteLength(record, "utf8") : record.length;
        const entryLen = fixedLen + len + decimalLength(s++) + receivedLen;
        records.push(record);
        received.push(p.receivedUnixNano);
        entryLens.push(entryLen);
        chunkSize += ENTRY_HEADER + entryLen;
        if (chunkSize >= CHUNK_TARGET_BYTES) {
          cuts.push(records.length);
          chunkSize = CHUNK_HEADER;
        }
      }
    }
    if (cuts[cuts.length - 1] !== records.length) cuts.push(records.length);
    // Pass 2: write each chunk's entries in place and hash them: 0x00 || canonical text is
    // the RFC 6962 leaf-hash input; the hash is stored and, in hex, is the next prev.
    const headBytes = Buffer.from(head, "latin1");
    let prevHash: Buffer | null = null;
    let prevHashAt = 0;
    let from = 0;
    for (const to of cuts) {
      if (to === from) continue;
      let size = CHUNK_HEADER;
      for (let i = from; i < to; i++) size += ENTRY_HEADER + (entryLens[i] as number);
      const chunk = Buffer.allocUnsafe(size);
      chunk.writeUInt32BE(to - from, 0);
      const chunkFirstSeq = seq;
      let at = CHUNK_HEADER;
      for (let i = from; i < to; i++) {
        const entryStart = at + ENTRY_HEADER;
        let w = entryStart + CANONICAL_OFFSET;
        chunk.set(headBytes, w);
        w += headBytes.length;
        // prev: the previous record's leaf hash in hex, from its bytes when we hold them.
        w =
          prevHash === null
            ? writeAscii(chunk, w, prev)
            : writeHex(chunk, w, prevHash, prevHashAt, HASH_BYTES);
        chunk.set(ENVELOPE_MIDDLE_BYTES, w);
        w += ENVELOPE_MIDDLE_BYTES.length;
        const record = records[i] as RecordText;
        if (typeof record === "string") w += chunk.write(record, w, "utf8");
        else {
          chunk.set(record, w);
          w += record.length;
        }
        // The tail: ,"seq":"N","timeReceivedUnixNano":"T","v":1} (format.ts envelopeTail).
        chunk.set(ENVELOPE_SEQ_BYTES, w);
        w = writeDecimal(chunk, w + ENVELOPE_SEQ_BYTES.length, seq);
        chunk.set(ENVELOPE_RECEIVED_BYTES, w);
        w = writeAscii(chunk, w + ENVELOPE_RECEIVED_BYTES.length, received[i] as string);
        chunk.set(ENVELOPE_END_BYTES, w);
        w += ENVELOPE_END_BYTES.length;
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
      newChunks.push({
        firstSeq: chunkFirstSeq,
        lastSeq: seq - 1,
        bytes: 0,
        chunkBytes: chunk.length,
        cached: chunk,
        writtenAt: 0,
      });
      from = to;
    }
    if (prevHash !== null) prev = prevHash.toString("hex", prevHashAt, prevHashAt + HASH_BYTES);
    ops.push({
      type: "put",
      key: HEAD_KEY,
      value: Buffer.from(`{"seq":${seq - 1},"hash":"${prev}"}`),
    });
    let failure: unknown = null;
    let bytes = 0;
    try {
      // Chunks are compressed in the libuv pool, in parallel, off the event loop. A small
      // write is stored as it is: the pool round trip would cost more than the bytes saved.
      const small = bytesInChunks(newChunks) < COMPRESS_MIN_BYTES;
      const stored = small
        ? newChunks.map((c) => c.cached as Buffer)
        : await Promise.all(newChunks.map((c) => storedChunk(c.cached as Buffer)));
      const puts = newChunks.map((c, i) => {
        const key = recordKey(c.firstSeq);
        const value = stored[i] as Buffer;
        c.bytes = key.length + value.length;
        bytes += c.bytes;
        return { type: "put" as const, key, value };
      });
      ops.unshift(...puts);
    } catch (err) {
      failure = err;
    }
    return {
      batch,
      firstSeq,
      endSeq: seq,
      endPrev: prev,
      chunks: newChunks,
      ops,
      bytes,
      estimate,
      failure,
    };
  }

  /** Makes a durable group the log's head, indexes its chunks and answers its appends. */
  private commitGroup(group: PreparedGroup): void {
    this.pendingBytes -= group.estimate;
    this.syncedWrites++;
    let first = this.nextSeq;
    this.nextSeq = group.endSeq;
    this.prevHex = group.endPrev;
    this.storedBytes += group.bytes;
    const now = Date.now();
    for (const c of group.chunks) {
      c.writtenAt = now;
      this.chunks.push(c);
      this.cachedBytes += c.chunkBytes;
    }
    this.evictCache();
    for (const p of group.batch) {
      p.resolve({ firstSeq: first, count: p.records.length });
      first += p.records.length;
    }
    const waiters = this.appendWaiters;
    this.appendWaiters = [];
    for (const w of waiters) w();
  }

  private async reloadHead(): Promise<void> {
    try {
      const raw = await this.db.get(HEAD_KEY);
      if (!raw) return;
      const head = JSON.parse(raw.toString("utf8")) as HeadState;
      this.nextSeq = head.seq + 1;
      this.prevHex = head.hash;
    } catch {
      // Still failing: keep the in-memory head; the next write will fail the same way.
    }
  }

  /** Resolves once a record with seq > afterSeq is durable (immediately if one is). */
  waitForRecordsAfter(afterSeq: number): Promise<void> {
    if (this.headSeq > afterSeq) return Promise.resolve();
    return new Promise((resolve) => this.appendWaiters.push(resolve));
  }

  /** Wakes every waiter (used at shutdown so exporter loops can observe it). */
  wakeWaiters(): void {
    const waiters = this.appendWaiters;
    this.appendWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Up to `maxRecords` records with seq > afterSeq, stopping early once maxBytes is reached.
   * Chunks not in the tail cache are fetched together: under a saturating ingest every
   * await costs a full event-loop turn, so one LevelDB read after another would let a
   * reader fall further behind the further behind it is.
   */
  async read(afterSeq: number, maxRecords: number, maxBytes: number): Promise<StoredRecord[]> {
    const out: StoredRecord[] = [];
    let bytes = 0;
    let next = afterSeq + 1;
    for (;;) {
      // Locate by seq on every pass: releases splice the chunk index while we await a read.
      const entries: ChunkEntry[] = [];
      let span = 0;
      let fetchBytes = 0;
      for (let i = this.chunkIndexOf(next); i < this.chunks.length; i++) {
        const entry = this.chunks[i] as ChunkEntry;
        entries.push(entry);
        span += entry.lastSeq - Math.max(entry.firstSeq, next) + 1;
        fetchBytes += entry.chunkBytes;
        if (out.length + span >= maxRecords || bytes + fetchBytes >= maxBytes) break;
      }
      if (entries.length === 0) return out;
      const bufs = await Promise.all(entries.map((e) => e.cached ?? this.readChunk(e)));
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
        bytes = appendChunkRecords(out, entry.firstSeq, buf, next, maxRecords, maxBytes, bytes);
        if (bytes < 0) return out;
        next = entry.lastSeq + 1;
      }
    }
  }

  /** A chunk read back from LevelDB (undefined when it was released meanwhile). */
  private async readChunk(entry: ChunkEntry): Promise<Buffer | undefined> {
    const stored = await this.db.get(recordKey(entry.firstSeq));
    return stored === undefined ? undefined : chunkOf(stored);
  }

  /** When the record `seq` was written (epoch ms), or null when it is not held. */
  writtenAt(seq: number): number | null {
    const c = this.chunks[this.chunkIndexOf(seq)];
    return c && c.firstSeq <= seq ? c.writtenAt : null;
  }

  /** Records held (written and not yet released by every exporter). */
  get heldRecords(): number {
    return this.headSeq - this.releasedThrough;
  }

  /** Index of the chunk holding `seq` (or the first one after it). */
  private chunkIndexOf(seq: number): number {
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

  /**
   * The last seq an exporter has durably delivered, or the point it starts from: an
   * exporter new to this log starts at the oldest record still held.
   */
  async loadCursor(exporterId: string): Promise<number> {
    return (await this.loadCursorState(exporterId)).seq;
  }

  /** The cursor with the index of the last sealed batch delivered (null if never recorded). */
  async loadCursorState(exporterId: string): Promise<{ seq: number; index: number | null }> {
    const raw = (await this.db.get(cursorKey(exporterId)))?.toString("utf8");
    const [seqText, indexText] = raw ? raw.split(":") : [];
    const seq = seqText === undefined ? this.releasedThrough : Number(seqText);
    this.cursors.set(exporterId, seq);
    return { seq, index: indexText === undefined ? null : Number(indexText) };
  }

  /** Exporters no longer configured must not hold records forever. */
  async forgetCursorsExcept(exporterIds: readonly string[]): Promise<string[]> {
    const keep = new Set(exporterIds.map((id) => `${CURSOR_PREFIX}${id}`));
    const dropped: string[] = [];
    for await (const key of this.db.keys({
      gte: Buffer.from(CURSOR_PREFIX),
      lt: Buffer.from("c;"),
    })) {
      const name = key.toString("utf8");
      if (!keep.has(name)) {
        const id = name.slice(CURSOR_PREFIX.length);
        dropped.push(id);
        await this.db.del(key);
        // Its private state (e.g. Loki entry timestamps) goes with it.
        await this.db.clear({ gte: exporterStateKey(id, ""), lt: exporterStateKey(id, "\uffff") });
      }
    }
    return dropped;
  }

  /**
   * Records that `exporterId` holds everything up to `seq` and, in the same LevelDB batch,
   * deletes the chunks every exporter now holds. One write, not two: each LevelDB write
   * queues behind the synced group commits of a busy ingest. The write need not be synced:
   * LevelDB applies its log in order, so a crash never keeps a later release without the
   * cursors that justify it, and a lost cursor only means a batch is delivered again.
   */
  async commitCursor(exporterId: string, seq: number, index?: number): Promise<void> {
    this.cursors.set(exporterId, seq);
    const cursor = {
      type: "put" as const,
      key: cursorKey(exporterId),
      value: Buffer.from(index === undefined ? String(seq) : `${seq}:${index}`),
    };
    // Serialized, so releases apply in order and never compute from a stale chunk index.
    this.releasing = this.releasing
      .catch(() => undefined)
      .then(() => this.writeCursorAndRelease(cursor));
    await this.releasing;
  }

  private async writeCursorAndRelease(cursor: { type: "put"; key: Buffer; value: Buffer }) {
    let min = Number.POSITIVE_INFINITY;
    for (const s of this.cursors.values()) if (s < min) min = s;
    const throughSeq = Number.isFinite(min) && min > this.releasedThrough ? min : null;
    let n = 0;
    if (throughSeq !== null) {
      while (n < this.chunks.length && (this.chunks[n] as ChunkEntry).lastSeq <= throughSeq) n++;
    }
    const gone = this.chunks.slice(0, n);
    await this.db.batch([
      cursor,
      ...gone.map((c) => ({ type: "del" as const, key: recordKey(c.firstSeq) })),
    ]);
    // Appends only push at the end, so the released chunks are still the first n.
    this.chunks.splice(0, n);
    for (const c of gone) {
      this.storedBytes -= c.bytes;
      if (c.cached) this.cachedBytes -= c.chunkBytes;
    }
    // A partly delivered chunk stays until every record in it is delivered.
    if (throughSeq !== null) this.releasedThrough = throughSeq;
  }

  /**
   * Durable key/value state private to one exporter, for facts that must survive a
   * restart so that a re-send is identical to the first send (e.g. entry timestamps).
   */
  exporterState(exporterId: string): ExporterState {
    return {
      get: async (key) => (await this.db.get(exporterStateKey(exporterId, key)))?.toString("utf8"),
      put: async (key, value) => {
        await this.db.put(exporterStateKey(exporterId, key), Buffer.from(value), { sync: true });
      },
      delete: async (key) => {
        await this.db.del(exporterStateKey(exporterId, key));
      },
    };
  }

  /** Reads a metadata, tree or manifest value (not a record). */
  async getValue(key: Buffer): Promise<Buffer | undefined> {
    return this.db.get(key);
  }

  /** Writes sealing-stage values (tree tiles, manifests, state) in one synced batch. */
  async writeSynced(ops: Array<{ type: "put"; key: Buffer; value: Buffer }>): Promise<void> {
    await this.db.batch(ops, { sync: true });
  }

  /** Resolves when no write is queued or in flight. */
  drained(): Promise<void> {
    if (!this.writing) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.drained();
    await this.releasing.catch(() => undefined);
    this.wakeWaiters();
    await this.db.close();
  }
}

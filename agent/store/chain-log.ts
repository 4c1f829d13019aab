import { randomBytes } from "node:crypto";
import { AgentError } from "../common/errors.js";
import { CHAIN_ID_PATTERN, genesisHash } from "../integrity/format.js";
import {
  type ChainedGroup,
  chainGroup,
  type ReceivedRecords,
  type RecordText,
} from "./chaining.js";
import { ChunkIndex, RecordAlteredError, type RecordDamage } from "./chunk-index.js";
import { CHAIN_KEY, HEAD_KEY, recordKey } from "./keyspace.js";
import type { StoredRecord } from "./record.js";
import type { Store, WriteOp } from "./store.js";

/**
 * The chain log: the records' durable home between receipt and export.
 *
 * - append() resolves only after the records are in LevelDB with sync: true.
 * - Appends that arrive while a write is in flight are queued and written together in
 *   the next single synced write (group commit), so fsync cost is shared.
 * - Seq, prev and leaf hash are assigned when the group is chained, in write order, and
 *   the head is advanced only after the write succeeds: a failed write leaves no gap.
 * - A request's records are never split across groups, so a crash keeps all or none.
 * - Records leave the log only when every exporter's cursor has passed them (cursors.ts).
 */

export interface ChainLogOptions {
  maxBytes: number;
  /** Upper bound on one group commit, so a burst does not become one giant write. */
  maxGroupBytes?: number;
  /** Bytes of recent records kept in memory for the sealer and exporters (default 16 MiB). */
  cacheBytes?: number;
  /** Asked before each group commit is chained (the sealing gate). */
  admission?: WriteAdmission;
  /** Told of each synced group-commit write (a metric). */
  observer?: WriteObserver;
  /** Told of each new durable head, seq and leaf hash (the head journal). */
  onCommitted?: (seq: number, hash: string) => void;
}

/**
 * Admission for the next group commit: null to go ahead, or a promise to wait for.
 * Appends keep queuing meanwhile, within the log's size limit.
 */
export interface WriteAdmission {
  admit(log: { readonly headSeq: number }): Promise<void> | null;
}

export interface WriteObserver {
  syncedWrite(seconds: number, records: number): void;
}

export interface AppendResult {
  firstSeq: number;
  count: number;
}

interface PendingAppend extends ReceivedRecords {
  estimate: number;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

/** A group commit: its appends, and their chained form (or why chaining failed). */
interface PreparedGroup {
  appends: PendingAppend[];
  firstSeq: number;
  estimate: number;
  chained: ChainedGroup | null;
  failure: unknown;
}

export interface HeadState {
  seq: number;
  hash: string;
}

/** Bytes charged for a record beyond its canonical `record` text: envelope, hash and key. */
const PER_RECORD_OVERHEAD = 260;
const DEFAULT_MAX_GROUP_BYTES = 16 * 1024 * 1024;

export class WalFullError extends AgentError {
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

export class ChainLog {
  private nextSeq: number;
  private prevHex: string;
  private pending: PendingAppend[] = [];
  private pendingBytes = 0;
  private writing = false;
  private closed = false;
  /** Highest seq already removed from the log (−1 when nothing was). */
  private releasedThrough: number;
  private appendWaiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  private readonly maxGroupBytes: number;

  private constructor(
    private readonly store: Store,
    readonly chainId: string,
    head: HeadState,
    private readonly index: ChunkIndex,
    private readonly options: ChainLogOptions,
  ) {
    this.maxGroupBytes = options.maxGroupBytes ?? DEFAULT_MAX_GROUP_BYTES;
    this.nextSeq = head.seq + 1;
    this.prevHex = head.hash;
    this.releasedThrough = index.firstSeq === null ? head.seq : index.firstSeq - 1;
  }

  /** Opens the log of chain `chainId` (see loadChainId). */
  static async open(store: Store, chainId: string, options: ChainLogOptions): Promise<ChainLog> {
    const head = (await storedHead(store)) ?? {
      seq: -1,
      hash: genesisHash(chainId).toString("hex"),
    };
    const index = await ChunkIndex.scan(store, options.cacheBytes);
    return new ChainLog(store, chainId, head, index, options);
  }

  get maxBytes(): number {
    return this.options.maxBytes;
  }

  /** Seq of the last durable record, −1 when the chain is empty. */
  get headSeq(): number {
    return this.nextSeq - 1;
  }

  /** Bytes of records held, plus bytes accepted but not yet written. */
  get usedBytes(): number {
    return this.index.storedBytes + this.pendingBytes;
  }

  /** Seq of the oldest record held; records before it were delivered everywhere. */
  get oldestHeldSeq(): number {
    return this.releasedThrough + 1;
  }

  /**
   * Chains and durably stores `records` (each the canonical JSON of one `record` member),
   * with the canonical text of their envelopes' `source` when they have one (format.ts
   * sourceJson). Rejects with WalFullError, without touching anything, when they would not fit.
   */
  append(
    records: ReadonlyArray<RecordText>,
    receivedUnixNano: string,
    source: string | null = null,
  ): Promise<AppendResult> {
    if (records.length === 0) return Promise.resolve({ firstSeq: this.nextSeq, count: 0 });
    if (this.closed)
      return Promise.reject(new AgentError("WAL_CLOSED", "the agent is shutting down"));
    // The disk refuses writes (full, failing): refused at once until the store recovers.
    const failing = this.store.failing;
    if (failing) return Promise.reject(new StorageError(new Error(failing.message)));
    // Records read back altered: acknowledging more would promise what cannot be sealed
    // and exported as it came.
    if (this.index.damage) return Promise.reject(new RecordAlteredError(this.index.damage));
    const overhead = PER_RECORD_OVERHEAD + (source === null ? 0 : source.length + 12);
    let estimate = 0;
    for (let i = 0; i < records.length; i++)
      estimate += (records[i] as RecordText).length + overhead;
    if (this.usedBytes + estimate > this.options.maxBytes) {
      return Promise.reject(new WalFullError(this.options.maxBytes));
    }
    return new Promise<AppendResult>((resolve, reject) => {
      this.pending.push({ records, receivedUnixNano, source, estimate, resolve, reject });
      this.pendingBytes += estimate;
      // Writes already in flight pick the queue up when they finish; otherwise start one
      // after the current tick so requests decoded in the same tick share it.
      if (!this.writing) {
        this.writing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Up to `maxRecords` records with seq > afterSeq, stopping early once maxBytes is reached. */
  read(afterSeq: number, maxRecords: number, maxBytes: number): Promise<StoredRecord[]> {
    return this.index.read(afterSeq, maxRecords, maxBytes);
  }

  /**
   * What keeps the log from taking records: writes failing (disk full, I/O error; since
   * when and why: Store.failing), and the first record found altered when read back
   * (ChunkIndex.checked). Both null when it is sound.
   */
  get faults(): {
    storage: { since: number; message: string } | null;
    altered: RecordDamage | null;
  } {
    return { storage: this.store.failing, altered: this.index.damage };
  }

  /** When the record `seq` was written (epoch ms), or null when it is not held. */
  writtenAt(seq: number): number | null {
    return this.index.writtenAt(seq);
  }

  /** Resolves once a record with seq > afterSeq is durable (immediately if one is). */
  waitForRecordsAfter(afterSeq: number): Promise<void> {
    if (this.headSeq > afterSeq) return Promise.resolve();
    return new Promise((resolve) => this.appendWaiters.push(resolve));
  }

  /** Wakes every waiter: after each group commit, and at close. */
  private wakeWaiters(): void {
    const waiters = this.appendWaiters;
    this.appendWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Deletes every chunk whose records are all at or before `throughSeq`, in one write with
   * `alongWith` (the cursor that allows it; see cursors.ts). Callers serialize releases.
   */
  async release(throughSeq: number | null, alongWith: WriteOp[]): Promise<void> {
    const gone = throughSeq === null ? [] : this.index.releasable(throughSeq);
    await this.store.write(
      [...alongWith, ...gone.map((c) => ({ type: "del" as const, key: recordKey(c.firstSeq) }))],
      { sync: false },
    );
    this.index.drop(gone);
    // A partly delivered chunk stays until every record in it is delivered.
    if (throughSeq !== null && throughSeq > this.releasedThrough) this.releasedThrough = throughSeq;
  }

  /** Resolves when no write is queued or in flight. */
  drained(): Promise<void> {
    if (!this.writing) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuses new appends and waits for the queued ones to be written. */
  async close(): Promise<void> {
    this.closed = true;
    await this.drained();
    this.wakeWaiters();
  }

  private takeGroup(): PendingAppend[] {
    let bytes = 0;
    let n = 0;
    while (n < this.pending.length) {
      const p = this.pending[n] as PendingAppend;
      if (n > 0 && bytes + p.estimate > this.maxGroupBytes) break;
      bytes += p.estimate;
      n++;
    }
    return this.pending.splice(0, n);
  }

  /**
   * The group-commit loop. Each group is chained, hashed and compressed, then written in
   * one synced LevelDB write. While a group's write is in flight the next group — whatever
   * arrived meanwhile — is chained from the head that write will make and compressed, so
   * under load the disk and the CPU work overlap instead of taking turns. Writes stay
   * strictly one after another: a group is written only once the one before it is durable.
   */
  private async flush(): Promise<void> {
    await this.admitted();
    let group: PreparedGroup | null = await this.prepare(
      this.takeGroup(),
      this.nextSeq,
      this.prevHex,
    );
    while (group !== null) {
      const started = performance.now();
      const written = this.write(group);
      // The next group is prepared now unless admission holds it (then it waits below).
      const held = this.pending.length > 0 ? this.admission() : null;
      const following: Promise<PreparedGroup> | null =
        this.pending.length > 0 && held === null ? this.prepareAfter(group) : null;
      const failure = await written;
      this.options.observer?.syncedWrite(
        (performance.now() - started) / 1000,
        (group.chained?.endSeq ?? group.firstSeq) - group.firstSeq,
      );
      if (failure === null) {
        this.commit(group);
        group = following ? await following : null;
      } else {
        await this.fail(group, failure, following);
        group = null;
      }
      if (group === null && this.pending.length > 0) {
        if (held) await held;
        else await this.admitted();
        group = await this.prepare(this.takeGroup(), this.nextSeq, this.prevHex);
      }
    }
    this.writing = false;
    const idle = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of idle) w();
  }

  /** Writes a prepared group; resolves to null, or to why it failed. */
  private write(group: PreparedGroup): Promise<unknown> {
    if (group.chained === null) return Promise.resolve(group.failure);
    return this.store.write(group.chained.ops, { sync: true }).then(
      () => null,
      (err: unknown) => err,
    );
  }

  private admission(): Promise<void> | null {
    return this.options.admission?.admit(this) ?? null;
  }

  private async admitted(): Promise<void> {
    const wait = this.admission();
    if (wait) await wait;
  }

  /** Chains the queued appends after `group`, from the head its write will make. */
  private prepareAfter(group: PreparedGroup): Promise<PreparedGroup> {
    // A group that failed to chain fails its write too; what follows it is queued again.
    const end = group.chained ?? { endSeq: group.firstSeq, endPrev: this.prevHex };
    return this.prepare(this.takeGroup(), end.endSeq, end.endPrev);
  }

  /** Chains `appends` after (firstSeq − 1, prevHex); a failure fails the group, not the loop. */
  private async prepare(
    appends: PendingAppend[],
    firstSeq: number,
    prevHex: string,
  ): Promise<PreparedGroup> {
    let estimate = 0;
    for (const p of appends) estimate += p.estimate;
    try {
      const chained = await chainGroup(this.chainId, appends, firstSeq, prevHex);
      return { appends, firstSeq, estimate, chained, failure: null };
    } catch (err) {
      return { appends, firstSeq, estimate, chained: null, failure: err };
    }
  }

  /** Makes a durable group the log's head, indexes its chunks and answers its appends. */
  private commit(group: PreparedGroup): void {
    const chained = group.chained as ChainedGroup;
    this.pendingBytes -= group.estimate;
    let first = this.nextSeq;
    this.nextSeq = chained.endSeq;
    this.prevHex = chained.endPrev;
    this.index.add(chained.chunks, Date.now());
    this.options.onCommitted?.(chained.endSeq - 1, chained.endPrev);
    for (const p of group.appends) {
      p.resolve({ firstSeq: first, count: p.records.length });
      first += p.records.length;
    }
    this.wakeWaiters();
  }

  /**
   * A write failed: it may or may not have reached the disk, so the persisted head is the
   * truth. The group's appends fail; the next group, chained onto a head that never became
   * durable, is queued again to be chained from the head actually on disk.
   */
  private async fail(
    group: PreparedGroup,
    failure: unknown,
    following: Promise<PreparedGroup> | null,
  ): Promise<void> {
    await this.reloadHead();
    const error = new StorageError(failure);
    this.pendingBytes -= group.estimate;
    for (const p of group.appends) p.reject(error);
    if (following) this.pending.unshift(...(await following).appends);
  }

  private async reloadHead(): Promise<void> {
    try {
      const head = await storedHead(this.store);
      if (!head) return;
      this.nextSeq = head.seq + 1;
      this.prevHex = head.hash;
    } catch {
      // Still failing: keep the in-memory head; the next write will fail the same way.
    }
  }
}

/**
 * The chain id stored in the WAL, or a new one (the configured one, or random) stored now.
 * `configured` is the config's chain_id, if any.
 */
export async function loadChainId(store: Store, configured: string | undefined): Promise<string> {
  const stored = await storedChainId(store);
  if (stored !== null) {
    if (configured && configured !== stored) {
      throw new AgentError(
        "WAL_CHAIN_MISMATCH",
        `the write-ahead log at ${store.directory} holds chain "${stored}" but the config sets chain_id "${configured}": remove chain_id from the config or point the WAL at a new directory`,
      );
    }
    return stored;
  }
  const chainId = configured ?? randomBytes(16).toString("hex");
  if (!CHAIN_ID_PATTERN.test(chainId)) {
    throw new AgentError(
      "WAL_BAD_CHAIN_ID",
      `chain id "${chainId}" must match ${CHAIN_ID_PATTERN}`,
    );
  }
  await createChain(store, chainId);
  return chainId;
}

/**
 * A chain that replaces one which lost acknowledged records (`audit-agent wal new-chain`):
 * its first sealed entry declares the loss (integrity-format §10.5), so verifiers report it.
 */
export interface Succession {
  chainId: string;
  lostFrom: number;
  lostThrough: number;
  reason: string;
}

/** Names a new chain in an empty store, with the chain it succeeds, in one synced write. */
export async function createChain(
  store: Store,
  chainId: string,
  succeeds?: Succession,
): Promise<void> {
  const meta = { chainId, createdAt: new Date().toISOString(), ...(succeeds && { succeeds }) };
  await store.write([{ type: "put", key: CHAIN_KEY, value: Buffer.from(JSON.stringify(meta)) }], {
    sync: true,
  });
}

/** The chain the stored one succeeds, when `wal new-chain` made it; else null. */
export async function storedSuccession(store: Store): Promise<Succession | null> {
  const raw = await store.get(CHAIN_KEY);
  return raw
    ? ((JSON.parse(raw.toString("utf8")) as { succeeds?: Succession }).succeeds ?? null)
    : null;
}

/** The durable head the store holds (the last group commit's), or null before the first. */
export async function storedHead(store: Store): Promise<HeadState | null> {
  const raw = await store.get(HEAD_KEY);
  return raw ? (JSON.parse(raw.toString("utf8")) as HeadState) : null;
}

/** The chain id the store holds, or null when it holds none (new, or its records lost). */
export async function storedChainId(store: Store): Promise<string | null> {
  const raw = await store.get(CHAIN_KEY);
  return raw ? ((JSON.parse(raw.toString("utf8")) as { chainId?: string }).chainId ?? null) : null;
}

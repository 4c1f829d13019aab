import { genesisHash } from "../integrity/format.js";
import { manifestHash } from "../integrity/manifest.js";
import { manifestKey, SEAL_STATE_KEY, SIGNER_KEY } from "./keyspace.js";
import { Store, type WriteOp } from "./store.js";
import { ExportableEntries } from "./exportable-entries.js";
import { TreeStore } from "./tree-store.js";

/**
 * The sealed log: the signed entries (batch manifests with their checkpoints, and key
 * rotations) that cover the chain log's records, the Merkle tree tiles behind them, and
 * the sealing progress. The sealer (sealing/sealer.ts) appends to it; exporters, the
 * checkpoint server, metrics and `prove` read it.
 */

/** One sealed-log entry: a signed batch of records, or a record-less key rotation. */
export interface SealedEntry {
  index: number;
  /** The signed manifest's canonical text. */
  manifest: string;
  /** The signed checkpoint note after this entry (batches only). */
  checkpoint: string | null;
  /** Seq range of the records sealed; count 0 (and lastSeq = firstSeq − 1) for key rotations. */
  firstSeq: number;
  lastSeq: number;
  count: number;
}

/** How far sealing has come. */
export interface SealState {
  /** Entries written so far. */
  entries: number;
  sealedThrough: number;
  /** Leaf hash of the last sealed record (hex; the genesis value before any). */
  lastLeaf: string;
  /** Hash of the newest manifest (hex; the genesis value before any). */
  manifestHash: string;
}

/** The state once `entry` is appended after `from`. */
export function stateAfter(from: SealState, entry: SealedEntry, lastLeaf?: string): SealState {
  return {
    entries: from.entries + 1,
    sealedThrough: entry.count > 0 ? entry.lastSeq : from.sealedThrough,
    lastLeaf: lastLeaf ?? from.lastLeaf,
    manifestHash: manifestHash(entry.manifest),
  };
}

/** What `prove` may use of a stopped agent's sealed log. */
export type SealedLogReader = Pick<SealedLog, "state" | "tree" | "readEntry" | "entryCount">;

/** Sealed entries kept in memory for exporters (a few hundred KiB of manifests). */
const RECENT_ENTRIES = 256;

export class SealedLog {
  private current: SealState;
  private latest: string | null = null;
  private latestIndex = -1;
  private latestAt: number | null = null;
  /** Which entries exporters may ship (witnessing holds the newest back a moment). */
  readonly exportable = new ExportableEntries(
    () => this.current.entries,
    () => new Promise((resolve) => this.waiters.push(resolve)),
    () => this.wake(),
  );
  private waiters: Array<() => void> = [];
  /**
   * The newest entries, so exporters following close behind read them without a LevelDB
   * read (an await that costs a whole event-loop turn under a saturating ingest).
   */
  private readonly recent = new Map<number, SealedEntry>();

  private constructor(
    private readonly store: Store,
    private treeStore: TreeStore,
    state: SealState,
  ) {
    this.current = state;
  }

  static async open(store: Store, chainId: string): Promise<SealedLog> {
    const raw = await store.get(SEAL_STATE_KEY);
    const genesis = genesisHash(chainId).toString("hex");
    const state: SealState = raw
      ? (JSON.parse(raw.toString("utf8")) as SealState)
      : { entries: 0, sealedThrough: -1, lastLeaf: genesis, manifestHash: genesis };
    const tree = await TreeStore.load(store, state.sealedThrough + 1);
    const log = new SealedLog(store, tree, state);
    // The newest checkpoint belongs to the newest batch (a key rotation carries none).
    for (let e = state.entries - 1; e >= 0 && log.latest === null; e--) {
      log.latest = (await log.readEntry(e))?.checkpoint ?? null;
      log.latestIndex = e;
    }
    return log;
  }

  /**
   * Opens the sealed log of a stopped agent's WAL directory for reading (`prove`); the
   * caller closes it. It never writes.
   */
  static async openForReading(
    directory: string,
  ): Promise<{ sealed: SealedLogReader; close(): Promise<void> }> {
    const store = await Store.open(directory);
    try {
      const sealed = await SealedLog.open(store, "");
      return { sealed, close: () => store.close() };
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  get state(): SealState {
    return this.current;
  }

  get entryCount(): number {
    return this.current.entries;
  }

  get sealedThrough(): number {
    return this.current.sealedThrough;
  }

  /**
   * The newest signed checkpoint note and when it was signed (epoch ms; null when it was
   * signed before this run), or null before the first batch.
   */
  get latestCheckpoint(): { note: string; at: number | null } | null {
    return this.latest === null ? null : { note: this.latest, at: this.latestAt };
  }

  /** The stored Merkle tree of every sealed record. */
  get tree(): TreeStore {
    return this.treeStore;
  }

  async readEntry(index: number): Promise<SealedEntry | null> {
    if (index < 0 || index >= this.current.entries) return null;
    const recent = this.recent.get(index);
    if (recent) return recent;
    const raw = await this.store.get(manifestKey(index));
    return raw ? entryOf(index, raw) : null;
  }

  /** Index of the first entry whose records are not all at or before `seq`. */
  async firstEntryAfterSeq(seq: number): Promise<number> {
    for (let i = this.current.entries - 1; i >= 0; i--) {
      const e = await this.readEntry(i);
      if (e && e.lastSeq <= seq && e.count > 0) return i + 1;
    }
    return 0;
  }

  /**
   * Replaces the checkpoint of entry `index` with the same note carrying more signatures
   * (witness cosignatures), durably, before exporters see the entry.
   */
  async cosigned(index: number, note: string): Promise<void> {
    const entry = await this.readEntry(index);
    if (entry === null) return;
    const value = Buffer.from(JSON.stringify({ manifest: entry.manifest, checkpoint: note }));
    await this.store.write([{ type: "put", key: manifestKey(index), value }], { sync: true });
    this.recent.set(index, { ...entry, checkpoint: note });
    if (index === this.latestIndex) this.latest = note;
  }

  /** Resolves once an entry after `index` exists, or at the next wake(). */
  waitForEntryAfter(index: number): Promise<void> {
    // Never resolve early just because sealing stopped: callers re-check and would spin.
    if (this.current.entries - 1 > index) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wakes everyone waiting for entries (after each append, and at shutdown). */
  wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The verifier key of the key that signed last, as recorded by append(). */
  async storedSigner(): Promise<string | undefined> {
    return (await this.store.get(SIGNER_KEY))?.toString("utf8");
  }

  /**
   * Appends `entries` (consecutive, from entryCount on) with the tree tiles they add, in
   * one synced write; `state` is the state after the last of them, `signer` the signing
   * key when it changed. Readers see the entries only once they are durable. On failure
   * the tree is reloaded from what is durable: it may already hold the entries' leaves.
   */
  async append(
    entries: readonly SealedEntry[],
    tileOps: readonly WriteOp[],
    state: SealState,
    signer?: string,
  ): Promise<void> {
    const ops: WriteOp[] = [...tileOps];
    for (const e of entries) {
      const value = Buffer.from(JSON.stringify({ manifest: e.manifest, checkpoint: e.checkpoint }));
      ops.push({ type: "put", key: manifestKey(e.index), value });
    }
    ops.push({ type: "put", key: SEAL_STATE_KEY, value: Buffer.from(JSON.stringify(state)) });
    if (signer !== undefined)
      ops.push({ type: "put", key: SIGNER_KEY, value: Buffer.from(signer) });
    try {
      await this.store.write(ops, { sync: true });
    } catch (err) {
      this.treeStore = await TreeStore.load(this.store, this.current.sealedThrough + 1);
      throw err;
    }
    this.current = state;
    this.remember(entries);
    this.wake();
  }

  private remember(entries: readonly SealedEntry[]): void {
    let checkpoint: string | null = null;
    for (const e of entries) {
      this.recent.set(e.index, e);
      if (e.checkpoint !== null) {
        checkpoint = e.checkpoint;
        this.latestIndex = e.index;
      }
    }
    for (const index of this.recent.keys()) {
      if (index > this.current.entries - RECENT_ENTRIES) break;
      this.recent.delete(index);
    }
    if (checkpoint !== null) {
      this.latest = checkpoint;
      this.latestAt = Date.now();
    }
  }
}

/** A stored entry value, {"manifest": text, "checkpoint": note}, as a SealedEntry. */
function entryOf(index: number, raw: Buffer): SealedEntry {
  const { manifest, checkpoint } = JSON.parse(raw.toString("utf8")) as {
    manifest: string;
    checkpoint: string | null;
  };
  const m = JSON.parse(manifest) as {
    type: string;
    firstSeq?: string;
    lastSeq?: string;
    count?: number;
    treeSize: string;
  };
  if (m.type === "batch") {
    return {
      index,
      manifest,
      checkpoint,
      firstSeq: Number(m.firstSeq),
      lastSeq: Number(m.lastSeq),
      count: m.count ?? 0,
    };
  }
  const size = Number(m.treeSize);
  return { index, manifest, checkpoint, firstSeq: size, lastSeq: size - 1, count: 0 };
}

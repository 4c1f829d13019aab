import { manifestKey, SEAL_STATE_KEY, SIGNER_KEY } from "../store/keyspace.js";
import type { StoredRecord, WriteAheadLog } from "../store/wal.js";
import type { Logger } from "../telemetry/logger.js";
import { genesisHash } from "../integrity/format.js";
import {
  type BatchManifest,
  manifestHash,
  manifestKeyId,
  type RotationManifest,
  signManifest,
} from "../integrity/manifest.js";
import { leavesSource, treeHash } from "../integrity/merkle.js";
import { checkpointText, signNote } from "../integrity/note.js";
import type { SigningKey } from "../integrity/signing.js";
import { TreeStore } from "../store/tree-store.js";

/**
 * The sealing stage between the WAL and the exporters. It cuts the chain into contiguous
 * batches (by record count, bytes or age), extends the stored Merkle tree, signs a batch
 * manifest and a C2SP checkpoint of the whole tree, and writes tiles, manifest,
 * checkpoint and its own state in one synced LevelDB batch. Exporters only ever ship
 * sealed batches, so every record that reaches a backend is covered by a signature.
 */

/** Upper bound on batches sealed in one synced write while catching up on a backlog. */
const MAX_BATCHES_PER_WRITE = 32;
/** Sealed entries kept in memory for exporters (a few hundred KiB of manifests). */
const RECENT_ENTRIES = 256;
/** Unsealed records beyond which the WAL holds its next group commit (see sealingGate). */
const SEAL_LAG_RECORDS = 8192;
/** The longest one group commit waits for sealing: the gate slows ingest, never stops it. */
const SEAL_GATE_MAX_WAIT_MS = 500;

export interface BatchPolicy {
  maxRecords: number;
  maxBytes: number;
  timeoutMs: number;
}

export interface SealedEntry {
  index: number;
  /** The signed manifest's canonical text. */
  manifest: string;
  /** The signed checkpoint note after this entry (batches only). */
  checkpoint: string | null;
  /** Seq range of the records sealed; count 0 for key rotations. */
  firstSeq: number;
  lastSeq: number;
  count: number;
}

interface SealState {
  /** Manifests written so far. */
  entries: number;
  sealedThrough: number;
  lastLeaf: string;
  manifestHash: string;
}

export class Batcher {
  private state: SealState;
  private latest: string | null = null;
  /** When the latest checkpoint was signed (epoch ms), null before the first in this run. */
  latestCheckpointAt: number | null = null;
  private waiters: Array<() => void> = [];
  private loop: Promise<void> | null = null;
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;
  private wakeLoop: (() => void) | null = null;
  private sealing: Promise<void> = Promise.resolve();
  /**
   * The newest sealed entries, so exporters following close behind read them without a
   * LevelDB read (an await that costs a whole event-loop turn under a saturating ingest).
   */
  private readonly recent = new Map<number, SealedEntry>();

  private constructor(
    private readonly wal: WriteAheadLog,
    private tree: TreeStore,
    private key: SigningKey,
    private readonly origin: string,
    private readonly policy: BatchPolicy,
    private readonly logger: Logger,
    state: SealState,
  ) {
    this.state = state;
  }

  static async open(options: {
    wal: WriteAheadLog;
    key: SigningKey;
    previousKey?: SigningKey;
    origin: string;
    policy: BatchPolicy;
    logger: Logger;
  }): Promise<Batcher> {
    const { wal } = options;
    const raw = await wal.getValue(SEAL_STATE_KEY);
    const genesis = genesisHash(wal.chainId).toString("hex");
    const state: SealState = raw
      ? (JSON.parse(raw.toString("utf8")) as SealState)
      : { entries: 0, sealedThrough: -1, lastLeaf: genesis, manifestHash: genesis };
    const tree = await TreeStore.load({ get: (k) => wal.getValue(k) }, state.sealedThrough + 1);
    const batcher = new Batcher(
      wal,
      tree,
      options.key,
      options.origin,
      options.policy,
      options.logger,
      state,
    );
    // The newest checkpoint belongs to the newest batch (a key rotation carries none).
    for (let e = state.entries - 1; e >= 0 && batcher.latest === null; e--) {
      batcher.latest = (await batcher.readEntry(e))?.checkpoint ?? null;
    }
    await batcher.recordSigner(options.previousKey);
    return batcher;
  }

  get chainId(): string {
    return this.wal.chainId;
  }

  get entryCount(): number {
    return this.state.entries;
  }

  get sealedThrough(): number {
    return this.state.sealedThrough;
  }

  /** The newest signed checkpoint note, or null before the first batch. */
  get latestCheckpoint(): string | null {
    return this.latest;
  }

  get treeStore(): TreeStore {
    return this.tree;
  }

  /**
   * Records the signing key in use. A key different from the last one used is a rotation:
   * it is announced in the manifest chain by an entry signed with the outgoing key when
   * that key is supplied (signing.previous_key_file), and logged loudly otherwise.
   */
  private async recordSigner(previousKey?: SigningKey): Promise<void> {
    const current = this.key.public.verifierKey;
    const stored = (await this.wal.getValue(SIGNER_KEY))?.toString("utf8");
    if (stored === current) return;
    const ops = [{ type: "put" as const, key: SIGNER_KEY, value: Buffer.from(current) }];
    let next = this.state;
    if (stored !== undefined) {
      if (previousKey && previousKey.public.verifierKey === stored) {
        const rotation: RotationManifest = {
          v: 1,
          type: "key-rotation",
          chainId: this.chainId,
          index: String(this.state.entries),
          treeSize: String(this.state.sealedThrough + 1),
          newKey: current,
          prevManifest: this.state.manifestHash,
          keyId: manifestKeyId(previousKey.public),
          createdAt: new Date().toISOString(),
        };
        const text = signManifest(rotation, previousKey);
        next = this.appendEntryOps(ops, text, null);
        this.logger.info(
          { from: stored, to: current },
          "signing key rotated; rotation entry signed by the previous key",
        );
      } else {
        this.logger.warn(
          { from: stored, to: current },
          "signing key changed without signing.previous_key_file: the rotation is not announced in the log; verifiers must trust both keys",
        );
      }
    }
    await this.wal.writeSynced(ops);
    this.state = next;
    this.notify();
  }

  /**
   * Adds the writes for the next sealed-log entry to `ops` and returns the state that
   * holds once they are durable. The caller assigns it only after the write succeeds, so
   * readers never see an entry that is not yet on disk.
   */
  private appendEntryOps(
    ops: Array<{ type: "put"; key: Buffer; value: Buffer }>,
    manifest: string,
    checkpoint: string | null,
    batch?: { lastSeq: number; lastLeaf: string },
    from: SealState = this.state,
  ): SealState {
    const index = from.entries;
    ops.push({
      type: "put",
      key: manifestKey(index),
      value: Buffer.from(JSON.stringify({ manifest, checkpoint })),
    });
    const next: SealState = {
      entries: index + 1,
      sealedThrough: batch?.lastSeq ?? from.sealedThrough,
      lastLeaf: batch?.lastLeaf ?? from.lastLeaf,
      manifestHash: manifestHash(manifest),
    };
    ops.push({ type: "put", key: SEAL_STATE_KEY, value: Buffer.from(JSON.stringify(next)) });
    return next;
  }

  async readEntry(index: number): Promise<SealedEntry | null> {
    if (index < 0 || index >= this.state.entries) return null;
    const recent = this.recent.get(index);
    if (recent) return recent;
    const raw = await this.wal.getValue(manifestKey(index));
    if (!raw) return null;
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

  /** Index of the first entry whose records are not all at or before `seq`. */
  async firstEntryAfterSeq(seq: number): Promise<number> {
    for (let i = this.state.entries - 1; i >= 0; i--) {
      const e = await this.readEntry(i);
      if (e && e.lastSeq <= seq && e.count > 0) return i + 1;
    }
    return 0;
  }

  waitForEntryAfter(index: number): Promise<void> {
    // Never resolve early just because sealing stopped: callers re-check and would spin.
    if (this.state.entries - 1 > index) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Admission for the WAL's next group commit (WriteAheadLog.writeGate): null while sealing
   * keeps up, otherwise a promise that resolves once sealing is back within half the limit,
   * or after SEAL_GATE_MAX_WAIT_MS at most, or at shutdown.
   *
   * Why: ingest and sealing share one event loop. With many concurrent senders, requests
   * took nearly every turn, sealing fell out of the WAL's in-memory tail, and then every
   * read it made waited a loaded turn: at 32 senders of 512 records, ingest ran at 46k/s
   * while sealing managed 6k/s and the exporters' backlog grew without bound. Holding the
   * next group commit until sealing catches up turns that into ack latency, which slows
   * the senders to the rate the whole chain sustains; WAL-full refusals stay the limit.
   */
  sealingGate(): Promise<void> | null {
    const limit = Math.max(SEAL_LAG_RECORDS, 8 * this.policy.maxRecords);
    if (this.stopping || this.wal.headSeq - this.state.sealedThrough <= limit) return null;
    return new Promise((resolve) => {
      let settled = false;
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(done, SEAL_GATE_MAX_WAIT_MS).unref();
      const check = () => {
        if (settled) return;
        if (this.stopping || this.wal.headSeq - this.state.sealedThrough <= limit / 2) done();
        else this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }

  /** Wakes everyone waiting for entries (shutdown). */
  wake(): void {
    this.notify();
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  start(): void {
    this.loop = this.run().catch((err) => {
      this.logger.error({ err }, "batch sealing stopped");
    });
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.wal.headSeq <= this.state.sealedThrough) {
        await Promise.race([
          this.wal.waitForRecordsAfter(this.state.sealedThrough),
          this.stopSignal(),
        ]);
        continue;
      }
      // Records are waiting: seal once enough have gathered or the oldest is timeoutMs old.
      if (this.wal.headSeq - this.state.sealedThrough < this.policy.maxRecords) {
        await Promise.race([this.delay(this.policy.timeoutMs), this.untilCount()]);
        if (this.stopping) break;
      }
      try {
        await this.sealNext();
      } catch (err) {
        // Nothing was acknowledged on the strength of this batch: retry it from storage.
        this.logger.error({ err }, "sealing a batch failed; retrying");
        await this.delay(1000);
      }
    }
  }

  private async untilCount(): Promise<void> {
    while (!this.stopping && this.wal.headSeq - this.state.sealedThrough < this.policy.maxRecords) {
      await Promise.race([this.wal.waitForRecordsAfter(this.wal.headSeq), this.stopSignal()]);
    }
  }

  private stopSignal(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeLoop = resolve;
    });
  }

  private delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.timer = setTimeout(resolve, ms);
    });
  }

  /** Seals everything durable so far (used at shutdown, before exporters drain). */
  async sealAll(): Promise<void> {
    while (this.wal.headSeq > this.state.sealedThrough) await this.sealNext();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.wakeLoop?.();
    this.wal.wakeWaiters();
    await this.loop;
    await this.sealing;
    this.notify();
  }

  /** Seals the next batch; serialized so the run loop and sealAll never interleave. */
  private sealNext(): Promise<void> {
    this.sealing = this.sealing.catch(() => undefined).then(() => this.sealOnce());
    return this.sealing;
  }

  /**
   * Seals the next batch and, while a backlog of full batches waits, up to
   * MAX_BATCHES_PER_WRITE of them in one synced write. Each synced write queues behind the
   * WAL's group commits in LevelDB, so one write per batch let a saturating ingest starve
   * sealing (and every exporter behind it). Batches are cut exactly as they would be one
   * at a time; only a partial batch is left for its count, size or age trigger.
   */
  private async sealOnce(): Promise<void> {
    const ops: Array<{ type: "put"; key: Buffer; value: Buffer }> = [];
    let state = this.state;
    const sealed: SealedEntry[] = [];
    try {
      for (let n = 0; n < MAX_BATCHES_PER_WRITE; n++) {
        const records = await this.wal.read(
          state.sealedThrough,
          this.policy.maxRecords,
          this.policy.maxBytes,
        );
        if (records.length === 0 || (n > 0 && !this.isFull(records))) break;
        const prepared = await this.prepareBatch(records, state, ops);
        state = prepared.state;
        sealed.push(prepared.entry);
      }
      if (ops.length === 0) return;
      await this.wal.writeSynced(ops);
    } catch (err) {
      // The in-memory tree may already hold batches: rebuild it from what is durable.
      this.tree = await TreeStore.load(
        { get: (k) => this.wal.getValue(k) },
        this.state.sealedThrough + 1,
      );
      throw err;
    }
    this.state = state;
    for (const e of sealed) this.recent.set(e.index, e);
    for (const index of this.recent.keys()) {
      if (index > state.entries - RECENT_ENTRIES) break;
      this.recent.delete(index);
    }
    this.latest = (sealed[sealed.length - 1] as SealedEntry).checkpoint;
    this.latestCheckpointAt = Date.now();
    this.notify();
  }

  private isFull(records: StoredRecord[]): boolean {
    if (records.length >= this.policy.maxRecords) return true;
    let bytes = 0;
    for (const r of records) bytes += r.value.length;
    return bytes >= this.policy.maxBytes;
  }

  /** Extends the tree with one batch and adds its signed manifest and checkpoint to `ops`. */
  private async prepareBatch(
    records: StoredRecord[],
    state: SealState,
    ops: Array<{ type: "put"; key: Buffer; value: Buffer }>,
  ): Promise<{ state: SealState; entry: SealedEntry }> {
    const first = (records[0] as StoredRecord).seq;
    if (first !== state.sealedThrough + 1) {
      throw new Error(
        `the WAL is missing records ${state.sealedThrough + 1}..${first - 1}: it was modified outside the agent`,
      );
    }
    // Never sign a range that is not exactly the records it names.
    for (let i = 0; i < records.length; i++) {
      if ((records[i] as StoredRecord).seq !== first + i) {
        throw new Error(
          `the WAL returned seq ${(records[i] as StoredRecord).seq} where ${first + i} was expected; not sealing`,
        );
      }
    }
    const leaves = records.map((r) => r.value.subarray(0, 32));
    const last = first + records.length - 1;
    ops.push(...this.tree.append(leaves));
    const treeRoot = Buffer.from(await treeHash(this.tree.size, this.tree.source()));
    const batchRoot = Buffer.from(leavesSource(leaves)(0, leaves.length));
    const lastLeaf = Buffer.from(leaves[leaves.length - 1] as Uint8Array).toString("hex");
    const manifest: BatchManifest = {
      v: 1,
      type: "batch",
      chainId: this.chainId,
      index: String(state.entries),
      firstSeq: String(first),
      lastSeq: String(last),
      count: records.length,
      batchRoot: batchRoot.toString("hex"),
      prevLeaf: state.lastLeaf,
      lastLeaf,
      treeSize: String(this.tree.size),
      treeRoot: treeRoot.toString("hex"),
      prevManifest: state.manifestHash,
      keyId: manifestKeyId(this.key.public),
      createdAt: new Date().toISOString(),
    };
    const text = signManifest(manifest, this.key);
    const checkpoint = signNote(
      checkpointText({
        origin: this.origin,
        size: this.tree.size,
        rootHash: treeRoot,
        extensions: [],
      }),
      [this.key],
    );
    const next = this.appendEntryOps(ops, text, checkpoint, { lastSeq: last, lastLeaf }, state);
    const entry: SealedEntry = {
      index: state.entries,
      manifest: text,
      checkpoint,
      firstSeq: first,
      lastSeq: last,
      count: records.length,
    };
    return { state: next, entry };
  }
}

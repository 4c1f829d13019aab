import { type Clock, systemClock, type TimerHandle } from "../common/clock.js";
import {
  type BatchManifest,
  type ChainStartManifest,
  manifestKeyId,
  type RotationManifest,
  signManifest,
} from "../integrity/manifest.js";
import { leavesSource, treeHash } from "../integrity/merkle.js";
import { checkpointText, signNote } from "../integrity/note.js";
import type { SigningKey } from "../integrity/signing.js";
import type { ChainLog, Succession } from "../store/chain-log.js";
import type { StoredRecord } from "../store/record.js";
import {
  type SealedEntry,
  type SealedLog,
  type SealState,
  stateAfter,
} from "../store/sealed-log.js";
import type { WriteOp } from "../store/store.js";
import { LogThrottle } from "../telemetry/log-throttle.js";
import type { Logger } from "../telemetry/logger.js";
import type { SealingGate } from "./sealing-gate.js";

/**
 * The sealing stage between the chain log and the exporters. It cuts the chain into
 * contiguous batches (by record count, bytes or age), extends the stored Merkle tree, signs
 * a batch manifest and a C2SP checkpoint of the whole tree, and appends them to the sealed
 * log with the tree's tiles in one synced write. Exporters only ever ship sealed batches,
 * so every record that reaches a backend is covered by a signature.
 */

/** Upper bound on batches sealed in one synced write while catching up on a backlog. */
const MAX_BATCHES_PER_WRITE = 32;
/** How long sealing waits after a failed write before it tries again: doubling, capped. */
const RETRY_DELAY_MS = 250;
const MAX_RETRY_DELAY_MS = 5000;
/** A failing seal is logged once, then at most this often. */
const FAILURE_LOG_EVERY_MS = 30_000;

/** How the chain is cut into batches (`extensions.signing.batch`). */
export interface BatchPolicy {
  maxRecords: number;
  maxBytes: number;
  timeoutMs: number;
}

export interface SealerOptions {
  log: ChainLog;
  sealed: SealedLog;
  /** The chain log's write admission, released when sealing stops. */
  gate?: SealingGate;
  key: SigningKey;
  previousKey?: SigningKey;
  origin: string;
  /** The chain this one succeeds (`wal new-chain`): declared in entry 0. */
  succession?: Succession | null;
  policy: BatchPolicy;
  logger: Logger;
  /** Times the batch timeout and the retry delay (systemClock by default). */
  clock?: Clock;
}

/** Sealing progress while several batches are prepared for one write. */
interface Draft {
  state: SealState;
  entries: SealedEntry[];
  tiles: WriteOp[];
}

export class Sealer {
  private loop: Promise<void> | null = null;
  private stopping = false;
  private timer: TimerHandle | null = null;
  /**
   * Resolves once stop() is called. One promise for every wait, so no wait can miss the
   * signal (a resolver kept per wait was overwritten by the next wait).
   */
  private readonly stopped: Promise<void>;
  private signalStop: () => void = () => {};
  private sealing: Promise<void> = Promise.resolve();
  private readonly failures = new LogThrottle(FAILURE_LOG_EVERY_MS);
  private readonly log: ChainLog;
  private readonly sealed: SealedLog;
  private readonly clock: Clock;

  private constructor(private readonly options: SealerOptions) {
    this.log = options.log;
    this.sealed = options.sealed;
    this.clock = options.clock ?? systemClock;
    this.stopped = new Promise((resolve) => {
      this.signalStop = resolve;
    });
  }

  /** A sealer for the chain, with the signing key recorded (see recordSigner). */
  static async open(options: SealerOptions): Promise<Sealer> {
    const sealer = new Sealer(options);
    await sealer.declareSuccession();
    await sealer.recordSigner();
    return sealer;
  }

  start(): void {
    this.loop = this.run().catch((err) => {
      this.options.logger.error({ err }, "batch sealing stopped");
    });
  }

  /** Seals everything durable so far (used at shutdown, before exporters drain). */
  async sealAll(): Promise<void> {
    while (this.log.headSeq > this.sealed.sealedThrough) await this.sealNext();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.signalStop();
    this.options.gate?.stop();
    await this.loop;
    // A failed seal was logged by the loop; stopping must not fail on it.
    await this.sealing.catch(() => undefined);
    this.sealed.wake();
  }

  /**
   * A chain made by `wal new-chain` declares, as its first entry, the chain it replaces and
   * the seqs of it that were lost, signed like any entry (integrity-format §10.5).
   */
  private async declareSuccession(): Promise<void> {
    const { succession, key, logger } = this.options;
    const state = this.sealed.state;
    if (!succession || state.entries !== 0) return;
    const declaration: ChainStartManifest = {
      v: 1,
      type: "chain-start",
      chainId: this.log.chainId,
      index: "0",
      treeSize: "0",
      predecessor: succession.chainId,
      lostFrom: String(succession.lostFrom),
      lostThrough: String(succession.lostThrough),
      reason: succession.reason,
      prevManifest: state.manifestHash,
      keyId: manifestKeyId(key.public),
      createdAt: new Date().toISOString(),
    };
    const entry: SealedEntry = {
      index: 0,
      manifest: signManifest(declaration, key),
      checkpoint: null,
      firstSeq: 0,
      lastSeq: -1,
      count: 0,
    };
    await this.sealed.append([entry], [], stateAfter(state, entry));
    logger.warn(
      {
        predecessor: succession.chainId,
        lost: `${succession.lostFrom}..${succession.lostThrough}`,
      },
      "this chain's first entry declares the records its predecessor lost",
    );
  }

  /**
   * Records the signing key in use. A key different from the last one used is a rotation:
   * it is announced in the sealed log by an entry signed with the outgoing key when that
   * key is supplied (signing.previous_key_file), and logged loudly otherwise.
   */
  private async recordSigner(): Promise<void> {
    const { key, previousKey, logger } = this.options;
    const current = key.public.verifierKey;
    const stored = await this.sealed.storedSigner();
    if (stored === current) return;
    const state = this.sealed.state;
    if (stored !== undefined && previousKey && previousKey.public.verifierKey === stored) {
      const entry = this.rotationEntry(state, current, previousKey);
      await this.sealed.append([entry], [], stateAfter(state, entry), current);
      logger.info(
        { from: stored, to: current },
        "signing key rotated; rotation entry signed by the previous key",
      );
      return;
    }
    if (stored !== undefined) {
      logger.warn(
        { from: stored, to: current },
        "signing key changed without signing.previous_key_file: the rotation is not announced in the log; verifiers must trust both keys",
      );
    }
    await this.sealed.append([], [], state, current);
  }

  /** The record-less entry that announces `newKey`, signed by the outgoing key. */
  private rotationEntry(state: SealState, newKey: string, previousKey: SigningKey): SealedEntry {
    const rotation: RotationManifest = {
      v: 1,
      type: "key-rotation",
      chainId: this.log.chainId,
      index: String(state.entries),
      treeSize: String(state.sealedThrough + 1),
      newKey,
      prevManifest: state.manifestHash,
      keyId: manifestKeyId(previousKey.public),
      createdAt: new Date().toISOString(),
    };
    const size = state.sealedThrough + 1;
    return {
      index: state.entries,
      manifest: signManifest(rotation, previousKey),
      checkpoint: null,
      firstSeq: size,
      lastSeq: size - 1,
      count: 0,
    };
  }

  private async run(): Promise<void> {
    const { policy, logger } = this.options;
    while (!this.stopping) {
      if (this.log.headSeq <= this.sealed.sealedThrough) {
        await Promise.race([
          this.log.waitForRecordsAfter(this.sealed.sealedThrough),
          this.stopSignal(),
        ]);
        continue;
      }
      // Records are waiting: seal once enough have gathered or the oldest is timeoutMs old.
      if (this.log.headSeq - this.sealed.sealedThrough < policy.maxRecords) {
        await Promise.race([this.delay(policy.timeoutMs), this.untilCount()]);
        if (this.stopping) break;
      }
      try {
        await this.sealNext();
        this.failures.succeeded();
      } catch (err) {
        // Nothing was acknowledged on the strength of this batch: retry it from storage.
        if (this.failures.failed())
          logger.error(
            { err, failures: this.failures.count },
            "sealing a batch failed; retrying with backoff (logged at most every 30 s)",
          );
        const wait = Math.min(RETRY_DELAY_MS * 2 ** (this.failures.count - 1), MAX_RETRY_DELAY_MS);
        await Promise.race([this.delay(wait), this.stopSignal()]);
      }
    }
  }

  private async untilCount(): Promise<void> {
    const { maxRecords } = this.options.policy;
    while (!this.stopping && this.log.headSeq - this.sealed.sealedThrough < maxRecords) {
      await Promise.race([this.log.waitForRecordsAfter(this.log.headSeq), this.stopSignal()]);
    }
  }

  private stopSignal(): Promise<void> {
    return this.stopped;
  }

  private delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.timer = this.clock.setTimeout(resolve, ms);
    });
  }

  /** Seals the next batch; serialized so the run loop and sealAll never interleave. */
  private sealNext(): Promise<void> {
    this.sealing = this.sealing.catch(() => undefined).then(() => this.sealOnce());
    return this.sealing;
  }

  /**
   * Seals the next batch and, while a backlog of full batches waits, up to
   * MAX_BATCHES_PER_WRITE of them in one synced write. Each synced write queues behind the
   * chain log's group commits in LevelDB, so one write per batch let a saturating ingest
   * starve sealing (and every exporter behind it). Batches are cut exactly as they would be
   * one at a time; only a partial batch is left for its count, size or age trigger.
   */
  private async sealOnce(): Promise<void> {
    const { policy } = this.options;
    const draft: Draft = { state: this.sealed.state, entries: [], tiles: [] };
    for (let n = 0; n < MAX_BATCHES_PER_WRITE; n++) {
      const records = await this.log.read(
        draft.state.sealedThrough,
        policy.maxRecords,
        policy.maxBytes,
      );
      if (records.length === 0 || (n > 0 && !this.isFull(records))) break;
      await this.addBatch(draft, records);
    }
    if (draft.entries.length === 0) return;
    await this.sealed.append(draft.entries, draft.tiles, draft.state);
  }

  private isFull(records: StoredRecord[]): boolean {
    if (records.length >= this.options.policy.maxRecords) return true;
    let bytes = 0;
    for (const r of records) bytes += r.value.length;
    return bytes >= this.options.policy.maxBytes;
  }

  /** Extends the tree with one batch and adds its signed manifest and checkpoint to `draft`. */
  private async addBatch(draft: Draft, records: StoredRecord[]): Promise<void> {
    const { state } = draft;
    const first = checkContiguous(records, state.sealedThrough + 1);
    const tree = this.sealed.tree;
    const leaves = records.map((r) => r.leafHash);
    const last = first + records.length - 1;
    draft.tiles.push(...tree.append(leaves));
    const treeRoot = Buffer.from(await treeHash(tree.size, tree.source()));
    const batchRoot = Buffer.from(leavesSource(leaves)(0, leaves.length));
    const lastLeaf = (records[records.length - 1] as StoredRecord).leafHashHex();
    const { key, origin } = this.options;
    const manifest: BatchManifest = {
      v: 1,
      type: "batch",
      chainId: this.log.chainId,
      index: String(state.entries),
      firstSeq: String(first),
      lastSeq: String(last),
      count: records.length,
      batchRoot: batchRoot.toString("hex"),
      prevLeaf: state.lastLeaf,
      lastLeaf,
      treeSize: String(tree.size),
      treeRoot: treeRoot.toString("hex"),
      prevManifest: state.manifestHash,
      keyId: manifestKeyId(key.public),
      createdAt: new Date().toISOString(),
    };
    const checkpoint = signNote(
      checkpointText({ origin, size: tree.size, rootHash: treeRoot, extensions: [] }),
      [key],
    );
    const entry: SealedEntry = {
      index: state.entries,
      manifest: signManifest(manifest, key),
      checkpoint,
      firstSeq: first,
      lastSeq: last,
      count: records.length,
    };
    draft.entries.push(entry);
    draft.state = stateAfter(state, entry, lastLeaf);
  }
}

/** Never sign a range that is not exactly the records it names: returns the first seq. */
function checkContiguous(records: readonly StoredRecord[], expected: number): number {
  const first = (records[0] as StoredRecord).seq;
  if (first !== expected) {
    throw new Error(
      `the WAL is missing records ${expected}..${first - 1}: it was modified outside the agent`,
    );
  }
  for (let i = 0; i < records.length; i++) {
    if ((records[i] as StoredRecord).seq !== first + i) {
      throw new Error(
        `the WAL returned seq ${(records[i] as StoredRecord).seq} where ${first + i} was expected; not sealing`,
      );
    }
  }
  return first;
}

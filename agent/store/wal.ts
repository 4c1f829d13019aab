import { AgentError } from "../common/errors.js";
import {
  ChainLog,
  loadChainId,
  type Succession,
  storedSuccession,
  storedChainId,
  storedHead,
  type WriteAdmission,
  type WriteObserver,
} from "./chain-log.js";
import { Cursors } from "./cursors.js";
import { type AcknowledgedHead, acknowledgedHead, HeadJournal } from "./head-journal.js";
import { type ExporterState, exporterState } from "./exporter-state.js";
import { SealedLog } from "./sealed-log.js";
import { isStoreDamage, Store, type StoreMemory } from "./store.js";
import { type VerificationStateStore, verificationStateStore } from "./verification-state.js";

/**
 * The write-ahead log as configured by `extensions.wal`: one LevelDB directory (the Store)
 * and the parts that live in it, opened together and closed together. Each part owns its
 * own keys (keyspace.ts): the chain log (records), the sealed log (signed entries and the
 * Merkle tree), the cursors (each exporter's position) and exporter state.
 */
export interface WalOptions {
  directory: string;
  maxBytes: number;
  /** Fixed chain id from config; when absent the persisted one is used or a new one made. */
  chainId?: string;
  /** Upper bound on one group commit, so a burst does not become one giant write. */
  maxGroupBytes?: number;
  /**
   * The memory the WAL may keep in caches and buffers (extensions.wal.memory_mib), shared
   * by walMemory between LevelDB's memtable and block cache and the tail of recent records
   * kept for the sealer and exporters. Default: 40 MiB.
   */
  memoryBytes?: number;
  /** Overrides the tail cache's share of memoryBytes (tests that read behind the tail). */
  cacheBytes?: number;
  /** Makes the chain log's write admission (the sealing gate) from the sealed log. */
  admission?: (sealed: SealedLog) => WriteAdmission;
  /** Told of each synced group commit. */
  observer?: WriteObserver;
}

export interface Wal {
  readonly directory: string;
  readonly log: ChainLog;
  readonly sealed: SealedLog;
  readonly cursors: Cursors;
  /** The chain this one succeeds, when `wal new-chain` made it (sealed as entry 0). */
  readonly succession: Succession | null;
  exporterState(exporterId: string): ExporterState;
  readonly verification: VerificationStateStore;
  /** What the agent should log at start: something that weakens a guarantee, not an error. */
  readonly warnings: readonly string[];
  /** Called when writes start failing (with since when and why) and when they work again. */
  onStorageFailing(listener: (failing: { since: number; message: string } | null) => void): void;
  /** Writes what is queued, then closes the database. */
  close(): Promise<void>;
}

export async function openWal(options: WalOptions): Promise<Wal> {
  const memory = walMemory(options.memoryBytes ?? 40 << 20);
  const store = await Store.open(options.directory, memory);
  let journal: HeadJournal | null = null;
  try {
    const journaled = acknowledgedHead(options.directory);
    if (journaled) await refuseWithoutJournaledChain(store, options.directory, journaled);
    const chainId = await loadChainId(store, options.chainId);
    // The sealed log first: the chain log's admission reads its progress.
    const sealed = await SealedLog.open(store, chainId);
    journal = await HeadJournal.open(options.directory);
    const recordHead = (seq: number, hash: string) => journal?.record({ chainId, seq, hash });
    const log = await ChainLog.open(store, chainId, {
      maxBytes: options.maxBytes,
      maxGroupBytes: options.maxGroupBytes,
      cacheBytes: options.cacheBytes ?? memory.tailCacheBytes,
      observer: options.observer,
      admission: options.admission?.(sealed),
      onCommitted: recordHead,
    });
    if (journaled && log.headSeq < journaled.seq)
      throw recordsLost(options.directory, journaled, log.headSeq + 1);
    // Journaled only now, once the check above passed: the journal never goes back.
    const head = await storedHead(store);
    if (head) recordHead(head.seq, head.hash);
    const cursors = new Cursors(store, log);
    const opened = journal;
    return {
      directory: options.directory,
      log,
      sealed,
      cursors,
      succession: await storedSuccession(store),
      exporterState: (id) => exporterState(store, id),
      verification: verificationStateStore(store),
      warnings: journal.anchorProblem
        ? [
            `the WAL's anchor cannot be written (${journal.anchorProblem}): a deleted WAL directory would go unnoticed at the next start; make the WAL directory's parent writable`,
          ]
        : [],
      onStorageFailing: (listener) => store.onFailing(listener),
      async close() {
        await log.close();
        await cursors.settled();
        sealed.wake();
        await opened.close();
        await store.close();
      },
    };
  } catch (err) {
    await journal?.close();
    await store.close();
    throw corruptionToDamage(err, options.directory);
  }
}

/**
 * How a memory budget is shared: 2/5 to LevelDB's memtable (two may exist while one is
 * flushed), 1/5 to its block cache (reads of records that left the tail), 2/5 to the tail
 * of recent records the sealer and exporters read right behind ingest. At the default
 * 40 MiB: 16, 8 and 16 MiB, the sizes used before the budget existed.
 */
export function walMemory(bytes: number): StoreMemory & { tailCacheBytes: number } {
  const fifth = Math.floor(bytes / 5);
  return { writeBufferBytes: 2 * fifth, blockCacheBytes: fifth, tailCacheBytes: 2 * fifth };
}

/** LevelDB's "Corruption" (a checksum or a damaged block) as WAL_DAMAGED: it says what to do. */
function corruptionToDamage(err: unknown, directory: string): unknown {
  const text = String((err as { cause?: unknown }).cause ?? err);
  if (err instanceof AgentError || !isStoreDamage(err)) return err;
  return new AgentError(
    "WAL_DAMAGED",
    `the write-ahead log at ${directory} is damaged (LevelDB: ${text}); the agent stops rather than export or acknowledge on top of it, and changed nothing. Keep the directory as evidence and see what it still holds with \`audit-agent wal check --dir ${directory}\`; restore it from a backup, or move it aside and start on a new, empty directory (a new chain)`,
    { cause: err },
  );
}

/**
 * The journal names a chain the store no longer holds (its LevelDB files were deleted or
 * lost the records that named it): refused before anything writes a new chain over it.
 */
async function refuseWithoutJournaledChain(
  store: Store,
  directory: string,
  journaled: AcknowledgedHead,
): Promise<void> {
  const stored = await storedChainId(store);
  if (stored !== journaled.chainId) throw recordsLost(directory, journaled, 0, stored);
}

function recordsLost(
  directory: string,
  journaled: AcknowledgedHead,
  from: number,
  stored?: string | null,
): AgentError {
  const holds =
    from > 0
      ? `ends at seq ${from - 1}`
      : stored
        ? `holds chain ${stored} instead (the directory was replaced)`
        : "holds none of that chain";
  return new AgentError(
    "WAL_RECORDS_LOST",
    `the write-ahead log at ${directory} lost acknowledged records: chain ${journaled.chainId} was acknowledged through seq ${journaled.seq} (${journaled.file}), but the log ${holds}, so seq ${from}..${journaled.seq} are gone (deleted or damaged LevelDB files). The agent stops rather than reuse those seq numbers or start a chain that hides the loss; nothing was changed. What was exported before is still in the backends. Keep the directory as evidence; see what it holds with \`audit-agent wal check --dir ${directory}\`; then start a new chain that declares the loss, so verifiers report it: \`audit-agent wal new-chain --dir ${directory} --reason "<what happened>"\``,
  );
}

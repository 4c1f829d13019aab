import { ChainLog, loadChainId, type WriteAdmission, type WriteObserver } from "./chain-log.js";
import { Cursors } from "./cursors.js";
import { type ExporterState, exporterState } from "./exporter-state.js";
import { SealedLog } from "./sealed-log.js";
import { Store } from "./store.js";
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
  /** Bytes of recent records kept in memory for the sealer and exporters (default 16 MiB). */
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
  exporterState(exporterId: string): ExporterState;
  readonly verification: VerificationStateStore;
  /** Called when writes start failing (with since when and why) and when they work again. */
  onStorageFailing(listener: (failing: { since: number; message: string } | null) => void): void;
  /** Writes what is queued, then closes the database. */
  close(): Promise<void>;
}

export async function openWal(options: WalOptions): Promise<Wal> {
  const store = await Store.open(options.directory);
  try {
    const chainId = await loadChainId(store, options.chainId);
    // The sealed log first: the chain log's admission reads its progress.
    const sealed = await SealedLog.open(store, chainId);
    const log = await ChainLog.open(store, chainId, {
      maxBytes: options.maxBytes,
      maxGroupBytes: options.maxGroupBytes,
      cacheBytes: options.cacheBytes,
      observer: options.observer,
      admission: options.admission?.(sealed),
    });
    const cursors = new Cursors(store, log);
    return {
      directory: options.directory,
      log,
      sealed,
      cursors,
      exporterState: (id) => exporterState(store, id),
      verification: verificationStateStore(store),
      onStorageFailing: (listener) => store.onFailing(listener),
      async close() {
        await log.close();
        await cursors.settled();
        sealed.wake();
        await store.close();
      },
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}

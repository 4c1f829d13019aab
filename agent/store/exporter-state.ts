import { exporterStateKey } from "./keyspace.js";
import type { Store } from "./store.js";

/**
 * Durable key/value state private to one exporter, for facts that must survive a restart
 * so that a re-send is identical to the first send (e.g. Loki's entry timestamps).
 */
export interface ExporterState {
  get(key: string): Promise<string | undefined>;
  /** Synced: the value is durable when the promise resolves. */
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
}

export function exporterState(store: Store, exporterId: string): ExporterState {
  return {
    get: async (key) => (await store.get(exporterStateKey(exporterId, key)))?.toString("utf8"),
    put: async (key, value) => {
      await store.write(
        [{ type: "put", key: exporterStateKey(exporterId, key), value: Buffer.from(value) }],
        { sync: true },
      );
    },
    delete: async (key) => {
      await store.write([{ type: "del", key: exporterStateKey(exporterId, key) }], {
        sync: false,
      });
    },
  };
}

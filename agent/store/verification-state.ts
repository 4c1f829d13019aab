import { verificationStateKey } from "./keyspace.js";
import type { Store } from "./store.js";

/**
 * What in-agent verification established about each exporter's backend (the verifier's
 * state file, kept in the agent's store), so each run checks only what is new. Stored as
 * the verifier writes it; the store does not read it.
 */
export interface VerificationStateStore {
  load(exporterId: string): Promise<string | undefined>;
  /** Synced: durable when the promise resolves. */
  save(exporterId: string, state: string): Promise<void>;
}

export function verificationStateStore(store: Store): VerificationStateStore {
  return {
    load: async (id) => (await store.get(verificationStateKey(id)))?.toString("utf8"),
    save: async (id, state) => {
      await store.write(
        [{ type: "put", key: verificationStateKey(id), value: Buffer.from(state) }],
        {
          sync: true,
        },
      );
    },
  };
}

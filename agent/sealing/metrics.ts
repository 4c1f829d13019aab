import { parseCheckpointText, parseNote } from "../integrity/note.js";
import type { SealedLog } from "../store/sealed-log.js";
import type { Registry } from "../telemetry/prometheus.js";

/** Sealing progress and the latest checkpoint, read at each scrape. */
export function registerSealingMetrics(registry: Registry, sealed: SealedLog): void {
  registry.collected(
    "counter",
    "audit_agent_batches_signed_total",
    "Sealed-log entries signed (batches and key rotations).",
    (set) => set({}, sealed.entryCount),
  );
  registry.collected(
    "gauge",
    "audit_agent_sealed_through_seq",
    "Last seq covered by a signed batch.",
    (set) => set({}, sealed.sealedThrough),
  );
  const checkpoint = () => {
    const note = sealed.latestCheckpoint;
    return note ? parseCheckpointText(parseNote(note).text) : null;
  };
  registry.collected(
    "gauge",
    "audit_agent_checkpoint_tree_size",
    "Tree size of the latest signed checkpoint.",
    (set) => set({}, checkpoint()?.size ?? 0),
  );
  registry.collected(
    "gauge",
    "audit_agent_checkpoint_age_seconds",
    "Seconds since the latest checkpoint was signed (0 before the first).",
    (set) => {
      const at = sealed.latestCheckpointAt;
      set({}, at ? (Date.now() - at) / 1000 : 0);
    },
  );
}

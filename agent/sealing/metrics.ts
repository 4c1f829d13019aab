import { parseCheckpointText, parseNote } from "../integrity/note.js";
import type { SealedLog } from "../store/sealed-log.js";
import type { Registry, SetSample } from "../telemetry/prometheus.js";
import type { Witnessing, WitnessState } from "./witnessing.js";

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
    const note = sealed.latestCheckpoint?.note;
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
      const at = sealed.latestCheckpoint?.at;
      set({}, at ? (Date.now() - at) / 1000 : 0);
    },
  );
}

/** Each witness: cosignatures, failures by reason, the size it last cosigned and when. */
export function registerWitnessMetrics(registry: Registry, witnessing: Witnessing): void {
  const each = (f: (s: WitnessState, set: SetSample) => void) => (set: SetSample) => {
    for (const s of witnessing.states) f(s, set);
  };
  registry.collected(
    "counter",
    "audit_agent_witness_cosignatures_total",
    "Checkpoints a witness cosigned.",
    each((s, set) => set({ witness: s.name }, s.cosignatures)),
  );
  registry.collected(
    "counter",
    "audit_agent_witness_failures_total",
    "Submissions to a witness that got no cosignature, by reason (unreachable, http_422 = the witness holds an inconsistent history, http_403, http_404, ahead).",
    each((s, set) => {
      for (const [reason, n] of Object.entries(s.failures)) set({ witness: s.name, reason }, n);
    }),
  );
  registry.collected(
    "gauge",
    "audit_agent_witness_cosigned_tree_size",
    "The tree size a witness last cosigned (or said it holds).",
    each((s, set) => set({ witness: s.name }, s.size ?? 0)),
  );
  registry.collected(
    "gauge",
    "audit_agent_witness_last_cosignature_timestamp_seconds",
    "When a witness last cosigned a checkpoint (unix seconds; 0: not since start).",
    each((s, set) => set({ witness: s.name }, (s.lastCosignedAt ?? 0) / 1000)),
  );
  registry.collected(
    "gauge",
    "audit_agent_witness_stale",
    "1 while the checkpoints are not cosigned by a quorum of witnesses within witness_stale_after.",
    (set) => set({}, witnessing.problems().length > 0 ? 1 : 0),
  );
}

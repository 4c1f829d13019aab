import type { Registry } from "../telemetry/prometheus.js";
import type { RefusalReason } from "./refusal.js";
import type { CosignedCheckpoint } from "./state.js";

/**
 * The witness's Prometheus metrics (docs/witness.md). `origin` is the checkpoint's origin
 * once its signature verified; before that the configured origin or `<origin_prefix>*`;
 * "" when no configured log has the origin or the body could not be read.
 */
export class WitnessMetrics {
  private readonly cosigned = new Map<string, number>();
  private readonly refused = new Map<string, { origin: string; reason: string; count: number }>();

  constructor(registry: Registry, states: () => Iterable<CosignedCheckpoint>) {
    registry.collected(
      "counter",
      "audit_witness_cosigned_total",
      "Checkpoints cosigned, by log origin.",
      (set) => {
        for (const [origin, n] of this.cosigned) set({ origin }, n);
      },
    );
    registry.collected(
      "counter",
      "audit_witness_refused_total",
      "add-checkpoint requests refused, by log origin and reason (unknown_log, bad_signature, stale_old_size, invalid_proof, fork, rollback, malformed).",
      (set) => {
        for (const r of this.refused.values()) set({ origin: r.origin, reason: r.reason }, r.count);
      },
    );
    registry.collected(
      "gauge",
      "audit_witness_tree_size",
      "Tree size of the latest checkpoint cosigned, by log origin.",
      (set) => {
        for (const s of states()) set({ origin: s.origin }, s.size);
      },
    );
    registry.collected(
      "gauge",
      "audit_witness_last_cosigned_timestamp_seconds",
      "When the latest checkpoint of each log was cosigned (unix seconds): a log that stopped submitting stops moving it.",
      (set) => {
        for (const s of states()) set({ origin: s.origin }, s.time);
      },
    );
  }

  countCosigned(origin: string): void {
    this.cosigned.set(origin, (this.cosigned.get(origin) ?? 0) + 1);
  }

  countRefused(origin: string, reason: RefusalReason): void {
    const key = JSON.stringify([origin, reason]);
    const entry = this.refused.get(key);
    if (entry) entry.count++;
    else this.refused.set(key, { origin, reason, count: 1 });
  }
}

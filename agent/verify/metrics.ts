import type { Registry } from "../telemetry/prometheus.js";
import type { ContinuousVerifier, ExporterRun } from "./continuous.js";

/** Continuous verification's families; without samples while it is not configured. */
export function registerVerificationMetrics(
  registry: Registry,
  verifier: () => ContinuousVerifier | null,
): void {
  registry.collected(
    "counter",
    "audit_agent_verification_runs_total",
    "Continuous verification runs, by result.",
    (set) => {
      const v = verifier();
      if (!v) return;
      set({ result: "ok" }, v.status.runs - v.status.failures);
      set({ result: "failed" }, v.status.failures);
    },
  );
  registry.collected(
    "gauge",
    "audit_agent_verification_findings",
    "Findings of the latest continuous verification, by exporter.",
    (set) => {
      for (const [exporter, f] of Object.entries(verifier()?.status.lastFindings ?? {}))
        set({ exporter }, f.length);
    },
  );
  const perRun = (name: string, help: string, read: (r: ExporterRun) => number) =>
    registry.collected("gauge", name, help, (set) => {
      for (const [exporter, r] of Object.entries(verifier()?.status.lastRuns ?? {}))
        set({ exporter }, read(r));
    });
  perRun(
    "audit_agent_verification_checked_records",
    "Records the latest continuous verification read and judged (incremental: the new ones).",
    (r) => r.checked,
  );
  perRun(
    "audit_agent_verification_duration_seconds",
    "How long the latest continuous verification of an exporter's backend took.",
    (r) => r.seconds,
  );
  perRun(
    "audit_agent_verification_tree_size",
    "Records of this agent's chain that continuous verification vouches for, by exporter.",
    (r) => r.treeSize,
  );
}

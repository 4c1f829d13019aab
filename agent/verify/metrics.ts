import type { Registry } from "../telemetry/prometheus.js";
import type { ContinuousVerifier } from "./continuous.js";

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
}

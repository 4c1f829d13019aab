import type { AgentCounters } from "./counters.js";
import type { Registry } from "./prometheus.js";

/** The Collector-named counters of what the receivers and the audit filter did. */
export function registerCounterMetrics(
  registry: Registry,
  counters: AgentCounters,
  receiver: string,
): void {
  registry.collected(
    "counter",
    "otelcol_receiver_accepted_log_records",
    "Log records the receivers accepted (audit records chained plus non-audit records filtered).",
    (set) => set({ receiver }, counters.receiverAccepted + counters.filtered),
  );
  registry.collected(
    "counter",
    "otelcol_receiver_refused_log_records",
    "Log records refused, by reason (buffer_full, unavailable, too_large, unrepresentable_value, passthrough_*).",
    (set) => {
      for (const [reason, n] of counters.receiverRefused) set({ receiver, reason }, n);
    },
  );
  registry.collected(
    "counter",
    "otelcol_exporter_sent_log_records",
    "Log records an exporter delivered.",
    (set) => {
      for (const [exporter, n] of counters.exporterSent) set({ exporter }, n);
    },
  );
  registry.collected(
    "counter",
    "otelcol_exporter_send_failed_log_records",
    "Log records in failed export attempts (retried for audit data).",
    (set) => {
      for (const [exporter, n] of counters.exporterFailed) set({ exporter }, n);
    },
  );
  registry.collected(
    "counter",
    "audit_agent_exporter_squatted_keys_total",
    "Keys an exporter found already taken by an object it did not write, and wrote beside (kept as evidence; verify reports the foreign object).",
    (set) => {
      for (const [exporter, n] of counters.squattedKeys) set({ exporter }, n);
    },
  );
  registry.collected(
    "counter",
    "audit_agent_records_filtered_total",
    "Non-audit records dropped (or passed through) by the audit filter.",
    (set) => set({}, counters.filtered),
  );
  registry.collected(
    "counter",
    "audit_agent_records_chained_total",
    "Audit records chained and durably stored.",
    (set) => set({}, counters.receiverAccepted),
  );
}

import type { AgentCounters } from "./counters.js";
import type { Registry } from "./prometheus.js";

/**
 * The Collector-named counters of what the receivers and exporters did, with the Collector's
 * labels (receiverhelper: `receiver`, `transport`; exporterhelper: `exporter`) and units, and
 * the agent's own counters of the audit filter.
 */
export function registerCounterMetrics(registry: Registry, counters: AgentCounters): void {
  registry.collected(
    "counter",
    "otelcol_receiver_accepted_log_records",
    "Number of log records successfully pushed into the pipeline (audit records chained plus non-audit records filtered).",
    (set) => {
      for (const t of counters.transports.values())
        set({ receiver: t.receiver, transport: t.transport }, t.accepted);
    },
    "{record}",
  );
  registry.collected(
    "counter",
    "otelcol_receiver_refused_log_records",
    "Number of log records that could not be pushed into the pipeline, by reason (buffer_full, unavailable, too_large, unrepresentable_value, passthrough_*).",
    (set) => {
      for (const t of counters.transports.values())
        for (const [reason, n] of t.refused)
          set({ receiver: t.receiver, transport: t.transport, reason }, n);
    },
    "{record}",
  );
  registry.collected(
    "counter",
    "otelcol_exporter_sent_log_records",
    "Number of log records successfully sent to destination.",
    (set) => {
      for (const [exporter, n] of counters.exporterSent) set({ exporter }, n);
    },
    "{record}",
  );
  registry.collected(
    "counter",
    "otelcol_exporter_send_failed_log_records",
    "Number of log records in failed attempts to send to destination (retried for audit data).",
    (set) => {
      for (const [exporter, n] of counters.exporterFailed) set({ exporter }, n);
    },
    "{record}",
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

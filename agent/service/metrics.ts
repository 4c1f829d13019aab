import type { WriteAheadLog } from "../store/wal.js";
import type { Batcher } from "../sealing/sealer.js";
import { parseCheckpointText, parseNote } from "../integrity/note.js";
import type { DeliveryLoop } from "../exporters/delivery.js";
import type { NonAuditForwarder } from "../processing/api.js";
import type { ContinuousVerifier } from "../verify/continuous.js";
import type { AgentCounters } from "../telemetry/counters.js";
import { Registry, registerProcessMetrics, type SetSample } from "../telemetry/prometheus.js";

/**
 * The agent's own metrics in Prometheus form. Names follow the Collector's otelcol_*
 * metrics where one exists; the rest are audit_agent_*. Values are read from the agent's
 * plain counters and state when scraped, so the hot path pays nothing for them, except
 * one histogram observation per synced WAL write.
 */
export interface MetricSources {
  receiverIds: readonly string[];
  counters: AgentCounters;
  wal: WriteAheadLog;
  batcher: Batcher;
  deliveries: readonly DeliveryLoop[];
  forwarders: readonly (NonAuditForwarder & { size?: number })[];
  verifier: () => ContinuousVerifier | null;
  queueCapacity: (exporterId: string) => number;
}

export function createMetrics(s: MetricSources): { registry: Registry; stop(): void } {
  const registry = new Registry();
  const processMetrics = registerProcessMetrics(registry);
  const receiver = s.receiverIds[0] ?? "otlp";
  /** Durable records an exporter has not delivered yet (its WAL-backed queue). */
  const undelivered = (d: DeliveryLoop) => Math.max(0, s.wal.headSeq - d.deliveredThrough);

  const counter = (name: string, help: string, read: (set: SetSample) => void) =>
    registry.collected("counter", name, help, read);
  const gauge = (name: string, help: string, read: (set: SetSample) => void) =>
    registry.collected("gauge", name, help, read);

  counter(
    "otelcol_receiver_accepted_log_records",
    "Log records the receivers accepted (audit records chained plus non-audit records filtered).",
    (set) => set({ receiver }, s.counters.receiverAccepted + s.counters.filtered),
  );
  counter(
    "otelcol_receiver_refused_log_records",
    "Log records refused, by reason (buffer_full, unavailable, too_large, passthrough_*).",
    (set) => {
      for (const [reason, n] of s.counters.receiverRefused) set({ receiver, reason }, n);
    },
  );
  counter("otelcol_exporter_sent_log_records", "Log records an exporter delivered.", (set) => {
    for (const [exporter, n] of s.counters.exporterSent) set({ exporter }, n);
  });
  counter(
    "otelcol_exporter_send_failed_log_records",
    "Log records in failed export attempts (retried for audit data).",
    (set) => {
      for (const [exporter, n] of s.counters.exporterFailed) set({ exporter }, n);
    },
  );
  gauge(
    "otelcol_exporter_queue_size",
    "Records waiting for the exporter (WAL records not yet delivered; pass-through: queued requests).",
    (set) => {
      for (const d of s.deliveries) set({ exporter: d.exporterId }, undelivered(d));
      for (const f of s.forwarders) set({ exporter: `${f.exporterId}/passthrough` }, f.size ?? 0);
    },
  );
  gauge(
    "otelcol_exporter_queue_capacity",
    "Records the exporter's queue can hold (WAL: estimated from its size limit and the average record).",
    (set) => {
      for (const d of s.deliveries) set({ exporter: d.exporterId }, s.queueCapacity(d.exporterId));
    },
  );

  counter(
    "audit_agent_records_filtered_total",
    "Non-audit records dropped (or passed through) by the audit filter.",
    (set) => set({}, s.counters.filtered),
  );
  counter("audit_agent_records_chained_total", "Audit records chained and durably stored.", (set) =>
    set({}, s.counters.receiverAccepted),
  );
  gauge(
    "audit_agent_chain_head_seq",
    "Seq of the newest durable record (-1 before the first).",
    (set) => set({}, s.wal.headSeq),
  );
  gauge("audit_agent_wal_bytes", "Bytes held by the write-ahead log.", (set) =>
    set({}, s.wal.usedBytes),
  );
  gauge(
    "audit_agent_wal_max_bytes",
    "Size limit of the write-ahead log; receivers push back when it is reached.",
    (set) => set({}, s.wal.maxBytes),
  );
  const fsync = registry.histogram(
    "audit_agent_wal_fsync_seconds",
    "Duration of each synced group-commit write to the WAL.",
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
  );
  s.wal.onSyncedWrite = (seconds) => fsync.observe(seconds);
  counter(
    "audit_agent_batches_signed_total",
    "Sealed-log entries signed (batches and key rotations).",
    (set) => set({}, s.batcher.entryCount),
  );
  gauge("audit_agent_sealed_through_seq", "Last seq covered by a signed batch.", (set) =>
    set({}, s.batcher.sealedThrough),
  );
  const checkpoint = () => {
    const note = s.batcher.latestCheckpoint;
    return note ? parseCheckpointText(parseNote(note).text) : null;
  };
  gauge("audit_agent_checkpoint_tree_size", "Tree size of the latest signed checkpoint.", (set) =>
    set({}, checkpoint()?.size ?? 0),
  );
  gauge(
    "audit_agent_checkpoint_age_seconds",
    "Seconds since the latest checkpoint was signed (0 before the first).",
    (set) =>
      set(
        {},
        s.batcher.latestCheckpointAt ? (Date.now() - s.batcher.latestCheckpointAt) / 1000 : 0,
      ),
  );
  gauge(
    "audit_agent_exporter_lag_records",
    "Durable records an exporter has not delivered yet.",
    (set) => {
      for (const d of s.deliveries) set({ exporter: d.exporterId }, undelivered(d));
    },
  );
  gauge(
    "audit_agent_exporter_lag_seconds",
    "Age of the oldest record an exporter has not delivered yet (0 when caught up).",
    (set) => {
      for (const d of s.deliveries) {
        const at =
          d.deliveredThrough < s.wal.headSeq ? s.wal.writtenAt(d.deliveredThrough + 1) : null;
        set({ exporter: d.exporterId }, at === null ? 0 : (Date.now() - at) / 1000);
      }
    },
  );
  gauge(
    "audit_agent_exporter_up",
    "1 while an exporter is delivering or retrying, 0 once it has failed permanently.",
    (set) => {
      for (const d of s.deliveries)
        set({ exporter: d.exporterId, state: d.state }, d.state === "failed" ? 0 : 1);
    },
  );
  counter(
    "audit_agent_verification_runs_total",
    "Continuous verification runs, by result.",
    (set) => {
      const v = s.verifier();
      if (!v) return;
      set({ result: "ok" }, v.status.runs - v.status.failures);
      set({ result: "failed" }, v.status.failures);
    },
  );
  gauge(
    "audit_agent_verification_findings",
    "Findings of the latest continuous verification, by exporter.",
    (set) => {
      for (const [exporter, f] of Object.entries(s.verifier()?.status.lastFindings ?? {}))
        set({ exporter }, f.length);
    },
  );
  return { registry, stop: () => processMetrics.stop() };
}

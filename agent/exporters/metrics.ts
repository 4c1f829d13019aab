import type { NonAuditForwarder } from "../processing/api.js";
import type { ChainLog } from "../store/chain-log.js";
import type { Registry } from "../telemetry/prometheus.js";
import type { DeliveryLoop } from "./delivery.js";

/** Each exporter's queue, lag and state, read at each scrape. */
export function registerDeliveryMetrics(
  registry: Registry,
  log: ChainLog,
  deliveries: readonly DeliveryLoop[],
  forwarders: readonly (NonAuditForwarder & { size?: number })[],
): void {
  /** Durable records an exporter has not delivered yet (its WAL-backed queue). */
  const undelivered = (d: DeliveryLoop) => Math.max(0, log.headSeq - d.deliveredThrough);
  // A WAL-backed queue holds what fits in the WAL: estimated from the average record.
  const capacity = () => {
    const held = log.headSeq - log.oldestHeldSeq + 1;
    return Math.floor(log.maxBytes / (held > 0 ? log.usedBytes / held : 1024));
  };
  const gauge = (
    name: string,
    help: string,
    read: Parameters<Registry["collected"]>[3],
    unit?: string,
  ) => registry.collected("gauge", name, help, read, unit);
  // The Collector's queue metrics carry the signal too (exporterhelper's data_type).
  const queue = (exporter: string) => ({ exporter, data_type: "logs" });
  gauge(
    "otelcol_exporter_queue_size",
    "Records waiting for the exporter (WAL records not yet delivered; pass-through: queued requests).",
    (set) => {
      for (const d of deliveries) set(queue(d.exporterId), undelivered(d));
      for (const f of forwarders) set(queue(`${f.exporterId}/passthrough`), f.size ?? 0);
    },
    "{batch}",
  );
  gauge(
    "otelcol_exporter_queue_capacity",
    "Records the exporter's queue can hold (WAL: estimated from its size limit and the average record).",
    (set) => {
      for (const d of deliveries) set(queue(d.exporterId), capacity());
    },
    "{batch}",
  );
  gauge(
    "audit_agent_exporter_lag_records",
    "Durable records an exporter has not delivered yet.",
    (set) => {
      for (const d of deliveries) set({ exporter: d.exporterId }, undelivered(d));
    },
  );
  gauge(
    "audit_agent_exporter_lag_seconds",
    "Age of the oldest record an exporter has not delivered yet, from its receive time, across restarts (0 when caught up).",
    (set) => {
      for (const d of deliveries) {
        const at = d.deliveredThrough < log.headSeq ? log.writtenAt(d.deliveredThrough + 1) : null;
        set({ exporter: d.exporterId }, at === null ? 0 : (Date.now() - at) / 1000);
      }
    },
  );
  gauge(
    "audit_agent_exporter_up",
    "1 while an exporter is delivering or retrying, 0 once it has failed permanently.",
    (set) => {
      for (const d of deliveries)
        set({ exporter: d.exporterId, state: d.state }, d.state === "failed" ? 0 : 1);
    },
  );
}

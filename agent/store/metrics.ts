import type { Registry } from "../telemetry/prometheus.js";
import type { ChainLog, WriteObserver } from "./chain-log.js";

/** The chain log's gauges, read at each scrape. */
export function registerChainLogMetrics(registry: Registry, log: ChainLog): void {
  registry.collected(
    "gauge",
    "audit_agent_chain_head_seq",
    "Seq of the newest durable record (-1 before the first).",
    (set) => set({}, log.headSeq),
  );
  registry.collected(
    "gauge",
    "audit_agent_wal_bytes",
    "Bytes held by the write-ahead log.",
    (set) => set({}, log.usedBytes),
  );
  registry.collected(
    "gauge",
    "audit_agent_wal_max_bytes",
    "Size limit of the write-ahead log; receivers push back when it is reached.",
    (set) => set({}, log.maxBytes),
  );
  registry.collected(
    "gauge",
    "audit_agent_wal_record_altered",
    "1 once a record read back from the write-ahead log did not match its stored hash or link (WAL_RECORD_ALTERED): nothing altered is exported, requests are refused.",
    (set) => set({}, log.faults.altered ? 1 : 0),
  );
}

/** The histogram of synced group-commit writes: the one metric the hot path feeds. */
export function groupCommitObserver(registry: Registry): WriteObserver {
  const fsync = registry.histogram(
    "audit_agent_wal_fsync_seconds",
    "Duration of each synced group-commit write to the WAL.",
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
  );
  return { syncedWrite: (seconds) => fsync.observe(seconds) };
}

import type { ChainLog } from "../store/chain-log.js";
import type { DeliveryLoop } from "../exporters/delivery.js";
import type { HealthCheckConfig } from "../telemetry/health-config.js";
import type { ContinuousVerifier } from "../verify/continuous.js";
import { HttpEndpoint } from "../telemetry/http-endpoint.js";

export interface HealthSources {
  wal: ChainLog;
  deliveries: readonly DeliveryLoop[];
  verifier: () => ContinuousVerifier | null;
  /** "starting" until every component has started, "stopping" once shutdown began. */
  phase: () => "starting" | "running" | "stopping";
  /** Stale or refusing witnesses: degraded, not unready (records still flow and export). */
  witnessProblems?: () => string[];
}

/**
 * `extensions.health_check` (telemetry/health-config.ts): readiness with its reasons at
 * `path` and /readyz, liveness at /livez.
 */
export class HealthCheck {
  private readonly upSince = new Date();
  private walFull = false;
  private readonly endpoint: HttpEndpoint;

  constructor(
    private readonly config: HealthCheckConfig,
    private readonly sources: HealthSources,
  ) {
    this.endpoint = new HttpEndpoint("health_check", config.endpoint, (path, _req, res) => {
      const base = config.path.endsWith("/") ? config.path : `${config.path}/`;
      if (path === `${base}livez`)
        return this.reply(res, { ready: true, reasons: [], degraded: [] }, "alive");
      if (path === config.path || path === `${base}readyz`) return this.reply(res, this.status());
      res
        .writeHead(404, { "Content-Type": "application/json" })
        .end(
          `${JSON.stringify({ error: `paths: ${config.path}, ${base}livez, ${base}readyz` })}\n`,
        );
    });
  }

  /**
   * Readiness with the reasons it is not ready, and what is degraded without making it not
   * ready: a failed exporter that is not required (`required_exporters`; by default all but
   * the first of the pipeline are not).
   */
  status(): { ready: boolean; reasons: string[]; degraded: string[] } {
    const reasons: string[] = [];
    const degraded: string[] = [];
    const { wal } = this.sources;
    const percent = (wal.usedBytes / wal.maxBytes) * 100;
    // Hysteresis, so readiness does not flap at the threshold.
    if (percent >= this.config.wal_full_percent) this.walFull = true;
    else if (percent < this.config.wal_full_percent - 5) this.walFull = false;
    if (this.walFull)
      reasons.push(
        `write-ahead log is ${percent.toFixed(0)}% full: exporters are behind, receivers are pushing back`,
      );
    const required =
      this.config.required_exporters ??
      this.sources.deliveries.slice(0, 1).map((d) => d.exporterId);
    const { storage: failing, altered: damage } = wal.faults;
    if (failing)
      reasons.push(
        `write-ahead log writes fail since ${new Date(failing.since).toISOString()} (${failing.message}): requests are refused; the store is reopened until a write works (check the disk's space and health)`,
      );
    if (damage)
      reasons.push(
        `write-ahead log record seq ${damage.seq} ${damage.detail}: nothing altered is exported and requests are refused; keep the WAL as evidence and restore it (WAL_RECORD_ALTERED)`,
      );
    for (const d of this.sources.deliveries) {
      if (d.state !== "failed") continue;
      const why = `exporter ${d.exporterId} failed permanently: ${d.lastError ?? "unknown error"}; fix it and restart the agent`;
      if (required.includes(d.exporterId)) reasons.push(why);
      else
        degraded.push(
          `${why} (not required for readiness: its records wait in the write-ahead log, which readiness follows)`,
        );
    }
    const v = this.sources.verifier();
    if (v && !v.status.ok) {
      for (const [exporter, findings] of Object.entries(v.status.lastFindings)) {
        if (findings.length > 0)
          reasons.push(
            `continuous verification found ${findings.length} problem(s) in exporter ${exporter}'s backend (first: ${findings[0]?.category} at ${findings[0]?.location})`,
          );
      }
    }
    degraded.push(...(this.sources.witnessProblems?.() ?? []));
    const phase = this.sources.phase();
    if (phase === "stopping") reasons.push("shutting down");
    else if (phase === "starting") reasons.push("starting");
    return { ready: reasons.length === 0, reasons, degraded };
  }

  private reply(
    res: import("node:http").ServerResponse,
    s: { ready: boolean; reasons: string[]; degraded?: string[] },
    kind = "ready",
  ): void {
    const uptime = (Date.now() - this.upSince.getTime()) / 1000;
    const body = {
      status: s.ready ? "Server available" : "Server not available",
      upSince: this.upSince.toISOString(),
      uptime: `${uptime.toFixed(3)}s`,
      ...(kind === "ready" ? { reasons: s.reasons, degraded: s.degraded ?? [] } : {}),
    };
    res
      .writeHead(s.ready ? 200 : 503, { "Content-Type": "application/json" })
      .end(`${JSON.stringify(body)}\n`);
  }

  start(): Promise<void> {
    return this.endpoint.start();
  }

  address(): string {
    return this.endpoint.address();
  }

  shutdown(): Promise<void> {
    return this.endpoint.shutdown();
  }
}

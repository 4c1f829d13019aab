import type { SealedLog } from "../store/sealed-log.js";
import type { PublicKey } from "../integrity/signing.js";
import type { DeliveryLoop } from "../exporters/delivery.js";
import type { Logger } from "../telemetry/logger.js";
import type { AuditSource, Finding } from "./types.js";
import { verifySource } from "./verify.js";

/**
 * The periodic self-check: for each exporter with a reader, verify what its backend
 * holds, using the checkpoint of the last batch that exporter delivered as a known
 * checkpoint (so a removed tail is caught). Results go to the log and to `status`, which
 * health and metrics report.
 */
export interface VerificationTarget {
  exporterId: string;
  source: AuditSource;
  delivery: DeliveryLoop;
}

export interface VerificationStatus {
  runs: number;
  failures: number;
  lastRunAt: string | null;
  /** Findings of the last run, by exporter. */
  lastFindings: Record<string, Finding[]>;
  ok: boolean;
}

export class ContinuousVerifier {
  readonly status: VerificationStatus = {
    runs: 0,
    failures: 0,
    lastRunAt: null,
    lastFindings: {},
    ok: true,
  };
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<boolean> | null = null;

  constructor(
    private readonly targets: readonly VerificationTarget[],
    private readonly sealed: SealedLog,
    private readonly chainId: string,
    private readonly trusted: readonly PublicKey[],
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.runOnce().finally(() => {
        this.running = null;
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** Verifies every target once; returns true when all are clean. */
  async runOnce(): Promise<boolean> {
    let ok = true;
    for (const t of this.targets) {
      const delivered = t.delivery.deliveredIndex;
      if (delivered < 0) continue; // nothing delivered yet
      const entry = await this.sealed.readEntry(delivered);
      const known = entry?.checkpoint
        ? [{ note: entry.checkpoint, location: `agent checkpoint after batch ${delivered}` }]
        : [];
      const deliveredThrough = t.delivery.deliveredThrough;
      const report = await verifySource(t.source, this.trusted, known);
      // Lines past what the exporter had confirmed when the read began may be mid-write.
      // Only this agent's chain: another agent may share the backend (a Loki tenant, a bucket).
      const findings = report.findings
        .filter((f) => f.chainId === this.chainId)
        .filter((f) => !(f.category === "inserted" && (f.seq ?? -1) > deliveredThrough));
      this.status.lastFindings[t.exporterId] = findings;
      if (findings.length > 0) {
        ok = false;
        this.logger.error(
          { exporter: t.exporterId, findings: findings.slice(0, 20), total: findings.length },
          "continuous verification FAILED: the backend does not match the signed chain",
        );
      } else {
        this.logger.info(
          { exporter: t.exporterId, records: report.chains.reduce((n, c) => n + c.records, 0) },
          "continuous verification passed",
        );
      }
    }
    this.status.runs++;
    if (!ok) this.status.failures++;
    this.status.ok = ok;
    this.status.lastRunAt = new Date().toISOString();
    return ok;
  }
}

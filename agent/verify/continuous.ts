import type { DeliveryLoop } from "../exporters/delivery.js";
import type { SealedLog } from "../store/sealed-log.js";
import type { VerificationStateStore } from "../store/verification-state.js";
import type { Logger } from "../telemetry/logger.js";
import { emptyState, type VerifierState } from "./state.js";
import type { Finding, VerifyReport } from "./types.js";

/**
 * The periodic self-check: for each exporter with a reader, verify what its backend holds,
 * using the checkpoint of the last batch that exporter delivered as a known checkpoint (so
 * a removed tail is caught). Each run is incremental: it resumes from what the last clean
 * run established, kept in the agent's store, so a run costs what is new, not the log.
 * Results go to the log and to `status`, which health and metrics report.
 */
export interface VerificationTarget {
  exporterId: string;
  delivery: DeliveryLoop;
  /**
   * Verifies the backend from `state` on (advancing it for clean chains): in this process,
   * or on a worker thread under a memory cap (service/verification-runner.ts).
   */
  verify(run: VerificationRun): Promise<VerificationResult>;
}

export interface VerificationRun {
  known: { note: string; location: string }[];
  state: VerifierState;
}

export interface VerificationResult {
  report: VerifyReport;
  /** The state after the run (advanced for the chains that verified clean). */
  state: VerifierState;
  /** Records read and judged by this run. */
  checked: number;
}

/** What the last run of one exporter found and cost. */
export interface ExporterRun {
  checked: number;
  seconds: number;
  /** Records of this agent's chain that verification vouches for. */
  treeSize: number;
}

export interface VerificationStatus {
  runs: number;
  failures: number;
  lastRunAt: string | null;
  /** Findings of the last run, by exporter. */
  lastFindings: Record<string, Finding[]>;
  /** The last run of each exporter. */
  lastRuns: Record<string, ExporterRun>;
  /** Why the last run could not verify (a read failure, the memory cap), when it could not. */
  lastError: string | null;
  ok: boolean;
}

export class ContinuousVerifier {
  readonly status: VerificationStatus = {
    runs: 0,
    failures: 0,
    lastRunAt: null,
    lastFindings: {},
    lastRuns: {},
    lastError: null,
    ok: true,
  };
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<boolean> | null = null;
  private stopping = false;

  constructor(
    private readonly targets: readonly VerificationTarget[],
    private readonly sealed: SealedLog,
    private readonly chainId: string,
    private readonly states: VerificationStateStore,
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

  /**
   * Stops the timer and the run in progress: `abort` ends it (the worker runner terminates
   * its thread), so shutdown does not wait for a run that may take minutes.
   */
  async shutdown(abort?: () => Promise<void>): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    await abort?.();
    await this.running;
  }

  /** Verifies every target once; returns true when all are clean. */
  async runOnce(): Promise<boolean> {
    let ok = true;
    this.status.lastError = null;
    for (const t of this.targets) {
      try {
        ok = (await this.verifyTarget(t)) && ok;
      } catch (err) {
        if (this.stopping) return false; // ended by shutdown: nothing to report
        ok = false;
        this.status.lastError = `${t.exporterId}: ${err instanceof Error ? err.message : String(err)}`;
        this.logger.error(
          { exporter: t.exporterId, err },
          "continuous verification could not read the backend",
        );
      }
    }
    this.status.runs++;
    if (!ok) this.status.failures++;
    this.status.ok = ok;
    this.status.lastRunAt = new Date().toISOString();
    return ok;
  }

  private async verifyTarget(t: VerificationTarget): Promise<boolean> {
    const delivered = t.delivery.deliveredIndex;
    if (delivered < 0) return true; // nothing delivered yet
    const entry = await this.sealed.readEntry(delivered);
    const known = entry?.checkpoint
      ? [{ note: entry.checkpoint, location: `agent checkpoint after batch ${delivered}` }]
      : [];
    const deliveredThrough = t.delivery.deliveredThrough;
    const started = performance.now();
    const { report, state, checked } = await t.verify({ known, state: await this.loadState(t) });
    // Lines past what the exporter had confirmed when the read began may be mid-write.
    // Only this agent's chain: another agent may share the backend (a Loki tenant, a bucket).
    const findings = report.findings
      .filter((f) => f.chainId === this.chainId || f.chainId === "") // "": the source holds no chain
      .filter((f) => !(f.category === "inserted" && (f.seq ?? -1) > deliveredThrough));
    this.status.lastFindings[t.exporterId] = findings;
    const treeSize = state.chains[this.chainId]?.treeSize ?? 0;
    const seconds = (performance.now() - started) / 1000;
    this.status.lastRuns[t.exporterId] = { checked, seconds, treeSize };
    if (findings.length > 0) {
      this.logger.error(
        { exporter: t.exporterId, findings: findings.slice(0, 20), total: findings.length },
        "continuous verification FAILED: the backend does not match the signed chain",
      );
      return false;
    }
    await this.states.save(t.exporterId, JSON.stringify(state));
    this.logger.info(
      { exporter: t.exporterId, checked, verifiedRecords: treeSize, seconds },
      "continuous verification passed",
    );
    return true;
  }

  private async loadState(t: VerificationTarget): Promise<VerifierState> {
    const saved = await this.states.load(t.exporterId);
    if (saved === undefined) return emptyState();
    try {
      return JSON.parse(saved) as VerifierState;
    } catch {
      return emptyState(); // unreadable: a full run establishes it again
    }
  }
}

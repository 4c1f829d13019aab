import type { Clock } from "../common/clock.js";
import { LogThrottle } from "../telemetry/log-throttle.js";
import type { Logger } from "../telemetry/logger.js";
import type { TreeHead } from "./check.js";
import type { WitnessHealth } from "./health.js";
import type { WitnessMetrics } from "./metrics.js";
import type { Refusal, RefusalReason } from "./refusal.js";
import type { CosignedCheckpoint } from "./state.js";

/**
 * What the witness tells its operator about each request: the metrics, a log line (at most
 * one a minute per log and reason, LogThrottle), and for a fork or a rollback a /healthz
 * alarm. A fork's log line holds the signed checkpoint: the evidence that the log misbehaved.
 */

export interface RefusalContext {
  oldSize?: number;
  /** The latest checkpoint cosigned for the log. */
  cosigned?: TreeHead;
  /** The checkpoint refused. */
  checkpoint?: TreeHead;
  /** The signed note refused (logged with a fork). */
  note?: string;
}

/** A refusal of one kind for one log is logged at most this often. */
const LOG_EVERY_MS = 60_000;
/** Kinds of refusal (reason and log) whose log throttle is remembered, at most. */
const MAX_THROTTLES = 1000;

const LEVEL: Record<RefusalReason, "error" | "warn" | "info"> = {
  fork: "error",
  rollback: "warn",
  bad_signature: "warn",
  invalid_proof: "info",
  stale_old_size: "info",
  unknown_log: "info",
  malformed: "info",
};

export class WitnessObserver {
  private readonly throttles = new Map<string, LogThrottle>();

  constructor(
    private readonly o: {
      logger: Logger;
      metrics: WitnessMetrics;
      health: WitnessHealth;
      clock: Clock;
    },
  ) {}

  cosigned(state: CosignedCheckpoint): void {
    this.o.metrics.countCosigned(state.origin);
    this.o.logger.debug({ origin: state.origin, size: state.size }, "checkpoint cosigned");
  }

  /** Counts and reports `refusal` for the log named `origin` (a metrics label), and returns it. */
  refused(origin: string, refusal: Refusal, context: RefusalContext = {}): Refusal {
    this.o.metrics.countRefused(origin, refusal.reason);
    if (refusal.reason === "fork" || refusal.reason === "rollback")
      this.o.health.alarm(`${refusal.reason}:${origin}`, this.alarmText(origin, refusal, context));
    const throttle = this.throttle(`${refusal.reason}:${origin}`);
    if (throttle.failed(this.o.clock.now())) {
      const fields = {
        origin,
        reason: refusal.reason,
        status: refusal.status,
        ...treeFields(context),
        ...(refusal.reason === "fork" && context.note ? { checkpoint: context.note } : {}),
        refusedSinceStart: throttle.count,
      };
      this.o.logger[LEVEL[refusal.reason]](
        fields,
        `checkpoint refused: ${refusal.message} (logged at most once a minute per log and reason)`,
      );
    }
    return refusal;
  }

  /** The state directory failed: nothing can be cosigned until it works again. */
  stateFailed(origin: string, err: unknown): void {
    const message = (err as Error).message;
    this.o.health.alarm(
      "state",
      `state: ${this.now()}: ${message}: no checkpoint can be cosigned while the state directory fails`,
    );
    this.o.logger.error({ origin, err }, "cannot save the witness state: checkpoint not cosigned");
  }

  /** A request failed inside the witness (answered 500); state failures were reported already. */
  requestFailed(err: unknown): void {
    if ((err as { code?: string }).code !== "WITNESS_STATE_UNWRITABLE")
      this.o.logger.error({ err }, "add-checkpoint failed: answered 500, nothing cosigned");
  }

  private throttle(key: string): LogThrottle {
    let throttle = this.throttles.get(key);
    if (!throttle) {
      if (this.throttles.size >= MAX_THROTTLES)
        this.throttles.delete(this.throttles.keys().next().value as string);
      throttle = new LogThrottle(LOG_EVERY_MS);
      this.throttles.set(key, throttle);
    }
    return throttle;
  }

  private alarmText(origin: string, refusal: Refusal, c: RefusalContext): string {
    const next = c.checkpoint ? describe(c.checkpoint) : "?";
    const cosigned = c.cosigned ? describe(c.cosigned) : "?";
    return refusal.reason === "fork"
      ? `fork: ${this.now()}: log ${origin} signed a tree (${next}) that does not extend the one cosigned (${cosigned}): the log shows two inconsistent histories; the witness's error log holds the signed checkpoint`
      : `rollback: ${this.now()}: log ${origin} signed a tree (${next}) smaller than the one cosigned (${cosigned}): the log went back, or an old checkpoint was replayed`;
  }

  private now(): string {
    return new Date(this.o.clock.now()).toISOString();
  }
}

function describe(t: TreeHead): string {
  return `size ${t.size}, root ${t.rootHash.toString("base64")}`;
}

function treeFields(c: RefusalContext): Record<string, unknown> {
  return {
    ...(c.oldSize !== undefined ? { oldSize: c.oldSize } : {}),
    ...(c.checkpoint
      ? { size: c.checkpoint.size, root: c.checkpoint.rootHash.toString("base64") }
      : {}),
    ...(c.cosigned
      ? { cosignedSize: c.cosigned.size, cosignedRoot: c.cosigned.rootHash.toString("base64") }
      : {}),
  };
}

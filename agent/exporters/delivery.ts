import type { WriteAheadLog } from "../buffer/wal.js";
import type { Batcher } from "../chain/batcher.js";
import type { RetryOnFailure } from "../config/common.js";
import type { AgentCounters } from "../telemetry/counters.js";
import type { Logger } from "../telemetry/logger.js";
import { Backoff } from "./backoff.js";
import type { RecordSink } from "./sink.js";

/**
 * Moves sealed batches (records from the WAL with their signed manifest and checkpoint)
 * to one exporter's sink, in order, through that exporter's own persisted cursor. Failures are retried with exponential backoff and
 * jitter (Collector retry_on_failure semantics); data is never skipped: a permanent
 * failure stops this exporter and leaves its records in the WAL.
 */

export type DeliveryState = "starting" | "running" | "retrying" | "failed" | "stopped";

export interface DeliveryOptions {
  retry: RetryOnFailure;
}

export class DeliveryLoop {
  state: DeliveryState = "starting";
  lastError: string | null = null;
  private cursor = -1;
  private index = -1;
  private stopping = false;
  private draining = false;
  private loop: Promise<void> | null = null;
  private sleepTimer: NodeJS.Timeout | null = null;
  private wakeSleep: (() => void) | null = null;

  constructor(
    readonly exporterId: string,
    private readonly sink: RecordSink,
    private readonly wal: WriteAheadLog,
    private readonly batcher: Batcher,
    private readonly options: DeliveryOptions,
    private readonly counters: AgentCounters,
    private readonly logger: Logger,
  ) {}

  /** Index of the last sealed batch this exporter has durably delivered (−1: none). */
  get deliveredIndex(): number {
    return this.index;
  }

  /** Last seq this exporter has durably delivered. */
  get deliveredThrough(): number {
    return this.cursor;
  }

  start(): void {
    this.loop = this.run().catch((err) => {
      this.state = "failed";
      this.lastError = err instanceof Error ? err.message : String(err);
      this.logger.error({ exporter: this.exporterId, err }, "exporter stopped");
    });
  }

  /** Delivers every sealed batch, until caught up or until `deadline` (epoch ms). */
  async drain(deadline: number): Promise<boolean> {
    this.draining = true;
    this.batcher.wake();
    const remaining = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, remaining));
    });
    const outcome = await Promise.race([this.loop ?? Promise.resolve(), timedOut]);
    clearTimeout(timer);
    return outcome !== "timeout" && this.index >= this.batcher.entryCount - 1;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.interruptSleep();
    this.batcher.wake();
    await this.loop;
    await this.sink.close();
    if (this.state !== "failed") this.state = "stopped";
  }

  private async run(): Promise<void> {
    const opened = await this.withRetry(() => this.sink.open(this.wal.chainId), 0);
    if (opened === null) return;
    const held = opened.value;
    const saved = await this.wal.loadCursorState(this.exporterId);
    this.cursor = saved.seq;
    this.index = saved.index ?? (await this.batcher.firstEntryAfterSeq(saved.seq)) - 1;
    const heldEntry =
      held !== null && held > this.index ? await this.batcher.readEntry(held) : null;
    if (held !== null && held > this.index && heldEntry === null) {
      // The backend claims a batch this agent never sealed (a backend kept from an earlier
      // WAL with the same chain id): trust the cursor, not the backend, and skip nothing.
      this.logger.warn(
        { exporter: this.exporterId, held, sealed: this.batcher.entryCount },
        "backend holds batches this agent never sealed; delivering from the cursor",
      );
    } else if (held !== null && held > this.index) {
      const entry = heldEntry;
      this.logger.info(
        { exporter: this.exporterId, cursor: this.index, held },
        "backend already holds batches past the cursor; resuming after them",
      );
      this.index = held;
      if (entry && entry.count > 0) this.cursor = entry.lastSeq;
      await this.wal.commitCursor(this.exporterId, this.cursor, this.index);
    }
    this.state = "running";
    while (!this.stopping) {
      if (this.index >= this.batcher.entryCount - 1) {
        if (this.draining) return;
        await this.batcher.waitForEntryAfter(this.index);
        continue;
      }
      const entry = await this.batcher.readEntry(this.index + 1);
      if (entry === null) throw new Error(`sealed batch ${this.index + 1} is missing from the WAL`);
      const records =
        entry.count > 0
          ? await this.wal.read(entry.firstSeq - 1, entry.count, Number.POSITIVE_INFINITY)
          : [];
      if (
        records.length !== entry.count ||
        (entry.count > 0 && records[0]?.seq !== entry.firstSeq)
      ) {
        throw new Error(
          `records ${entry.firstSeq}..${entry.lastSeq} of sealed batch ${entry.index} are missing from the WAL`,
        );
      }
      const batch = {
        index: entry.index,
        manifest: entry.manifest,
        checkpoint: entry.checkpoint,
        firstSeq: entry.firstSeq,
        lastSeq: entry.lastSeq,
        records,
      };
      const written = await this.withRetry(() => this.sink.write(batch), records.length);
      if (written === null) return;
      this.index = entry.index;
      if (entry.count > 0) this.cursor = entry.lastSeq;
      this.counters.sent(this.exporterId, records.length);
      await this.wal.commitCursor(this.exporterId, this.cursor, this.index);
    }
  }

  /** Runs `attempt` until it succeeds; null when stopped or failed permanently. */
  private async withRetry<T>(
    attempt: () => Promise<T>,
    records: number,
  ): Promise<{ value: T } | null> {
    const backoff = new Backoff(this.options.retry);
    for (;;) {
      if (this.stopping) return null;
      try {
        const value = await attempt();
        if (this.state === "retrying") {
          this.logger.info({ exporter: this.exporterId }, "exporter recovered");
          this.state = "running";
          this.lastError = null;
        }
        return { value };
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.lastError = message;
        this.counters.sendFailed(this.exporterId, records);
        const delay = backoff.next(err);
        if (delay === null) {
          this.state = "failed";
          this.logger.error(
            { exporter: this.exporterId, error: message },
            "exporter failed permanently; its records stay in the WAL",
          );
          return null;
        }
        this.state = "retrying";
        this.logger.warn(
          { exporter: this.exporterId, error: message, retryInMs: Math.round(delay) },
          "export failed; retrying",
        );
        await this.sleep(delay);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeSleep = resolve;
      this.sleepTimer = setTimeout(resolve, ms);
    });
  }

  private interruptSleep(): void {
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wakeSleep?.();
  }
}

import { type Clock, systemClock, type TimerHandle } from "../common/clock.js";
import type { ChainLog } from "../store/chain-log.js";
import type { Cursors } from "../store/cursors.js";
import type { SealedEntry, SealedLog } from "../store/sealed-log.js";
import type { AgentCounters } from "../telemetry/counters.js";
import { LogThrottle } from "../telemetry/log-throttle.js";
import type { Logger } from "../telemetry/logger.js";
import { Backoff, type BackoffOptions } from "./backoff.js";
import type { DeliveryOptions, RecordSink, SealedBatch } from "./api.js";

/**
 * Moves sealed batches (records from the WAL with their signed manifest and checkpoint)
 * to one exporter's sink, in order, through that exporter's own persisted cursor. Failures are retried with exponential backoff and
 * jitter (Collector retry_on_failure semantics); data is never skipped: a permanent
 * failure stops this exporter and leaves its records in the WAL.
 */

/** Bounds on the batches handed to a sink at once (writeAll). */
const GROUP_MAX_BATCHES = 16;
const GROUP_MAX_RECORDS = 32_768;

export type DeliveryState = "starting" | "running" | "retrying" | "failed" | "stopped";

/** A failing cursor commit is logged once, then at most this often. */
const COMMIT_WARN_EVERY_MS = 30_000;

export class DeliveryLoop {
  state: DeliveryState = "starting";
  lastError: string | null = null;
  /** The cursor write in flight, if any (one at a time; see requestCommit). */
  private committing: Promise<void> | null = null;
  private stopping = false;
  private draining = false;
  private loop: Promise<void> | null = null;
  private sleepTimer: TimerHandle | null = null;
  private wakeSleep: (() => void) | null = null;
  private readonly clock: Clock;

  constructor(
    readonly exporterId: string,
    private readonly sink: RecordSink,
    private readonly log: ChainLog,
    private readonly sealed: SealedLog,
    private readonly cursors: Cursors,
    private readonly options: DeliveryOptions,
    private readonly counters: AgentCounters,
    private readonly logger: Logger,
    /** Time and jitter for retries and the drain deadline: the real ones unless testing. */
    private readonly timing: BackoffOptions = {},
  ) {
    this.clock = timing.clock ?? systemClock;
  }

  /** Index of the last sealed batch this exporter has durably delivered (−1: none). */
  get deliveredIndex(): number {
    return this.cursors.position(this.exporterId).index;
  }

  /** Last seq this exporter has durably delivered. */
  get deliveredThrough(): number {
    return this.cursors.position(this.exporterId).seq;
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
    this.sealed.wake();
    const remaining = deadline - this.clock.now();
    let timer: TimerHandle | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = this.clock.setTimeout(() => resolve("timeout"), Math.max(0, remaining));
    });
    const outcome = await Promise.race([this.loop ?? Promise.resolve(), timedOut]);
    this.clock.clearTimeout(timer);
    return outcome !== "timeout" && this.deliveredIndex >= this.sealed.entryCount - 1;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.interruptSleep();
    this.sealed.wake();
    await this.loop;
    await this.sink.close();
    if (this.state !== "failed") this.state = "stopped";
  }

  private async run(): Promise<void> {
    const opened = await this.withRetry(() => this.sink.open(this.log.chainId), 0);
    if (opened === null) return;
    const held = opened.value;
    const saved = await this.cursors.load(this.exporterId);
    const index = saved.index ?? (await this.sealed.firstEntryAfterSeq(saved.seq)) - 1;
    this.cursors.resume(this.exporterId, { seq: saved.seq, index });
    const heldEntry = held !== null && held > index ? await this.sealed.readEntry(held) : null;
    if (held !== null && held > index && heldEntry === null) {
      // The backend claims a batch this agent never sealed (a backend kept from an earlier
      // WAL with the same chain id): trust the cursor, not the backend, and skip nothing.
      this.logger.warn(
        { exporter: this.exporterId, held, sealed: this.sealed.entryCount },
        "backend holds batches this agent never sealed; delivering from the cursor",
      );
    } else if (held !== null && held > index) {
      this.logger.info(
        { exporter: this.exporterId, cursor: index, held },
        "backend already holds batches past the cursor; resuming after them",
      );
      const seq = heldEntry && heldEntry.count > 0 ? heldEntry.lastSeq : saved.seq;
      await this.cursors.commit(this.exporterId, seq, held);
    }
    this.state = "running";
    try {
      await this.deliverSealed();
    } finally {
      // Everything written is delivered: record it so a restart does not send it again.
      await this.settleCommits();
    }
  }

  /**
   * Persists the cursor after a delivery without waiting for it: a cursor write queues
   * behind the WAL's synced group commits in LevelDB, and waiting for one per batch let a
   * busy ingest starve delivery. One commit is in flight at a time and the next one takes
   * the newest position, so after a crash at most the batches delivered during one commit
   * are sent again (which every sink tolerates; see RecordSink.open).
   */
  /** Failed cursor commits in a row, logged at most every COMMIT_WARN_EVERY_MS. */
  private readonly commitFailures = new LogThrottle(COMMIT_WARN_EVERY_MS);
  /** Failed sends in a row, logged the same way. */
  private readonly sendFailures = new LogThrottle(COMMIT_WARN_EVERY_MS);

  private requestCommit(): void {
    if (this.committing !== null || !this.cursors.unpersisted(this.exporterId)) return;
    let failed = false;
    this.committing = this.cursors
      .persist(this.exporterId)
      .then(
        () => this.commitFailures.succeeded(),
        (err: unknown) => {
          // The batches stay delivered; the next commit (or a restart's re-send) covers them.
          failed = true;
          if (this.commitFailures.failed()) {
            this.logger.warn(
              { exporter: this.exporterId, err, failures: this.commitFailures.count },
              "could not persist the cursor; retrying with backoff (logged at most every 30 s)",
            );
          }
        },
      )
      .finally(() => {
        this.committing = null;
        if (this.stopping && !this.draining) return;
        if (!failed) return this.requestCommit();
        // A failing store fails every write at once: back off rather than spin.
        const wait = Math.min(100 * 2 ** Math.min(this.commitFailures.count, 6), 5000);
        setTimeout(() => this.requestCommit(), wait).unref();
      });
  }

  /** Waits for the commit in flight, then commits whatever it did not cover. */
  private async settleCommits(): Promise<void> {
    while (this.committing !== null) await this.committing;
    if (this.cursors.unpersisted(this.exporterId)) await this.cursors.persist(this.exporterId);
  }

  /** The delivery loop proper. */
  private async deliverSealed(): Promise<void> {
    while (!this.stopping) {
      const { index } = this.cursors.position(this.exporterId);
      if (index >= this.sealed.exportable.count - 1) {
        if (this.draining) return;
        await this.sealed.exportable.waitAfter(index);
        continue;
      }
      const batches = await this.nextBatches();
      const records = batches.reduce((n, b) => n + b.records.length, 0);
      const sink = this.sink;
      const written = await this.withRetry(
        () => (sink.writeAll ? sink.writeAll(batches) : sink.write(batches[0] as SealedBatch)),
        records,
      );
      if (written === null) return;
      const last = batches[batches.length - 1] as SealedBatch;
      let { seq } = this.cursors.position(this.exporterId);
      for (const b of batches) if (b.records.length > 0) seq = b.lastSeq;
      this.cursors.advance(this.exporterId, { seq, index: last.index });
      this.counters.sent(this.exporterId, records);
      this.requestCommit();
    }
  }

  /**
   * The sealed batches after the delivered one, with their records: the next one, or, for
   * a sink that can write several at once (writeAll), all that are waiting up to
   * GROUP_MAX_BATCHES and GROUP_MAX_RECORDS, so it pays its fixed cost once per group.
   */
  private async nextBatches(): Promise<SealedBatch[]> {
    const maxBatches = this.sink.writeAll ? GROUP_MAX_BATCHES : 1;
    const entries: SealedEntry[] = [];
    let count = 0;
    for (
      let i = this.deliveredIndex + 1;
      i < this.sealed.exportable.count && entries.length < maxBatches && count < GROUP_MAX_RECORDS;
      i++
    ) {
      const entry = await this.sealed.readEntry(i);
      if (entry === null) throw new Error(`sealed batch ${i} is missing from the WAL`);
      entries.push(entry);
      count += entry.count;
    }
    // Sealed batches are contiguous, so the group's records are one read.
    const first = entries.find((e) => e.count > 0);
    const stored =
      first === undefined
        ? []
        : await this.log.read(first.firstSeq - 1, count, Number.POSITIVE_INFINITY);
    let at = 0;
    return entries.map((entry) => {
      const records = stored.slice(at, at + entry.count);
      at += entry.count;
      if (
        records.length !== entry.count ||
        (entry.count > 0 && records[0]?.seq !== entry.firstSeq)
      ) {
        throw new Error(
          `records ${entry.firstSeq}..${entry.lastSeq} of sealed batch ${entry.index} are missing from the WAL`,
        );
      }
      return { ...entry, records };
    });
  }

  /** Runs `attempt` until it succeeds; null when stopped or failed permanently. */
  private async withRetry<T>(
    attempt: () => Promise<T>,
    records: number,
  ): Promise<{ value: T } | null> {
    const backoff = new Backoff(this.options.retry, this.timing);
    for (;;) {
      if (this.stopping) return null;
      try {
        const value = await attempt();
        this.sendFailures.succeeded();
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
        if (this.sendFailures.failed())
          this.logger.warn(
            {
              exporter: this.exporterId,
              error: message,
              failures: this.sendFailures.count,
              retryInMs: Math.round(delay),
            },
            "export failed; retrying with backoff (logged at most every 30 s)",
          );
        await this.sleep(delay);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeSleep = resolve;
      this.sleepTimer = this.clock.setTimeout(resolve, ms);
    });
  }

  private interruptSleep(): void {
    if (this.sleepTimer) this.clock.clearTimeout(this.sleepTimer);
    this.wakeSleep?.();
  }
}

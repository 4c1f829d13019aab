import { type Clock, systemClock, type TimerHandle } from "../../common/clock.js";
import type { AgentCounters, TransportCounts } from "../../telemetry/counters.js";
import type { Logger } from "../../telemetry/logger.js";
import { Backoff, type BackoffOptions } from "../backoff.js";
import type { ForwardingConfig } from "./config.js";
import type { OtlpTransport } from "./transport.js";

/**
 * The pass-through queue for non-audit records: bounded, in memory (like the Collector's
 * default sending_queue: these records are not audit data and are not chained or stored),
 * sent one request at a time with retry_on_failure backoff. A record dropped because the
 * queue is full or retries ran out is counted and logged, never silently lost.
 */
interface Item {
  body: Uint8Array;
  records: number;
  /** The receiver transport the records came in on, which counts them if dropped. */
  from: TransportCounts;
}

export class SendingQueue {
  private readonly items: Item[] = [];
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private stopping = false;
  private sleepTimer: TimerHandle | null = null;
  private readonly clock: Clock;
  dropped = 0;

  constructor(
    readonly exporterId: string,
    private readonly transport: OtlpTransport,
    private readonly config: ForwardingConfig,
    private readonly counters: AgentCounters,
    private readonly logger: Logger,
    /** Time and jitter for retries and the shutdown deadline: the real ones unless testing. */
    private readonly timing: BackoffOptions = {},
  ) {
    this.clock = timing.clock ?? systemClock;
  }

  /** True when a full queue should refuse the client's request instead of dropping. */
  get refusesWhenFull(): boolean {
    return this.config.sending_queue.on_full === "refuse";
  }

  isFull(): boolean {
    return this.items.length >= this.config.sending_queue.queue_size;
  }

  get size(): number {
    return this.items.length;
  }

  /** Queues an encoded ExportLogsServiceRequest; false when it was dropped (queue full). */
  offer(body: Uint8Array, records: number, from: TransportCounts): boolean {
    if (this.isFull()) {
      this.drop([{ body, records, from }], "the sending queue is full");
      return false;
    }
    this.items.push({ body, records, from });
    this.wake?.();
    return true;
  }

  private drop(items: readonly Item[], why: string): void {
    const records = items.reduce((n, i) => n + i.records, 0);
    if (records === 0) return;
    this.dropped += records;
    this.counters.sendFailed(this.exporterId, records);
    for (const i of items) i.from.refuse(`passthrough_dropped:${this.exporterId}`, i.records);
    this.logger.warn(
      { exporter: this.exporterId, records, why },
      "non-audit records dropped by the pass-through exporter",
    );
  }

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopping || this.items.length > 0) {
      const item = this.items[0];
      if (!item) {
        if (this.stopping) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = null;
        continue;
      }
      const backoff = new Backoff(this.config.retry_on_failure, this.timing);
      for (;;) {
        try {
          await this.transport.send(item.body);
          this.counters.sent(this.exporterId, item.records);
          break;
        } catch (err) {
          const delay = this.stopping ? null : backoff.next(err);
          if (delay === null) {
            this.drop([item], (err as Error).message);
            break;
          }
          this.logger.warn(
            {
              exporter: this.exporterId,
              error: (err as Error).message,
              retryInMs: Math.round(delay),
            },
            "pass-through export failed; retrying",
          );
          await new Promise<void>((resolve) => {
            this.wake = resolve;
            this.sleepTimer = this.clock.setTimeout(resolve, delay);
          });
          this.wake = null;
        }
      }
      this.items.shift();
    }
  }

  /**
   * Sends what is queued until empty or `deadline`, then stops; what is left (including a
   * send still hanging on the upstream) is dropped and counted. The queue counts the item
   * being sent towards queue_size.
   */
  async shutdown(deadline: number): Promise<void> {
    while (this.items.length > 0 && this.clock.now() < deadline)
      await new Promise<void>((r) => this.clock.setTimeout(r, 10));
    this.stopping = true;
    if (this.sleepTimer) this.clock.clearTimeout(this.sleepTimer);
    this.drop(this.items.splice(1), "the agent stopped before the upstream accepted them");
    this.wake?.();
    let timer: TimerHandle | undefined;
    const settled = await Promise.race([
      this.loop?.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = this.clock.setTimeout(
          () => resolve(false),
          Math.max(0, deadline - this.clock.now()),
        );
      }),
    ]);
    this.clock.clearTimeout(timer);
    const inFlight = this.items[0];
    if (!settled && inFlight)
      this.drop([inFlight], "the upstream did not answer before the agent stopped");
  }
}

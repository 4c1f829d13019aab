import { LogThrottle } from "./log-throttle.js";
import type { Logger } from "./logger.js";

/** How often a kind of event may be logged after its first line. */
export const EVENT_LOG_EVERY_MS = 10_000;

type Level = "info" | "warn";

interface Event {
  level: Level;
  msg: string;
  fields: Record<string, unknown>;
  records: number | undefined;
}

interface Kind {
  throttle: LogThrottle;
  /** Events of this kind not logged since its last line, and the records they concerned. */
  suppressed: number;
  suppressedRecords: number;
  last: Event | null;
}

/**
 * Log lines for events that can come by the thousand — refused requests, records the audit
 * filter leaves out — which metrics alone would keep invisible. Each kind is logged at its
 * first event, then at most once per interval (LogThrottle); a line says how many events of
 * its kind were left out since the previous one (`suppressed`) and, for events about
 * records, how many records all of them concerned (`records`). What a burst leaves
 * unreported is logged when the interval is over, and at stop(), so no count is lost.
 */
export class ThrottledEvents {
  private readonly kinds = new Map<string, Kind>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly everyMs = EVENT_LOG_EVERY_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * An event of `kind` (e.g. "http:malformed"): `msg` and `fields` are its line when it is
   * logged. `records`: how many records it concerns, summed over what was suppressed.
   */
  event(
    kind: string,
    level: Level,
    msg: string,
    fields: Record<string, unknown>,
    records?: number,
  ) {
    let k = this.kinds.get(kind);
    if (!k) {
      k = {
        throttle: new LogThrottle(this.everyMs),
        suppressed: 0,
        suppressedRecords: 0,
        last: null,
      };
      this.kinds.set(kind, k);
    }
    const event = { level, msg, fields, records };
    if (k.throttle.failed(this.now())) {
      this.write(k, event);
      return;
    }
    k.suppressed++;
    k.suppressedRecords += records ?? 0;
    k.last = event;
    this.timer ??= setTimeout(() => this.flush(false), this.everyMs).unref();
  }

  /** Logs what is left unreported: of kinds whose interval is over, or of all (`force`). */
  flush(force = true): void {
    this.timer = null;
    let pending = false;
    for (const k of this.kinds.values()) {
      const last = k.last;
      if (!last) continue;
      if (force || k.throttle.failed(this.now())) {
        // The last event suppressed is this line's own; the others are counted in it.
        k.suppressed--;
        k.suppressedRecords -= last.records ?? 0;
        this.write(k, last);
      } else pending = true;
    }
    if (pending) this.timer = setTimeout(() => this.flush(false), this.everyMs).unref();
  }

  /** Logs what is left and stops the timer: at shutdown. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.flush(true);
  }

  private write(k: Kind, e: Event): void {
    const fields: Record<string, unknown> = { ...e.fields };
    if (e.records !== undefined) fields.records = e.records + k.suppressedRecords;
    if (k.suppressed > 0) fields.suppressed = k.suppressed;
    k.suppressed = 0;
    k.suppressedRecords = 0;
    k.last = null;
    this.logger[e.level](fields, e.msg);
  }
}

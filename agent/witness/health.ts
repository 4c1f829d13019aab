import type { Clock } from "../common/clock.js";

/**
 * What /healthz reports: an alarm raised within the last `windowMs` (a fork or rollback
 * refused for a log, the state directory failing) makes the witness unhealthy, with one
 * reason per alarm, until the window has passed without it being raised again.
 */
export class WitnessHealth {
  private readonly alarms = new Map<string, { at: number; text: string }>();

  constructor(
    private readonly windowMs: number,
    private readonly clock: Clock,
  ) {}

  /** Raises (or renews) the alarm `key`, described by `text`. */
  alarm(key: string, text: string): void {
    this.alarms.delete(key);
    this.alarms.set(key, { at: this.clock.now(), text });
  }

  /** The alarms raised within the window, oldest first. */
  reasons(): string[] {
    const since = this.clock.now() - this.windowMs;
    for (const [key, a] of this.alarms) if (a.at < since) this.alarms.delete(key);
    return [...this.alarms.values()].map((a) => a.text);
  }
}

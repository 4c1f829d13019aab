import type { Clock, TimerHandle } from "../../agent/common/clock.js";

/**
 * A clock that moves only when a test says so: retries, timeouts and rate limits are then
 * exact and instant instead of real sleeps. Time starts at `epoch` and stands still until
 * advance(), which fires the timers that fall due, in order, each at its own due time.
 */

class ManualTimer implements TimerHandle {
  constructor(
    readonly due: number,
    /** Scheduling order: timers due at the same time fire in the order they were set. */
    readonly order: number,
    readonly fn: () => void,
  ) {}

  unref(): TimerHandle {
    return this;
  }
}

export class ManualClock implements Clock {
  private elapsed = 0;
  private scheduled = 0;
  private timers: ManualTimer[] = [];
  private waiters: Array<{ count: number; resolve: () => void }> = [];

  constructor(private readonly epoch = Date.UTC(2030, 0, 1)) {}

  now(): number {
    return this.epoch + this.elapsed;
  }

  monotonic(): number {
    return this.elapsed;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = new ManualTimer(this.elapsed + Math.max(0, ms), this.scheduled++, fn);
    this.timers.push(timer);
    this.timers.sort((a, b) => a.due - b.due || a.order - b.order);
    const ready = this.waiters.filter((w) => this.timers.length >= w.count);
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
    return timer;
  }

  clearTimeout(handle: TimerHandle | null | undefined): void {
    this.timers = this.timers.filter((t) => t !== handle);
  }

  /** Milliseconds from now until each pending timer is due, soonest first. */
  get pending(): number[] {
    return this.timers.map((t) => t.due - this.elapsed);
  }

  /** Resolves once at least `count` timers are pending (the code under test is waiting). */
  waitForTimers(count = 1): Promise<void> {
    if (this.timers.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  /**
   * Moves time forward by `ms`. Each timer that falls due fires at its own due time, and
   * what it wakes runs (settled promises, queued I/O callbacks) before the next one fires,
   * so a timer set by that code fires within this same advance if it falls due in it.
   */
  async advance(ms: number): Promise<void> {
    const target = this.elapsed + ms;
    for (;;) {
      const next = this.timers[0];
      if (next === undefined || next.due > target) break;
      this.timers.shift();
      this.elapsed = next.due;
      next.fn();
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.elapsed = target;
  }
}

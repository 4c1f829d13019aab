import { type Clock, systemClock } from "../common/clock.js";
import type { RetryOnFailure } from "../common/config-schema.js";
import { PermanentExportError, RetryableExportError } from "./api.js";

/** Where a Backoff reads time and chance; injectable so tests get exact, repeatable delays. */
export interface BackoffOptions {
  /** Measures max_elapsed_time (systemClock by default). */
  clock?: Clock;
  /** The jitter's source: a number in [0, 1), like Math.random (the default). */
  random?: () => number;
}

/**
 * Collector retry_on_failure semantics in one place: exponential backoff with jitter,
 * capped at max_interval, a backend's retry hint taking precedence, and giving up only
 * on a permanent error, when retries are disabled, or after max_elapsed_time (0 = never).
 */
export class Backoff {
  private interval: number;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly startedAt: number;

  constructor(
    private readonly retry: RetryOnFailure,
    options: BackoffOptions = {},
  ) {
    this.interval = retry.initial_interval;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? (() => Math.random());
    this.startedAt = this.clock.now();
  }

  /** Milliseconds to wait before the next attempt, or null to give up. */
  next(err: unknown): number | null {
    const r = this.retry;
    if (err instanceof PermanentExportError || !r.enabled) return null;
    if (r.max_elapsed_time > 0 && this.clock.now() - this.startedAt >= r.max_elapsed_time)
      return null;
    const jitter = 1 + r.randomization_factor * (this.random() * 2 - 1);
    const hinted = err instanceof RetryableExportError ? err.retryAfterMs : undefined;
    const delay = hinted ?? Math.min(this.interval * jitter, r.max_interval);
    this.interval = Math.min(this.interval * r.multiplier, r.max_interval);
    return delay;
  }
}

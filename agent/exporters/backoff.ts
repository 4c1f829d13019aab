import type { RetryOnFailure } from "../common/config-schema.js";
import { PermanentExportError, RetryableExportError } from "./api.js";

/**
 * Collector retry_on_failure semantics in one place: exponential backoff with jitter,
 * capped at max_interval, a backend's retry hint taking precedence, and giving up only
 * on a permanent error, when retries are disabled, or after max_elapsed_time (0 = never).
 */
export class Backoff {
  private interval: number;
  private readonly startedAt = Date.now();

  constructor(private readonly retry: RetryOnFailure) {
    this.interval = retry.initial_interval;
  }

  /** Milliseconds to wait before the next attempt, or null to give up. */
  next(err: unknown): number | null {
    const r = this.retry;
    if (err instanceof PermanentExportError || !r.enabled) return null;
    if (r.max_elapsed_time > 0 && Date.now() - this.startedAt >= r.max_elapsed_time) return null;
    const jitter = 1 + r.randomization_factor * (Math.random() * 2 - 1);
    const hinted = err instanceof RetryableExportError ? err.retryAfterMs : undefined;
    const delay = hinted ?? Math.min(this.interval * jitter, r.max_interval);
    this.interval = Math.min(this.interval * r.multiplier, r.max_interval);
    return delay;
  }
}

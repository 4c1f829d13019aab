/**
 * How a loop that retries a failing operation logs: the first failure at once, then at most
 * once per `everyMs` with how many failed meanwhile, so a store that fails every write
 * cannot flood the log (a retry loop once logged 1.59 M lines in a minute).
 */
export class LogThrottle {
  private failures = 0;
  private loggedAt = 0;

  constructor(private readonly everyMs: number) {}

  /** Failures in a row so far. */
  get count(): number {
    return this.failures;
  }

  /** Records a failure; true when this one should be logged. */
  failed(now = Date.now()): boolean {
    this.failures++;
    if (this.failures > 1 && now - this.loggedAt < this.everyMs) return false;
    this.loggedAt = now;
    return true;
  }

  /** The operation worked: the next failure is logged at once. */
  succeeded(): void {
    this.failures = 0;
  }
}

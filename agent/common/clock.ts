/**
 * Time as the agent reads it: the wall clock, a monotonic clock and timers. Components that
 * wait or measure (delivery retries, sealing timeouts, the sealing gate, rate limiting)
 * take a Clock, systemClock unless told otherwise, so a test can drive them with a manual
 * clock (test/helpers/clock.ts) instead of sleeping through real backoffs and timeouts.
 */

/** A pending timer. unref() lets the process exit while it waits, as Node's Timeout does. */
export interface TimerHandle {
  unref(): TimerHandle;
}

export interface Clock {
  /** Wall-clock time in epoch ms: for deadlines and elapsed-time limits. */
  now(): number;
  /** Milliseconds from an arbitrary origin that never steps back: for measuring rates. */
  monotonic(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | null | undefined): void;
}

/**
 * The real clock. It reads the globals on each call rather than capturing them, so a test
 * that fakes Node's timers (vi.useFakeTimers) still controls code running on it.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => {
    if (handle) clearTimeout(handle as NodeJS.Timeout);
  },
};

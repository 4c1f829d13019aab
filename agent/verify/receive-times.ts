/**
 * The earliest and latest `timeReceivedUnixNano` of the records kept, as decimal strings
 * without leading zeros (a summary's first and last received). A time that is not a string
 * of digits is left out. Times are compared as numbers split at the nanoseconds, seconds and
 * nanoseconds each exact in a double, so a record costs two comparisons and no string; one
 * of more than 24 digits (past any clock) is compared as text.
 */
export class ReceiveTimes {
  private earliestSec = Number.POSITIVE_INFINITY;
  private earliestNanos = 0;
  private latestSec = Number.NEGATIVE_INFINITY;
  private latestNanos = 0;
  /** Times of more than 24 digits, compared as text: later than every numeric one. */
  private longEarliest: string | null = null;
  private longLatest: string | null = null;

  get earliest(): string | null {
    if (this.earliestSec !== Number.POSITIVE_INFINITY)
      return digits(this.earliestSec, this.earliestNanos);
    return this.longEarliest;
  }

  get latest(): string | null {
    if (this.longLatest !== null) return this.longLatest;
    return this.latestSec === Number.NEGATIVE_INFINITY
      ? null
      : digits(this.latestSec, this.latestNanos);
  }

  add(time: string): void {
    const split = splitTime(time);
    if (split === null) return;
    if (typeof split === "string") this.addLong(split);
    else this.addParts(split[0], split[1]);
  }

  /** A time given as whole seconds and nanoseconds (splitTime). */
  addParts(sec: number, nanos: number): void {
    if (sec < this.earliestSec || (sec === this.earliestSec && nanos < this.earliestNanos)) {
      this.earliestSec = sec;
      this.earliestNanos = nanos;
    }
    if (sec > this.latestSec || (sec === this.latestSec && nanos > this.latestNanos)) {
      this.latestSec = sec;
      this.latestNanos = nanos;
    }
  }

  private addLong(t: string): void {
    if (this.longEarliest === null || compareDigits(t, this.longEarliest) < 0)
      this.longEarliest = t;
    if (this.longLatest === null || compareDigits(t, this.longLatest) > 0) this.longLatest = t;
  }
}

/** Digits above this many are not exact as seconds in a double. */
const MAX_SPLIT_DIGITS = 24;

/**
 * A time as [whole seconds, nanoseconds]; a string of more than 24 digits as that string
 * without leading zeros; null when it is not a string of digits.
 */
export function splitTime(time: string): [number, number] | string | null {
  const parts = new Float64Array(2);
  const long = writeTime(time, parts, 0);
  if (long !== null) return long;
  return Number.isNaN(parts[0]) ? null : [parts[0] as number, parts[1] as number];
}

/**
 * Writes a time as whole seconds and nanoseconds at `into[at]`, `into[at + 1]`: NaN for one
 * that is not a string of digits, or of more than 24 (then returned without leading zeros,
 * to be compared as text). No string or array is made for a time of a real clock.
 */
export function writeTime(time: string, into: Float64Array, at: number): string | null {
  into[at] = Number.NaN;
  into[at + 1] = Number.NaN;
  const n = time.length;
  if (n === 0) return null;
  let start = -1;
  for (let i = 0; i < n; i++) {
    const c = time.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return null;
    if (start < 0 && c !== 0x30) start = i;
  }
  const len = start < 0 ? 0 : n - start;
  if (len > MAX_SPLIT_DIGITS) return time.slice(start);
  into[at] = len > 9 ? Number(time.slice(start, n - 9)) : 0;
  into[at + 1] = len === 0 ? 0 : Number(time.slice(Math.max(start, n - 9)));
  return null;
}

function digits(sec: number, nanos: number): string {
  return sec === 0 ? String(nanos) : `${sec}${String(nanos).padStart(9, "0")}`;
}

/** Compares decimal digit strings without leading zeros by value. */
function compareDigits(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

import { describe, expect, it } from "vitest";
import { TokenBucket } from "../../agent/receivers/otlp/security.js";
import { LogThrottle } from "../../agent/telemetry/log-throttle.js";
import { ManualClock } from "../helpers/clock.js";

/**
 * The receivers' rate limit (rate_limit.requests_per_second and burst) on a manual clock: a
 * burst is admitted at once, then requests are admitted at the configured rate, and idle
 * time never banks more than the burst.
 */

/** Requests admitted when one is attempted every `stepMs` for `forMs`. */
async function admittedOver(
  bucket: TokenBucket,
  clock: ManualClock,
  forMs: number,
  stepMs: number,
) {
  let admitted = 0;
  for (let t = 0; t < forMs; t += stepMs) {
    await clock.advance(stepMs);
    while (bucket.take()) admitted++;
  }
  return admitted;
}

describe("TokenBucket on a manual clock", () => {
  it("admits the burst at once, then one request per 1/rate seconds", async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(10, 5, clock);
    expect(Array.from({ length: 6 }, () => bucket.take())).toEqual([
      true,
      true,
      true,
      true,
      true,
      false,
    ]);
    await clock.advance(99);
    expect(bucket.take()).toBe(false); // 0.99 of a token
    await clock.advance(1);
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    await clock.advance(250);
    expect([bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, false]);
  });

  it("refills at the configured rate under sustained load, and banks no more than the burst", async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(50, 20, clock);
    let admitted = 0;
    while (bucket.take()) admitted++;
    expect(admitted).toBe(20);
    // 10 s of clients retrying every 7 ms: exactly 50 a second get through.
    expect(await admittedOver(bucket, clock, 10_003, 7)).toBe(500);
    await clock.advance(3_600_000); // an idle hour
    expect(await admittedOver(bucket, clock, 1, 1)).toBe(20);
  });

  it("defaults the burst to the rate rounded up, so a fractional rate still admits one", async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(0.5, undefined, clock);
    expect([bucket.take(), bucket.take()]).toEqual([true, false]);
    await clock.advance(1999);
    expect(bucket.take()).toBe(false);
    await clock.advance(1);
    expect([bucket.take(), bucket.take()]).toEqual([true, false]);
  });
});

describe("LogThrottle: how a retry loop logs a failure that repeats", () => {
  it("logs the first failure, then at most once per interval, and at once again after a success", () => {
    const t = new LogThrottle(30_000);
    expect(t.failed(0)).toBe(true);
    expect([1000, 5000, 29_999].map((now) => t.failed(now))).toEqual([false, false, false]);
    expect(t.failed(30_000)).toBe(true);
    expect(t.count).toBe(5);
    t.succeeded();
    expect(t.failed(30_001)).toBe(true);
    expect(t.count).toBe(1);
  });
});

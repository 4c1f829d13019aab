import { describe, expect, it } from "vitest";
import { systemClock } from "../../agent/common/clock.js";
import { ManualClock } from "../helpers/clock.js";

/**
 * The clocks behind every retry, timeout and rate limit: the system clock must behave as
 * Node's own timers do, and the manual clock the tests drive must fire exactly what falls
 * due, in order, at its due time.
 */

describe("systemClock", () => {
  it("reads the wall clock and runs real timers that can be cancelled", async () => {
    const before = Date.now();
    expect(systemClock.now()).toBeGreaterThanOrEqual(before);
    expect(systemClock.now()).toBeLessThan(before + 1000);
    const fired: string[] = [];
    const started = systemClock.monotonic();
    const cancelled = systemClock.setTimeout(() => fired.push("cancelled"), 1);
    systemClock.clearTimeout(cancelled);
    await new Promise<void>((resolve) =>
      systemClock.setTimeout(() => {
        fired.push("kept");
        resolve();
      }, 2),
    );
    expect(fired).toEqual(["kept"]);
    expect(systemClock.monotonic() - started).toBeGreaterThanOrEqual(1);
  });

  it("hands back a timer that can be unref'd so it does not hold the process open", () => {
    const timer = systemClock.setTimeout(() => undefined, 60_000);
    expect(timer.unref()).toBe(timer);
    expect((timer as NodeJS.Timeout).hasRef()).toBe(false);
    systemClock.clearTimeout(timer);
  });
});

describe("ManualClock", () => {
  it("stands still until advanced, then fires each timer at its due time, in order", async () => {
    const clock = new ManualClock(1_000_000);
    const fired: Array<[string, number]> = [];
    const at = (name: string) => () => fired.push([name, clock.now()]);
    clock.setTimeout(at("c"), 300);
    clock.setTimeout(at("a"), 100);
    clock.setTimeout(at("b"), 100); // same due time as "a": set later, fires later
    expect(clock.now()).toBe(1_000_000);
    expect(clock.pending).toEqual([100, 100, 300]);

    await clock.advance(99);
    expect(fired).toEqual([]);
    await clock.advance(1);
    expect(fired).toEqual([
      ["a", 1_000_100],
      ["b", 1_000_100],
    ]);
    await clock.advance(500);
    expect(fired.at(-1)).toEqual(["c", 1_000_300]);
    expect(clock.now()).toBe(1_000_600);
    expect(clock.monotonic()).toBe(600);
    expect(clock.pending).toEqual([]);
  });

  it("fires a timer set by a firing timer within the same advance when it falls due in it", async () => {
    const clock = new ManualClock();
    const start = clock.now();
    const times: number[] = [];
    // A retry loop: each wake-up, after an await, schedules the next sleep.
    void (async () => {
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve) => clock.setTimeout(resolve, 1000));
        times.push(clock.now() - start);
      }
    })();
    await clock.advance(2500);
    expect(times).toEqual([1000, 2000]);
    expect(clock.pending).toEqual([500]);
    await clock.advance(500);
    expect(times).toEqual([1000, 2000, 3000]);
  });

  it("never fires a cleared timer, and tells a test when code starts waiting", async () => {
    const clock = new ManualClock();
    let fired = false;
    const timer = clock.setTimeout(() => (fired = true), 10);
    clock.clearTimeout(timer);
    await clock.advance(1000);
    expect(fired).toBe(false);

    let waiting = false;
    const waited = clock.waitForTimers(2).then(() => (waiting = true));
    clock.setTimeout(() => undefined, 5);
    await Promise.resolve();
    expect(waiting).toBe(false);
    clock.setTimeout(() => undefined, 5);
    await waited;
    expect(clock.pending).toEqual([5, 5]);
  });
});

import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { retryOnFailureSchema } from "../../agent/common/config-schema.js";
import {
  PermanentExportError,
  type RecordSink,
  RetryableExportError,
  type SealedBatch,
} from "../../agent/exporters/api.js";
import { Backoff } from "../../agent/exporters/backoff.js";
import { DeliveryLoop } from "../../agent/exporters/delivery.js";
import { generateSigningKey } from "../../agent/integrity/signing.js";
import { Sealer } from "../../agent/sealing/sealer.js";
import { openWal, type Wal } from "../../agent/store/wal.js";
import { AgentCounters } from "../../agent/telemetry/counters.js";
import { makeTempDir } from "../helpers/agent.js";
import { ManualClock } from "../helpers/clock.js";

/**
 * Delivery retries on a manual clock: a failing sink is retried after exactly the backoff
 * retry_on_failure gives (growing, capped, jittered), in order, without ever skipping a
 * batch; a permanent failure or max_elapsed_time stops the exporter with its records left
 * in the WAL. No test here sleeps: the clock is advanced.
 */

const silent = pino({ level: "silent" });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * What follows a retry and touches the WAL (reading the next batch, persisting the cursor)
 * is LevelDB I/O, which the manual clock does not drive: it is awaited in short real polls.
 */
const io = { timeout: 5000, interval: 2 };

/** A sink that fails the attempts it is told to, and records every attempt's time. */
class FlakySink implements RecordSink {
  readonly attempts: Array<{ index: number; at: number }> = [];
  readonly delivered: number[] = [];
  readonly seqs: number[] = [];

  constructor(
    private readonly clock: ManualClock,
    /** Per batch index, the errors its next attempts throw, in order. */
    private readonly failures: Map<number, Error[]>,
  ) {}

  async open(): Promise<number | null> {
    return null;
  }

  async write(batch: SealedBatch): Promise<void> {
    this.attempts.push({ index: batch.index, at: this.clock.now() });
    const err = this.failures.get(batch.index)?.shift();
    if (err) throw err;
    this.delivered.push(batch.index);
    this.seqs.push(...batch.records.map((r) => r.seq));
  }

  async close(): Promise<void> {}

  /** Milliseconds between consecutive attempts on batch `index`. */
  gaps(index: number): number[] {
    const times = this.attempts.filter((a) => a.index === index).map((a) => a.at);
    return times.slice(1).map((t, i) => t - (times[i] as number));
  }
}

/** A WAL holding 30 records sealed into three batches of 10 (indexes 0, 1, 2). */
async function sealedWal(): Promise<Wal> {
  const tmp = makeTempDir("delivery-retry-");
  cleanups.push(() => tmp.cleanup());
  const wal = await openWal({ directory: join(tmp.path, "wal"), maxBytes: 64 << 20 });
  cleanups.push(() => wal.close());
  const sealer = await Sealer.open({
    log: wal.log,
    sealed: wal.sealed,
    key: generateSigningKey("test"),
    origin: `test/${wal.log.chainId}`,
    policy: { maxRecords: 10, maxBytes: 64 << 20, timeoutMs: 60_000 },
    logger: silent,
  });
  await wal.log.append(
    Array.from({ length: 30 }, (_, i) => `{"logRecord":{"body":{"stringValue":"record ${i}"}}}`),
    "1",
  );
  await sealer.sealAll();
  expect(wal.sealed.entryCount).toBe(3);
  return wal;
}

function startDelivery(
  wal: Wal,
  sink: RecordSink,
  clock: ManualClock,
  retry: Record<string, unknown>,
): DeliveryLoop {
  const delivery = new DeliveryLoop(
    "flaky",
    sink,
    wal.log,
    wal.sealed,
    wal.cursors,
    { retry: retryOnFailureSchema.parse(retry) },
    new AgentCounters(),
    silent,
    // 0.75 puts the jitter at +25% of the interval (randomization_factor 0.5): exact delays.
    { clock, random: () => 0.75 },
  );
  delivery.start();
  cleanups.push(() => delivery.stop());
  return delivery;
}

const retryable = () => new RetryableExportError("backend unavailable");

describe("Backoff", () => {
  const retry = retryOnFailureSchema.parse({ initial_interval: "2s", multiplier: 2 });

  it("draws its jitter from the injected random source, within ±randomization_factor", () => {
    expect(new Backoff(retry, { random: () => 0 }).next(new Error("x"))).toBe(1000);
    expect(new Backoff(retry, { random: () => 0.5 }).next(new Error("x"))).toBe(2000);
    expect(new Backoff(retry, { random: () => 0.999 }).next(new Error("x"))).toBeCloseTo(2998);
  });

  it("waits as long as the backend asks instead, and never retries a permanent error", () => {
    const backoff = new Backoff(retry, { random: () => 0.5 });
    expect(backoff.next(new RetryableExportError("slow down", 7000))).toBe(7000);
    expect(backoff.next(new Error("x"))).toBe(4000); // the interval still grew
    expect(backoff.next(new PermanentExportError("no"))).toBeNull();
  });
});

describe("delivery retries on a manual clock", () => {
  it("retries a failing batch after growing backoffs, then delivers every batch in order", async () => {
    const wal = await sealedWal();
    const clock = new ManualClock();
    const start = clock.now();
    const failures = new Map([[1, [retryable(), retryable(), retryable()]]]);
    const sink = new FlakySink(clock, failures);
    const delivery = startDelivery(wal, sink, clock, {
      initial_interval: "1s",
      multiplier: 2,
      randomization_factor: 0.5,
      max_interval: "30s",
    });

    await clock.waitForTimers();
    expect(sink.attempts).toEqual([
      { index: 0, at: start },
      { index: 1, at: start },
    ]);
    expect(delivery.state).toBe("retrying");
    expect(delivery.lastError).toBe("backend unavailable");
    expect(delivery.deliveredIndex).toBe(0);

    // 1s, 2s, 4s, each +25% jitter: no retry comes a millisecond early.
    for (const delay of [1250, 2500, 5000]) {
      const tried = sink.attempts.length;
      await clock.advance(delay - 1);
      expect(sink.attempts).toHaveLength(tried);
      await clock.advance(1);
      expect(sink.attempts[tried]).toEqual({ index: 1, at: clock.now() });
    }
    await vi.waitFor(() => expect(delivery.deliveredIndex).toBe(2), io);

    expect(sink.gaps(1)).toEqual([1250, 2500, 5000]);
    expect(sink.attempts.map((a) => a.index)).toEqual([0, 1, 1, 1, 1, 2]);
    expect(sink.delivered).toEqual([0, 1, 2]);
    expect(sink.seqs).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(delivery.state).toBe("running");
    expect(delivery.lastError).toBeNull();
    await vi.waitFor(async () => expect((await wal.cursors.load("flaky")).seq).toBe(29), io);
  });

  it("caps the backoff at max_interval", async () => {
    const wal = await sealedWal();
    const clock = new ManualClock();
    const sink = new FlakySink(clock, new Map([[0, Array.from({ length: 6 }, retryable)]]));
    startDelivery(wal, sink, clock, {
      initial_interval: "1s",
      multiplier: 3,
      randomization_factor: 0.5,
      max_interval: "5s",
    });
    await clock.waitForTimers();
    while (sink.attempts.length < 7) await clock.advance(clock.pending[0] as number);
    // 1.25s and 3.75s; then 3s × 1.25 and every later one hit the 5s cap.
    expect(sink.gaps(0)).toEqual([1250, 3750, 5000, 5000, 5000, 5000]);
    await vi.waitFor(() => expect(sink.delivered).toEqual([0, 1, 2]), io);
  });

  it("stops retrying at a PermanentExportError and leaves that batch and the rest in the WAL", async () => {
    const wal = await sealedWal();
    const clock = new ManualClock();
    const failures = new Map([[1, [retryable(), new PermanentExportError("bucket deleted")]]]);
    const sink = new FlakySink(clock, failures);
    const delivery = startDelivery(wal, sink, clock, { initial_interval: "1s" });

    await clock.waitForTimers();
    await clock.advance(1250);
    await vi.waitFor(() => expect(delivery.state).toBe("failed"), io);
    expect(delivery.lastError).toBe("bucket deleted");
    expect(clock.pending).toEqual([]); // no retry is scheduled
    await clock.advance(3_600_000);
    expect(sink.attempts.map((a) => a.index)).toEqual([0, 1, 1]);
    expect(sink.delivered).toEqual([0]);
    expect(delivery.deliveredIndex).toBe(0);
    await vi.waitFor(async () => expect((await wal.cursors.load("flaky")).seq).toBe(9), io);
    const held = await wal.log.read(9, 100, Number.POSITIVE_INFINITY);
    expect(held.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 10 + i));
  });

  it("gives up once max_elapsed_time has passed on its clock", async () => {
    const wal = await sealedWal();
    const clock = new ManualClock();
    const sink = new FlakySink(clock, new Map([[0, Array.from({ length: 100 }, retryable)]]));
    const delivery = startDelivery(wal, sink, clock, {
      initial_interval: "4s",
      multiplier: 1,
      randomization_factor: 0,
      max_elapsed_time: "10s",
    });
    await clock.waitForTimers();
    await clock.advance(60_000);
    // Attempts at 0, 4s, 8s and 12s: the failure at 12s is past 10s, so no fifth.
    expect(sink.gaps(0)).toEqual([4000, 4000, 4000]);
    expect(delivery.state).toBe("failed");
    expect(sink.delivered).toEqual([]);
  });

  it("gives up draining at the deadline while the sink keeps failing", async () => {
    const wal = await sealedWal();
    const clock = new ManualClock();
    const sink = new FlakySink(clock, new Map([[0, Array.from({ length: 100 }, retryable)]]));
    const delivery = startDelivery(wal, sink, clock, { initial_interval: "1s" });
    await clock.waitForTimers();
    let drained: boolean | undefined;
    const draining = delivery.drain(clock.now() + 5000).then((ok) => (drained = ok));
    await clock.advance(4999);
    expect(drained).toBeUndefined();
    await clock.advance(1);
    await draining;
    expect(drained).toBe(false);
    expect(sink.delivered).toEqual([]);
  });
});

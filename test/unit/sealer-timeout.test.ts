import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { generateSigningKey } from "../../agent/integrity/signing.js";
import { Sealer } from "../../agent/sealing/sealer.js";
import { openWal, type Wal } from "../../agent/store/wal.js";
import { makeTempDir } from "../helpers/agent.js";
import { ManualClock } from "../helpers/clock.js";

/**
 * When sealing cuts a batch, on a manual clock: a partial batch waits for its timeout from
 * the moment sealing sees its first record, and is sealed exactly then with everything that
 * arrived meanwhile; a full batch does not wait; a failed seal is retried a second later.
 */

const silent = pino({ level: "silent" });
const TIMEOUT_MS = 2000;
/** Sealing and the WAL do LevelDB I/O, which the manual clock does not drive. */
const io = { timeout: 5000, interval: 2 };
/** Long enough for I/O already under way to finish; the clock is what holds sealing back. */
const settle = () => new Promise((r) => setTimeout(r, 5));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  vi.restoreAllMocks();
});

async function startSealer(clock: ManualClock): Promise<Wal> {
  return (await startSealerWith(clock)).wal;
}

async function startSealerWith(clock: ManualClock): Promise<{ wal: Wal; sealer: Sealer }> {
  const tmp = makeTempDir("sealer-timeout-");
  cleanups.push(() => tmp.cleanup());
  const wal = await openWal({ directory: join(tmp.path, "wal"), maxBytes: 64 << 20 });
  cleanups.push(() => wal.close());
  const sealer = await Sealer.open({
    log: wal.log,
    sealed: wal.sealed,
    key: generateSigningKey("test"),
    origin: `test/${wal.log.chainId}`,
    policy: { maxRecords: 100, maxBytes: 64 << 20, timeoutMs: TIMEOUT_MS },
    logger: silent,
    clock,
  });
  sealer.start();
  cleanups.push(() => sealer.stop());
  return { wal, sealer };
}

const append = (wal: Wal, from: number, n: number) =>
  wal.log.append(
    Array.from({ length: n }, (_, i) => `{"logRecord":{"body":{"stringValue":"r${from + i}"}}}`),
    "1",
  );

describe("the sealer's batch timeout on a manual clock", () => {
  it("seals a partial batch exactly when its timeout passes, and not a millisecond before", async () => {
    const clock = new ManualClock();
    const wal = await startSealer(clock);
    const start = clock.now();
    await append(wal, 0, 3);
    await clock.waitForTimers(); // sealing has seen the records and is waiting
    await clock.advance(1000);
    await append(wal, 3, 2); // arrives mid-wait: joins the batch, does not restart the wait
    await clock.advance(TIMEOUT_MS - 1000 - 1);
    await settle();
    expect(wal.sealed.entryCount).toBe(0);

    await clock.advance(1);
    await vi.waitFor(() => expect(wal.sealed.entryCount).toBe(1), io);
    expect(clock.now() - start).toBe(TIMEOUT_MS);
    expect(await wal.sealed.readEntry(0)).toMatchObject({ firstSeq: 0, lastSeq: 4, count: 5 });

    // The next partial batch waits its own full timeout.
    const second = clock.now();
    await append(wal, 5, 1);
    await clock.waitForTimers();
    await clock.advance(TIMEOUT_MS - 1);
    await settle();
    expect(wal.sealed.entryCount).toBe(1);
    await clock.advance(1);
    await vi.waitFor(() => expect(wal.sealed.entryCount).toBe(2), io);
    expect(clock.now() - second).toBe(TIMEOUT_MS);
    expect(await wal.sealed.readEntry(1)).toMatchObject({ firstSeq: 5, lastSeq: 5, count: 1 });
  });

  it("seals a full batch at once, without waiting for the timeout", async () => {
    const clock = new ManualClock();
    const wal = await startSealer(clock);
    await append(wal, 0, 100);
    await vi.waitFor(() => expect(wal.sealed.entryCount).toBe(1), io);
    expect(clock.monotonic()).toBe(0);
    expect(await wal.sealed.readEntry(0)).toMatchObject({ firstSeq: 0, lastSeq: 99, count: 100 });
  });

  it("retries a batch whose sealing failed with backoff: 250 ms, then 500 ms", async () => {
    const clock = new ManualClock();
    const wal = await startSealer(clock);
    const read = vi
      .spyOn(wal.log, "read")
      .mockRejectedValueOnce(new Error("read failed"))
      .mockRejectedValueOnce(new Error("read failed again"));
    await append(wal, 0, 100);
    await clock.waitForTimers(); // the first retry delay
    expect(read).toHaveBeenCalledTimes(1);
    await clock.advance(249);
    await settle();
    expect(read).toHaveBeenCalledTimes(1);
    await clock.advance(1);
    await vi.waitFor(() => expect(read).toHaveBeenCalledTimes(2), io);
    await clock.waitForTimers(); // the second, twice as long
    await clock.advance(499);
    await settle();
    expect(wal.sealed.entryCount).toBe(0);
    await clock.advance(1);
    await vi.waitFor(() => expect(wal.sealed.entryCount).toBe(1), io);
    expect(clock.monotonic()).toBe(750);
    expect(await wal.sealed.readEntry(0)).toMatchObject({ firstSeq: 0, lastSeq: 99, count: 100 });
  });

  it("stops at once while it waits to retry a failed seal (SIGTERM must not hang)", async () => {
    const clock = new ManualClock();
    const { wal, sealer } = await startSealerWith(clock);
    vi.spyOn(wal.log, "read").mockRejectedValue(new Error("EIO: read failed"));
    await append(wal, 0, 100);
    await clock.waitForTimers(); // the retry delay: nothing will advance the clock now
    let stopped = false;
    const stopping = sealer.stop().then(() => (stopped = true));
    await vi.waitFor(() => expect(stopped).toBe(true), io);
    await stopping;
    expect(wal.sealed.entryCount).toBe(0);
  });
});

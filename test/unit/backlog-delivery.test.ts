import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { openWal } from "../../agent/store/wal.js";
import { Sealer } from "../../agent/sealing/sealer.js";
import { SealingGate } from "../../agent/sealing/sealing-gate.js";
import { generateSigningKey } from "../../agent/integrity/signing.js";
import { retryOnFailureSchema } from "../../agent/common/config-schema.js";
import { DeliveryLoop } from "../../agent/exporters/delivery.js";
import { fileExporterConfigSchema } from "../../agent/exporters/file/config.js";
import { FileSink } from "../../agent/exporters/file/file-sink.js";
import { fileSource } from "../../agent/exporters/file/reader.js";
import { AgentCounters } from "../../agent/telemetry/counters.js";
import { verifySource } from "../../agent/verify/verify.js";
import { makeTempDir } from "../helpers/agent.js";

/**
 * Catching up on a backlog: the batcher seals several full batches per synced write and the
 * file exporter writes several batches per fsync. The output must be exactly what sealing
 * and delivering one batch at a time would give: every batch cut at max_records, signed,
 * in order, each record once, and verifiable.
 */

const silent = pino({ level: "silent" });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  vi.restoreAllMocks();
});

const rec = (i: number) =>
  `{"logRecord":{"body":{"stringValue":"audit record ${i} ${"x".repeat(200)}"}}}`;

async function setUp(segmentMiB: number) {
  const tmp = makeTempDir("backlog-");
  cleanups.push(() => tmp.cleanup());
  const made: { gate?: SealingGate } = {};
  const wal = await openWal({
    admission: (sealed) => (made.gate = new SealingGate(sealed, 1000)),
    directory: join(tmp.path, "wal"),
    maxBytes: 256 << 20,
    cacheBytes: 64 << 10, // most reads go back to LevelDB, as when delivery is far behind
  });
  cleanups.push(() => wal.close());
  const key = generateSigningKey("test");
  const gate = made.gate as SealingGate;
  const batcher = await Sealer.open({
    log: wal.log,
    sealed: wal.sealed,
    gate,
    key,
    origin: `test/${wal.log.chainId}`,
    // A long timeout: only full batches may be sealed while the test looks.
    policy: { maxRecords: 1000, maxBytes: 64 << 20, timeoutMs: 60_000 },
    logger: silent,
  });
  const out = join(tmp.path, "out");
  const sink = new FileSink(
    fileExporterConfigSchema.parse({ directory: out, rotation: { max_megabytes: segmentMiB } }),
    silent,
  );
  const delivery = new DeliveryLoop(
    "file",
    sink,
    wal.log,
    wal.sealed,
    wal.cursors,
    { retry: retryOnFailureSchema.parse({}) },
    new AgentCounters(),
    silent,
  );
  return { wal, batcher, gate, delivery, sink, key, out };
}

describe("sealing and delivering a backlog", () => {
  it("seals the full batches of a backlog in one synced write and leaves the partial one", async () => {
    const { wal, batcher, key } = await setUp(64);
    for (let r = 0; r < 11; r++)
      await wal.log.append(
        Array.from({ length: 500 }, (_, i) => rec(r * 500 + i)),
        "1",
      );
    const writes = vi.spyOn(wal.sealed, "append");
    batcher.start();
    cleanups.push(() => batcher.stop());
    await vi.waitFor(() => expect(wal.sealed.entryCount).toBe(5), { timeout: 5000 });
    // Key announcement aside, the five batches share one write.
    expect(writes).toHaveBeenCalledTimes(1);
    expect(wal.sealed.sealedThrough).toBe(4999);
    for (let i = 0; i < 5; i++) {
      const entry = await wal.sealed.readEntry(i);
      expect(entry).toMatchObject({ firstSeq: i * 1000, lastSeq: i * 1000 + 999, count: 1000 });
      const manifest = JSON.parse(entry?.manifest ?? "{}") as { index: string; keyId: string };
      expect(manifest.index).toBe(String(i));
      expect(manifest.keyId).toBe(`test+${key.public.keyId}`);
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(wal.sealed.entryCount).toBe(5); // the 500 left wait for their timeout
  });

  it("holds the next group commit while sealing is far behind, and lets it through as sealing catches up", async () => {
    const { wal, batcher, gate } = await setUp(64);
    expect(gate.admit(wal.log)).toBeNull();
    for (let r = 0; r < 10; r++)
      await wal.log.append(
        Array.from({ length: 1000 }, (_, i) => rec(r * 1000 + i)),
        "1",
      );
    // 10,000 records unsealed: more than the gate lets through (8 batches, at least 8,192).
    let acked = false;
    const append = wal.log.append([rec(10_000)], "1").then(() => (acked = true));
    await new Promise((r) => setTimeout(r, 150));
    expect(acked).toBe(false);
    expect(wal.log.headSeq).toBe(9999);
    batcher.start();
    cleanups.push(() => batcher.stop());
    await append;
    expect(wal.sealed.sealedThrough).toBeGreaterThanOrEqual(9999 - 4096);
    expect(wal.log.headSeq).toBe(10_000);
  });

  it("delivers a backlog in groups across segment rotations, each record once, verifiably", async () => {
    const { wal, batcher, delivery, key, out } = await setUp(1);
    for (let r = 0; r < 24; r++)
      await wal.log.append(
        Array.from({ length: 500 }, (_, i) => rec(r * 500 + i)),
        "1",
      );
    const groups: number[] = [];
    const sink = (delivery as unknown as { sink: FileSink }).sink;
    const writeAll = sink.writeAll.bind(sink);
    vi.spyOn(sink, "writeAll").mockImplementation((batches) => {
      groups.push(batches.length);
      return writeAll(batches);
    });
    batcher.start();
    cleanups.push(() => batcher.stop());
    await vi.waitFor(() => expect(wal.sealed.entryCount).toBe(12), { timeout: 5000 });
    delivery.start();
    cleanups.push(() => delivery.stop());
    await vi.waitFor(() => expect(delivery.deliveredIndex).toBe(11), { timeout: 10_000 });
    expect(groups.some((n) => n > 1)).toBe(true);
    // The cursor is persisted behind delivery, without holding it up.
    await vi.waitFor(async () => expect((await wal.cursors.load("file")).seq).toBe(11_999));

    const dir = join(out, wal.log.chainId);
    const segments = readdirSync(dir).filter((f) => f.startsWith("records-"));
    expect(segments.length).toBeGreaterThan(2); // 1 MiB segments: the groups crossed rotations
    const seqs = segments
      .sort()
      .flatMap((f) => readFileSync(join(dir, f), "utf8").trim().split("\n"))
      .map((l) => Number((JSON.parse(l) as { seq: string }).seq));
    expect(seqs).toEqual(Array.from({ length: 12_000 }, (_, i) => i));

    const report = await verifySource(fileSource(out), [key.public]);
    expect(report.findings).toEqual([]);
    expect(report.chains[0]?.records).toBe(12_000);
  });
});

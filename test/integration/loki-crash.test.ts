import { execFile } from "node:child_process";
import { join } from "node:path";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchLogRecordProcessor,
  LoggerProvider,
  type LogRecordExporter,
  type ReadableLogRecord,
} from "@opentelemetry/sdk-logs";
import { describe, expect, it } from "vitest";
import { lokiSourceFromSpec } from "../../agent/exporters/loki/factory.js";
import {
  CLI,
  type ChildAgent,
  killAgent,
  makeTempDir,
  spawnAgent,
  waitFor,
} from "../helpers/agent.js";
import { startFakeLoki } from "../helpers/fake-loki.js";
import { lokiYaml, RECORDS, type RecordLine, verifyLoki } from "../helpers/loki.js";
import { testSeed } from "../helpers/prng.js";

/**
 * The Loki exporter under SIGKILL: the agent runs as a child process (the built CLI) and is
 * killed while it pushes to an in-test Loki, several times, then restarted on the same WAL.
 * Every acknowledged record must be in Loki exactly once, and verify (in-process and the
 * CLI) must pass.
 */

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? null) : 0;
      resolve({ code: typeof code === "number" ? code : null, stdout, stderr });
    });
  });
}

/** ExportResultCode.SUCCESS of @opentelemetry/core. */
const EXPORT_SUCCESS = 0;

/** Records each exported record's rec.id once the agent acknowledged its request. */
class TrackingExporter implements LogRecordExporter {
  constructor(
    private readonly inner: OTLPLogExporter,
    private readonly acked: Set<string>,
  ) {}
  export(logs: ReadableLogRecord[], done: (r: { code: number }) => void): void {
    this.inner.export(logs, (result) => {
      if (result.code === EXPORT_SUCCESS)
        for (const l of logs) this.acked.add(String(l.attributes["rec.id"]));
      done(result);
    });
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }
}

// Loki's delay and the load time per iteration are random: AUDIT_TEST_SEED replays them.
const SEED = testSeed("test/integration/loki-crash.test.ts");

describe("Loki exporter: crash during delivery", () => {
  it(`SIGKILLed while pushing, several times: every acknowledged record once, verify passes (seed ${SEED.hex})`, async () => {
    const rng = SEED.rng;
    const tmp = makeTempDir("audit-agent-loki-crash-");
    // Loki's out-of-order window shrunk to 1 s: a re-sent batch keeps its first stamps, so
    // it is never "too far behind" however long the agent was down. Streams are sharded as
    // Loki 3 does by default (a low desired rate, so nearly every push is): a batch re-sent
    // after a kill would land in other shards, where Loki's dedup does not see it.
    const loki = await startFakeLoki({
      outOfOrderWindowMs: 1000,
      shardStreams: { desiredRateBytes: 4096 },
    });
    const acked = new Set<string>();
    let child: ChildAgent | null = null;
    const yaml = lokiYaml({ dir: tmp.path, url: loki.url, maxRecords: 40 }).replace(
      "level: error",
      "level: info",
    );
    try {
      for (let iteration = 0; iteration < 4; iteration++) {
        loki.pushDelayMs = 5 + rng.int(25);
        child = await spawnAgent(yaml, tmp.path);
        const pushesBefore = loki.requests.length;
        const provider = new LoggerProvider({
          resource: resourceFromAttributes({ "service.name": `svc-${iteration % 2}` }),
          processors: [
            new BatchLogRecordProcessor({
              exporter: new TrackingExporter(
                new OTLPLogExporter({ url: child.httpUrl, timeoutMillis: 2000 }),
                acked,
              ),
              maxExportBatchSize: 30,
              scheduledDelayMillis: 5,
              exportTimeoutMillis: 3000,
            }),
          ],
        });
        const logger = provider.getLogger("crash");
        const until = Date.now() + 300 + rng.next() * 500;
        let n = 0;
        while (Date.now() < until) {
          for (let k = 0; k < 10; k++, n++)
            logger.emit({
              body: `crash ${iteration}/${n}`,
              attributes: { audit: true, "rec.id": `${iteration}-${n}` },
            });
          await new Promise((r) => setTimeout(r, 10));
        }
        // Kill while batches are in flight to Loki.
        await waitFor(() => loki.requests.length > pushesBefore, 5000, "a push").catch(
          () => undefined,
        );
        await killAgent(child, "SIGKILL");
        child = null;
        await provider.shutdown().catch(() => undefined);
      }
      loki.pushDelayMs = 0;
      child = await spawnAgent(yaml, tmp.path);
      const lines = () => loki.entries(RECORDS).map((e) => e.line);
      const ids = (ls: string[]) =>
        ls.map((l) => {
          const r = JSON.parse(l) as RecordLine;
          return String(
            r.record.logRecord.attributes?.find((a) => a.key === "rec.id")?.value.stringValue,
          );
        });
      await waitFor(
        () => {
          const have = new Set(ids(lines()));
          return [...acked].every((id) => have.has(id));
        },
        20_000,
        "every acknowledged record in Loki",
      );
      await killAgent(child, "SIGTERM");
      child = null;
      expect(acked.size).toBeGreaterThan(100);
      const stored = ids(lines());
      expect(new Set(stored).size).toBe(stored.length); // no record twice
      expect(loki.streams().some((st) => st.__stream_shard__ !== undefined)).toBe(true);
      for (const id of acked) expect(stored).toContain(id);
      const seqs = loki.entries(RECORDS).map((e) => Number((JSON.parse(e.line) as RecordLine).seq));
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i));
      const report = await verifyLoki(lokiSourceFromSpec(loki.url), tmp.path);
      expect(report.findings).toEqual([]);
      expect(report.ok).toBe(true);
      // The CLI, both ways: as the config writes it, and from a loki: source.
      const byConfig = await runCli([
        "verify",
        "--config",
        join(tmp.path, "agent.yaml"),
        "--exporter",
        "loki",
      ]);
      expect(byConfig.stdout).toMatch(/OK: no findings/);
      expect(byConfig.code).toBe(0);
      loki.modifyLine(RECORDS, loki.entries(RECORDS)[3]!.ts, "{}");
      const bySource = await runCli([
        "verify",
        "--source",
        `loki:${loki.url}`,
        "--trust",
        join(tmp.path, "keys", "signing.pub"),
      ]);
      expect(bySource.stdout).toMatch(/FAILED/);
      expect(bySource.code).toBe(1);
    } finally {
      if (child) await killAgent(child);
      await loki.stop();
      tmp.cleanup();
    }
  });
});

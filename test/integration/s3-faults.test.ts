import { join } from "node:path";
import { readChains } from "../../agent/exporters/source.js";
import type { S3Client } from "@aws-sdk/client-s3";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import { parseConfig } from "../../agent/config/load.js";
import { s3ExporterFactory } from "../../agent/exporters/s3/factory.js";
import type { S3ExporterConfig } from "../../agent/exporters/s3/config.js";
import { startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { verifySource } from "../../agent/verify/verify.js";
import { type ChildAgent, killAgent, makeTempDir, spawnAgent, waitFor } from "../helpers/agent.js";
import {
  createTestBucket,
  listVersions,
  S3_AVAILABLE,
  S3Proxy,
  s3AgentYaml,
  testS3Client,
  warnIfNoS3,
} from "../helpers/s3.js";
import { deriveSeed, prng, testSeed } from "../helpers/prng.js";

/**
 * The S3 exporter when things go wrong: the store unreachable for many retry intervals
 * while clients keep sending, and the agent SIGKILLed while it delivers (between a
 * batch's records object and its manifest, and at random instants). Afterwards the bucket
 * holds every acknowledged record exactly once, one version per object, and verifies.
 */

warnIfNoS3("test/integration/s3-faults.test.ts");

const PREFIX = "audit";
// Request sizes and the random kill instants: AUDIT_TEST_SEED replays them.
const SEED = testSeed("test/integration/s3-faults.test.ts");

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The `rec.id` attribute of every record the reader hands the verifier. */
async function storedIds(config: S3ExporterConfig): Promise<string[]> {
  const chains = await readChains(await s3ExporterFactory.reader!(config));
  return chains.flatMap((c) =>
    c.records.map((r) => {
      const rec = JSON.parse(r.text) as {
        record: { logRecord: { attributes: { key: string; value: { stringValue?: string } }[] } };
      };
      return rec.record.logRecord.attributes.find((a) => a.key === "rec.id")?.value
        .stringValue as string;
    }),
  );
}

function onePerKey(versions: { key: string; deleteMarker: boolean }[]): void {
  expect(versions.filter((v) => v.deleteMarker)).toEqual([]);
  const counts = new Map<string, number>();
  for (const v of versions) counts.set(v.key, (counts.get(v.key) ?? 0) + 1);
  expect([...counts].filter(([, n]) => n !== 1)).toEqual([]);
}

describe.skipIf(!S3_AVAILABLE)("s3 exporter: faults", () => {
  let client: S3Client;
  beforeAll(() => {
    client = testS3Client();
  });
  afterAll(() => client?.destroy());

  it("rides out an outage of many retry intervals under load, then delivers everything exactly once", async () => {
    const tmp = makeTempDir("audit-s3-outage-");
    const proxy = new S3Proxy();
    await proxy.start();
    const bucket = await createTestBucket(client, true);
    const config = parseConfig(
      s3AgentYaml({
        dir: tmp.path,
        bucket,
        endpoint: proxy.url,
        objectLock: { mode: "COMPLIANCE", retainDays: 1 },
        batchMaxRecords: 10,
        timeout: "2s",
      }),
      join(tmp.path, "agent.yaml"),
      {},
    );
    const agent = await startAgent(config, createLogger("silent"));
    const delivery = agent.deliveries[0]!;
    const provider = new LoggerProvider({
      processors: [
        new BatchLogRecordProcessor({
          exporter: new OTLPLogExporter({ url: `http://${agent.addresses().otlp?.http}/v1/logs` }),
          maxExportBatchSize: 25,
          scheduledDelayMillis: 10,
        }),
      ],
    });
    const logger = provider.getLogger("outage.audit");
    const ROUNDS = 80;
    const PER_ROUND = 8;
    let round = 0;
    const load = (async () => {
      for (; round < ROUNDS; round++) {
        for (let i = 0; i < PER_ROUND; i++)
          logger.emit({
            body: "outage test",
            attributes: { audit: true, "rec.id": `${round}/${i}` },
          });
        await sleep(25);
      }
      await provider.forceFlush();
    })();
    try {
      await waitFor(() => delivery.deliveredThrough >= 40, 15_000, "first deliveries");
      await proxy.down();
      const roundAtOutage = round;
      const stuckAt = delivery.deliveredThrough;
      await waitFor(() => delivery.state === "retrying", 5_000, "delivery to notice the outage");
      // Several retry intervals (50 ms, growing to 200 ms) while the clients keep sending.
      await sleep(2_000);
      expect(delivery.state).toBe("retrying");
      expect(delivery.lastError).toMatch(/reachable|ECONNREFUSED|socket/i);
      expect(delivery.deliveredThrough).toBeLessThanOrEqual(stuckAt + 10);
      expect(round).toBeGreaterThan(roundAtOutage + 20); // the load went on during the outage
      await proxy.up();
      await load;
      const total = ROUNDS * PER_ROUND;
      await waitFor(
        () => delivery.deliveredThrough === total - 1,
        20_000,
        "delivery after recovery",
      );
      expect(delivery.state).toBe("running");

      const ids = await storedIds(config.exporters[0]!.config as S3ExporterConfig);
      expect(ids).toHaveLength(total);
      expect(new Set(ids).size).toBe(total);
      onePerKey(await listVersions(client, bucket, `${PREFIX}/`));
      const report = await verifySource(
        s3ExporterFactory.reader!(config.exporters[0]!.config as S3ExporterConfig),
        readTrustedKeys([join(tmp.path, "keys", "signing.pub")]),
      );
      expect(report.findings).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.chains[0]?.records).toBe(total);
    } finally {
      await proxy.up().catch(() => undefined);
      await provider.shutdown().catch(() => undefined);
      await agent.shutdown(5000);
      await proxy.close();
      tmp.cleanup();
    }
  });

  it(`loses and duplicates nothing when the agent is SIGKILLed while it delivers (seed ${SEED.hex})`, async () => {
    const tmp = makeTempDir("audit-s3-crash-");
    const proxy = new S3Proxy();
    await proxy.start();
    const bucket = await createTestBucket(client, true);
    const yaml = s3AgentYaml({
      dir: tmp.path,
      bucket,
      endpoint: proxy.url,
      objectLock: { mode: "GOVERNANCE", retainDays: 1 },
      batchMaxRecords: 8,
      timeout: "2s",
    });
    const acked = new Set<string>();
    let sent = 0;
    let agent: ChildAgent | null = null;

    /**
     * Sends OTLP/JSON requests of 1–5 audit records until stopped; records which were
     * acknowledged. Each sender draws its sizes from its own stream (`keys`), so they do not
     * depend on how it interleaves with the others.
     */
    const sender = (url: string, stop: { now: boolean }, ...keys: number[]) =>
      (async () => {
        const rng = prng(deriveSeed(SEED.seed, ...keys));
        while (!stop.now) {
          const ids = Array.from({ length: 1 + rng.int(5) }, () => `r${sent++}`);
          const body = {
            resourceLogs: [
              {
                scopeLogs: [
                  {
                    logRecords: ids.map((id) => ({
                      body: { stringValue: "crash test" },
                      attributes: [
                        { key: "audit", value: { boolValue: true } },
                        { key: "rec.id", value: { stringValue: id } },
                      ],
                    })),
                  },
                ],
              },
            ],
          };
          try {
            const res = await fetch(url, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify(body),
            });
            await res.arrayBuffer();
            if (res.status === 200) for (const id of ids) acked.add(id);
          } catch {
            await sleep(5); // the agent is gone: the outcome of this request is unknown
          }
        }
      })();

    try {
      // Kills 1–2 happen while a manifest PUT is held (its records object is stored): the
      // held request then reaches S3 after the kill, or never. Kills 3–4 come at random.
      const plans: Array<"forward" | "drop" | "random"> = ["forward", "drop", "random", "random"];
      for (const [p, plan] of plans.entries()) {
        agent = await spawnAgent(yaml, tmp.path);
        const stop = { now: false };
        const senders = [sender(agent.httpUrl, stop, p, 0), sender(agent.httpUrl, stop, p, 1)];
        if (plan === "random") {
          await sleep(300 + SEED.rng.next() * 500);
        } else {
          await sleep(200);
          let release: (d: "forward" | "drop") => void = () => undefined;
          const held = new Promise<"forward" | "drop">((r) => (release = r));
          let caught = false;
          proxy.hold = (method, url) => {
            if (caught || method !== "PUT" || !url.includes("/manifests/")) return null;
            caught = true;
            return held;
          };
          await waitFor(() => caught, 10_000, "a manifest PUT to hold");
          await killAgent(agent);
          proxy.hold = null;
          release(plan);
        }
        await killAgent(agent);
        stop.now = true;
        await Promise.all(senders);
        agent = null;
      }
      // Last start: no crash. Deliver what is left, then stop cleanly (SIGTERM drains).
      const seen = proxy.requests.length;
      agent = await spawnAgent(yaml, tmp.path);
      await waitFor(
        () => proxy.requests.slice(seen).some((r) => r.method === "PUT" && r.status === 200),
        15_000,
        "delivery after the last restart",
      );
      const stop = { now: false };
      const last = sender(agent.httpUrl, stop, plans.length, 0);
      await sleep(300);
      stop.now = true;
      await last;
      await killAgent(agent, "SIGTERM");
      agent = null;

      expect(acked.size).toBeGreaterThan(50);
      // Restarted agents found the batches that were in flight at a kill already stored
      // (a HEAD answered 200: on a fresh key it is 404), and did not write them again.
      expect(proxy.requests.some((r) => r.method === "HEAD" && r.status === 200)).toBe(true);
      const config = parseConfig(yaml, join(tmp.path, "agent.yaml"), {}).exporters[0]!
        .config as S3ExporterConfig;
      const ids = await storedIds(config);
      expect(new Set(ids).size).toBe(ids.length);
      const stored = new Set(ids);
      expect([...acked].filter((id) => !stored.has(id))).toEqual([]);
      onePerKey(await listVersions(client, bucket, `${PREFIX}/`));
      const report = await verifySource(
        s3ExporterFactory.reader!(config),
        readTrustedKeys([join(tmp.path, "keys", "signing.pub")]),
      );
      expect(report.findings).toEqual([]);
      expect(report.ok).toBe(true);
    } finally {
      if (agent) await killAgent(agent);
      proxy.hold = null;
      await proxy.close();
      tmp.cleanup();
    }
  });
});

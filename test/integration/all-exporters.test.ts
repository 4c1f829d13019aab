import { join } from "node:path";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import { parseConfig } from "../../agent/config/load.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { crossCheck } from "../../agent/verify/cross-check.js";
import { verifySource } from "../../agent/verify/verify.js";
import { makeTempDir, testConfigYaml, waitFor } from "../helpers/agent.js";
import { FakeElasticsearch } from "../helpers/fake-elasticsearch.js";
import { startFakeLoki } from "../helpers/fake-loki.js";
import {
  createTestBucket,
  S3_ACCESS_KEY,
  S3_AVAILABLE,
  S3_ENDPOINT,
  S3_REGION,
  S3_SECRET_KEY,
  testS3Client,
  warnIfNoS3,
} from "../helpers/s3.js";

/**
 * One agent with every durable exporter at once (file, Loki, Elasticsearch and, where a
 * real S3 server runs, S3): each backend ends up with every audit record, sealed and
 * signed, verify passes against each, and any two cross-check record by record.
 */
warnIfNoS3("all-exporters.test.ts");

describe("a config with all the exporters", () => {
  const tmp = makeTempDir();
  let agent: RunningAgent;
  let loki: Awaited<ReturnType<typeof startFakeLoki>>;
  const es = new FakeElasticsearch();
  let bucket = "";
  let config: ReturnType<typeof parseConfig>;

  beforeAll(async () => {
    loki = await startFakeLoki();
    await es.start();
    if (S3_AVAILABLE) bucket = await createTestBucket(testS3Client(), true);
    const retry =
      "    retry_on_failure:\n      initial_interval: 50ms\n      max_interval: 200ms\n";
    const s3 = S3_AVAILABLE
      ? `  s3:\n    bucket: ${bucket}\n    prefix: all\n    endpoint: ${S3_ENDPOINT}\n    region: ${S3_REGION}\n    access_key_id: ${S3_ACCESS_KEY}\n    secret_access_key: ${S3_SECRET_KEY}\n    object_lock:\n      mode: GOVERNANCE\n      retain_days: 1\n${retry}`
      : "";
    const extra = `  loki:\n    endpoint: ${loki.url}\n${retry}  elasticsearch:\n    endpoint: ${es.url}\n    index: audit-all\n${retry}${s3}`;
    const ids = ["file", "loki", "elasticsearch", ...(S3_AVAILABLE ? ["s3"] : [])];
    const yaml = testConfigYaml({ dir: tmp.path })
      .replace("exporters:\n  file:\n", `exporters:\n${extra}  file:\n`)
      .replace("exporters: [file]", `exporters: [${ids.join(", ")}]`);
    config = parseConfig(yaml, "all.yaml", {});
    agent = await startAgent(config, createLogger("error"));
    const exporter = new OTLPLogExporter({ url: `http://${agent.addresses().otlp?.http}/v1/logs` });
    const provider = new LoggerProvider({
      processors: [
        new BatchLogRecordProcessor({ exporter, maxExportBatchSize: 50, scheduledDelayMillis: 10 }),
      ],
    });
    const logger = provider.getLogger("all");
    for (let i = 0; i < 240; i++)
      logger.emit({ body: `event ${i}`, attributes: { audit: i % 4 !== 3, i } });
    await provider.forceFlush();
    await provider.shutdown();
    await waitFor(
      () =>
        agent.deliveries.length === ids.length &&
        agent.deliveries.every((d) => d.deliveredThrough === 179),
      20_000,
      "every exporter",
    );
  }, 60_000);

  afterAll(async () => {
    await agent?.shutdown(5000);
    await loki?.stop();
    await es.close();
    tmp.cleanup();
  });

  it("every backend holds every audit record, and verifies with the agent's key", async () => {
    const trusted = readTrustedKeys([join(tmp.path, "keys", "signing.pub")]);
    const readers = [];
    for (const e of config.exporters)
      if (e.factory.reader) readers.push([e.id, await e.factory.reader(e.config)] as const);
    expect(readers.map(([id]) => id).sort()).toEqual(
      ["elasticsearch", "file", "loki", ...(S3_AVAILABLE ? ["s3"] : [])].sort(),
    );
    for (const [id, source] of readers) {
      const report = await verifySource(source, trusted);
      expect(report.findings, `${id}: ${JSON.stringify(report.findings.slice(0, 3))}`).toEqual([]);
      expect(report.chains).toHaveLength(1);
      expect(report.chains[0]?.records, id).toBe(180);
      expect(report.chains[0]?.sealedThrough, id).toBe(179);
    }
    const [first, ...rest] = readers.map(([, source]) => source);
    for (const other of rest)
      expect(await crossCheck(first as (typeof rest)[number], other)).toEqual([]);
  });
});

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import {
  DeleteObjectCommand,
  GetObjectRetentionCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import { parseConfig } from "../../agent/config/load.js";
import { s3ExporterFactory } from "../../agent/exporters/s3/factory.js";
import type { S3ExporterConfig } from "../../agent/exporters/s3/config.js";
import {
  PermanentExportError,
  type RecordSink,
  RetryableExportError,
  type SealedBatch,
} from "../../agent/exporters/api.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { AgentCounters } from "../../agent/telemetry/counters.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { verifySource } from "../../agent/verify/verify.js";
import { CLI, makeTempDir, waitFor } from "../helpers/agent.js";
import {
  batchesInBucket,
  createTestBucket,
  getObject,
  listKeys,
  listVersions,
  S3_ACCESS_KEY,
  S3_AVAILABLE,
  S3_ENDPOINT,
  S3_REGION,
  S3_SECRET_KEY,
  S3Proxy,
  s3AgentYaml,
  type S3YamlOptions,
  testS3Client,
  warnIfNoS3,
} from "../helpers/s3.js";

/**
 * The S3 exporter against a real S3 server (Ceph RGW): records sent by the OTel SDK through
 * the agent land as write-once batch and manifest objects, under Object Lock or with
 * If-None-Match on a plain bucket; re-sends change nothing; the reader and verifier see
 * every object version, so an overwrite or a delete behind the agent's back is reported.
 */

warnIfNoS3("test/integration/s3.test.ts");

const PREFIX = "audit";
const DAY_MS = 86_400_000;

interface Started {
  agent: RunningAgent;
  config: S3ExporterConfig;
  httpUrl: string;
  trustFile: string;
}

async function startS3Agent(o: S3YamlOptions): Promise<Started> {
  const file = join(o.dir, "agent.yaml");
  writeFileSync(file, s3AgentYaml(o));
  const config = parseConfig(s3AgentYaml(o), file, {});
  const agent = await startAgent(config, createLogger("error"));
  return {
    agent,
    config: config.exporters[0]?.config as S3ExporterConfig,
    httpUrl: `http://${agent.addresses().otlp?.http}/v1/logs`,
    trustFile: join(o.dir, "keys", "signing.pub"),
  };
}

/** Emits `count` audit records with the real OTel SDK over OTLP/HTTP and flushes them. */
async function sendWithSdk(url: string, count: number, tag: string): Promise<void> {
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": "s3-test" }),
    processors: [
      new BatchLogRecordProcessor({
        exporter: new OTLPLogExporter({ url }),
        maxExportBatchSize: 9,
        scheduledDelayMillis: 5,
      }),
    ],
  });
  const logger = provider.getLogger("s3.audit", "1.0.0");
  for (let i = 0; i < count; i++) {
    logger.emit({
      body: `${tag} #${i}: user u-${i} changed a setting`,
      attributes: { audit: true, "rec.tag": tag, "rec.idx": i, "user.name": "é😀" },
    });
  }
  await provider.forceFlush();
  await provider.shutdown();
}

/** A sink made by the exporter's own factory, as the agent makes it. */
function makeSink(config: S3ExporterConfig, counters = new AgentCounters()): RecordSink {
  const component = s3ExporterFactory.create(
    {
      id: "s3",
      logger: createLogger("silent"),
      counters,
      state: {
        get: async () => undefined,
        put: async () => undefined,
        delete: async () => undefined,
      },
    },
    config,
  );
  return component.sink as RecordSink;
}

/** The config with some settings changed, given in their YAML form. */
function withConfig(config: S3ExporterConfig, patch: Record<string, unknown>): S3ExporterConfig {
  return s3ExporterFactory.configSchema.parse({ ...rawOf(config), ...patch });
}

/** The config back in its YAML shape (durations as text), for re-parsing with changes. */
function rawOf(config: S3ExporterConfig): Record<string, unknown> {
  return {
    ...config,
    timeout: `${config.timeout}ms`,
    retry_on_failure: {
      ...config.retry_on_failure,
      initial_interval: `${config.retry_on_failure.initial_interval}ms`,
      max_interval: `${config.retry_on_failure.max_interval}ms`,
      max_elapsed_time: `${config.retry_on_failure.max_elapsed_time}ms`,
    },
  };
}

async function writeAll(sink: RecordSink, chainId: string, batches: SealedBatch[]): Promise<void> {
  await sink.open(chainId);
  try {
    for (const b of batches) await sink.write(b);
  } finally {
    await sink.close();
  }
}

function onePerKey(versions: { key: string }[]): void {
  const counts = new Map<string, number>();
  for (const v of versions) counts.set(v.key, (counts.get(v.key) ?? 0) + 1);
  expect([...counts].filter(([, n]) => n !== 1)).toEqual([]);
}

/** Runs the CLI without blocking this process (whose S3 proxy must keep serving). */
function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ stdout: string; stderr: string; status: number }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { encoding: "utf8", env: { ...process.env, ...env } },
      (err, stdout, stderr) => resolve({ stdout, stderr, status: err ? Number(err.code ?? 1) : 0 }),
    );
  });
}

const b64 = (alg: string, body: Buffer) => createHash(alg).update(body).digest("base64");

describe.skipIf(!S3_AVAILABLE)("s3 exporter: Object Lock bucket (versioned)", () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let proxy: S3Proxy;
  let client: S3Client;
  let bucket: string;
  let started: Started;
  const COUNT = 40;

  beforeAll(async () => {
    tmp = makeTempDir("audit-s3-lock-");
    proxy = new S3Proxy();
    client = testS3Client();
    bucket = await createTestBucket(client, true);
    await proxy.start();
    started = await startS3Agent({
      dir: tmp.path,
      bucket,
      endpoint: proxy.url,
      objectLock: { mode: "GOVERNANCE", retainDays: 1 },
      batchMaxRecords: 7,
    });
    await sendWithSdk(started.httpUrl, COUNT, "lock");
    await waitFor(
      () => started.agent.deliveries[0]?.deliveredThrough === COUNT - 1,
      20_000,
      "delivery to S3",
    );
  });

  afterAll(async () => {
    await started?.agent.shutdown(5000);
    await proxy?.close();
    client?.destroy();
    tmp?.cleanup();
  });

  it("stores each batch as one NDJSON object, then its signed manifest as another, in key order", async () => {
    const chain = started.agent.chainId;
    const keys = await listKeys(client, bucket, `${PREFIX}/`);
    const recordKeys = keys.filter((k) => k.includes("/records/"));
    const manifestKeys = keys.filter((k) => k.includes("/manifests/"));
    const entries = started.agent.sealed.entryCount;
    expect(manifestKeys).toEqual(
      Array.from(
        { length: entries },
        (_, i) => `${PREFIX}/${chain}/manifests/${String(i).padStart(20, "0")}.json`,
      ),
    );
    // Contiguous seq ranges covering every record, in listing order.
    let next = 0;
    const lines: string[] = [];
    for (const key of recordKeys) {
      const m = /\/records\/(\d{20})-(\d{20})\.ndjson$/.exec(key);
      expect(m, key).not.toBeNull();
      expect(Number(m![1])).toBe(next);
      next = Number(m![2]) + 1;
      const body = (await getObject(client, bucket, key)).toString("utf8");
      expect(body.endsWith("\n")).toBe(true);
      const objLines = body.split("\n").slice(0, -1);
      expect(objLines).toHaveLength(Number(m![2]) - Number(m![1]) + 1);
      lines.push(...objLines);
    }
    expect(next).toBe(COUNT);
    const seqs = lines.map((l) => (JSON.parse(l) as { seq: string }).seq);
    expect(seqs).toEqual(Array.from({ length: COUNT }, (_, i) => String(i)));
    // A manifest object holds the checkpoint note and the signed manifest, as the file exporter's lines do.
    const stored = JSON.parse(
      (await getObject(client, bucket, manifestKeys[0] as string)).toString("utf8"),
    ) as { checkpoint: string; manifest: { type: string; firstSeq: string; signature: string } };
    expect(stored.manifest).toMatchObject({ type: "batch", firstSeq: "0" });
    expect(stored.checkpoint).toContain(`otel-audit-agent/${chain}\n`);
    // Each batch's records object went out (and succeeded) before its manifest.
    const puts = proxy.requests.filter((r) => r.method === "PUT" && r.status === 200);
    const at = (key: string) => puts.findIndex((r) => r.url.split("?")[0] === `/${bucket}/${key}`);
    for (const key of recordKeys) {
      const first = Number(/\/records\/(\d{20})/.exec(key)![1]);
      const batch = await started.agent.sealed.firstEntryAfterSeq(first - 1);
      const mKey = `${PREFIX}/${chain}/manifests/${String(batch).padStart(20, "0")}.json`;
      expect(at(key)).toBeGreaterThanOrEqual(0);
      expect(at(key)).toBeLessThan(at(mKey));
    }
  });

  it("sends If-None-Match, Content-MD5, a SHA-256 checksum and the lock headers with every object", async () => {
    const puts = proxy.requests.filter((r) => r.method === "PUT");
    expect(puts.length).toBeGreaterThan(0);
    const now = Date.now();
    for (const put of puts) {
      const key = decodeURIComponent(put.url.split("?")[0]!.slice(bucket.length + 2));
      const body = await getObject(client, bucket, key);
      expect(put.headers["if-none-match"]).toBe("*");
      expect(put.headers["content-md5"]).toBe(b64("md5", body));
      expect(put.headers["x-amz-checksum-sha256"]).toBe(b64("sha256", body));
      expect(put.headers["x-amz-object-lock-mode"]).toBe("GOVERNANCE");
      const until = Date.parse(put.headers["x-amz-object-lock-retain-until-date"] as string);
      expect(until).toBeGreaterThan(now + DAY_MS - 10 * 60_000);
      expect(until).toBeLessThanOrEqual(now + DAY_MS);
    }
    // What the store holds: the lock, and an ETag that is the MD5 the agent sent.
    const key = (await listKeys(client, bucket, `${PREFIX}/`))[0] as string;
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(head.ObjectLockMode).toBe("GOVERNANCE");
    expect(head.ETag).toBe(
      `"${createHash("md5")
        .update(await getObject(client, bucket, key))
        .digest("hex")}"`,
    );
    const retention = await client.send(
      new GetObjectRetentionCommand({ Bucket: bucket, Key: key }),
    );
    expect(retention.Retention?.Mode).toBe("GOVERNANCE");
    expect(retention.Retention?.RetainUntilDate?.getTime()).toBeGreaterThan(
      now + DAY_MS - 10 * 60_000,
    );
  });

  it("cannot have a locked batch object deleted", async () => {
    const [version] = (await listVersions(client, bucket, `${PREFIX}/`)).filter((v) =>
      v.key.includes("/records/"),
    );
    await expect(
      client.send(
        new DeleteObjectCommand({
          Bucket: bucket,
          Key: version!.key,
          VersionId: version!.versionId,
        }),
      ),
    ).rejects.toMatchObject({ name: "AccessDenied", $metadata: { httpStatusCode: 403 } });
    expect(await getObject(client, bucket, version!.key)).not.toHaveLength(0);
  });

  it("re-sending every batch changes nothing: one version per key, no PUT at all", async () => {
    const { chainId, batches } = await batchesInBucket(client, bucket, PREFIX);
    expect(chainId).toBe(started.agent.chainId);
    expect(batches).toHaveLength(started.agent.sealed.entryCount);
    const before = await listVersions(client, bucket, `${PREFIX}/`);
    const seen = proxy.requests.length;
    await writeAll(makeSink(started.config), chainId, batches);
    // With the other compression setting, the existing uncompressed objects are recognised too.
    await writeAll(makeSink(withConfig(started.config, { compression: "gzip" })), chainId, batches);
    const after = await listVersions(client, bucket, `${PREFIX}/`);
    expect(after).toEqual(before);
    onePerKey(after);
    const resent = proxy.requests.slice(seen);
    expect(resent.filter((r) => r.method === "PUT")).toEqual([]);
    expect(resent.filter((r) => r.method === "HEAD").length).toBeGreaterThan(0);
  });

  it("writes beside a key someone else took first, keeps their object, and verify names it", async () => {
    const { chainId, batches } = await batchesInBucket(client, bucket, PREFIX);
    const batch = batches.find((b) => b.records.length > 0 && b.index > 0)!;
    const pad = (n: number) => String(n).padStart(20, "0");
    const recordsAt = `planted/${chainId}/records/${pad(batch.firstSeq)}-${pad(batch.lastSeq)}.ndjson`;
    const manifestAt = `planted/${chainId}/manifests/${pad(batch.index)}.json`;
    // Keys are predictable: whoever may PutObject on the prefix can take them first.
    for (const Key of [recordsAt, manifestAt])
      await client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: "not the agent's\n" }));
    const counters = new AgentCounters();
    const config = withConfig(started.config, { prefix: "planted" });
    await writeAll(makeSink(config, counters), chainId, batches);
    expect(counters.squattedKeys.get("s3")).toBe(2);
    const versions = await listVersions(client, bucket, "planted/");
    onePerKey(versions); // nothing overwritten
    expect(await getObject(client, bucket, recordsAt)).toEqual(Buffer.from("not the agent's\n"));
    const beside = versions.map((v) => v.key).filter((k) => k.includes("~"));
    expect(beside).toHaveLength(2);
    expect(beside.every((k) => /~[0-9a-f]{16}\.(ndjson|json)$/.test(k))).toBe(true);
    // A re-send finds its objects beside the taken keys: nothing new, no second version.
    const counted = counters.squattedKeys.get("s3");
    await writeAll(makeSink(config, counters), chainId, batches);
    expect(await listVersions(client, bucket, "planted/")).toEqual(versions);
    expect(counters.squattedKeys.get("s3")).toBe(counted);
    // The chain verifies but for the two foreign objects, each reported where it is.
    const trusted = readTrustedKeys([started.trustFile]);
    const report = await verifySource(s3ExporterFactory.reader!(config), trusted);
    expect(report.chains[0]).toMatchObject({ records: COUNT, lastSeq: COUNT - 1 });
    const where = report.findings.map((f) => `${f.category} ${f.location}`).sort();
    expect(where).toHaveLength(2);
    expect(where[0]).toContain(`malformed s3://${bucket}/${manifestAt}`);
    expect(where[1]).toContain(`malformed s3://${bucket}/${recordsAt}`);
  });

  it("verifies clean with the S3 reader, in-process and from the CLI", async () => {
    const trusted = readTrustedKeys([started.trustFile]);
    const report = await verifySource(s3ExporterFactory.reader!(started.config), trusted);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.chains).toHaveLength(1);
    expect(report.chains[0]).toMatchObject({ records: COUNT, firstSeq: 0, lastSeq: COUNT - 1 });
    const cli = await runCli(
      ["verify", "--source", `s3://${bucket}/${PREFIX}`, "--trust", started.trustFile],
      {
        AWS_ENDPOINT_URL_S3: S3_ENDPOINT,
        AWS_REGION: S3_REGION,
        AWS_ACCESS_KEY_ID: S3_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY,
      },
    );
    expect(cli.stdout).toContain("OK: no findings");
    expect(cli.stdout).toContain(`chain ${started.agent.chainId}: ${COUNT} records`);
    expect(cli.status).toBe(0);
    // As the agent's config writes it: same bucket, endpoint and credentials, the config's key.
    const byConfig = await runCli([
      "verify",
      "--config",
      join(tmp.path, "agent.yaml"),
      "--exporter",
      "s3",
    ]);
    expect(byConfig.stdout).toContain(`chain ${started.agent.chainId}: ${COUNT} records`);
    expect(byConfig.stdout).toContain("OK: no findings");
    expect(byConfig.status).toBe(0);
  });

  it("reports a version written behind the agent's back, and a delete marker", async () => {
    const chain = started.agent.chainId;
    const keys = await listKeys(client, bucket, `${PREFIX}/${chain}/`);
    const recordKey = keys.find((k) => k.includes("/records/"))!;
    const manifestKey = keys.filter((k) => k.includes("/manifests/"))[1]!;
    const original = (await getObject(client, bucket, recordKey)).toString("utf8");
    const forged = original.replace("changed a setting", "changed nothing");
    expect(forged).not.toBe(original);
    // Object Lock protects versions, not keys: a PUT adds a newer version, a DELETE a marker.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: recordKey, Body: forged }));
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: manifestKey }));

    const trusted = readTrustedKeys([started.trustFile]);
    const report = await verifySource(s3ExporterFactory.reader!(started.config), trusted);
    expect(report.ok).toBe(false);
    const modified = report.findings.filter((f) => f.category === "modified");
    expect(modified).toHaveLength(1);
    expect(modified[0]!.location).toContain(`s3://${bucket}/${recordKey}?versionId=`);
    expect(modified[0]!.detail).toContain("overwritten behind the agent's back");
    const missing = report.findings.filter((f) => f.category === "missing");
    expect(missing).toHaveLength(1);
    expect(missing[0]!.location).toBe(`s3://${bucket}/${manifestKey}`);
    expect(missing[0]!.detail).toContain("delete marker");
    expect(report.findings).toHaveLength(2);
  });
});

describe.skipIf(!S3_AVAILABLE)("s3 exporter: plain bucket (no versioning)", () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let proxy: S3Proxy;
  let client: S3Client;
  let bucket: string;
  let started: Started;
  const COUNT = 25;

  beforeAll(async () => {
    tmp = makeTempDir("audit-s3-plain-");
    proxy = new S3Proxy();
    client = testS3Client();
    bucket = await createTestBucket(client, false);
    await proxy.start();
    started = await startS3Agent({
      dir: tmp.path,
      bucket,
      endpoint: proxy.url,
      compression: "gzip",
      batchMaxRecords: 6,
    });
    await sendWithSdk(started.httpUrl, COUNT, "plain");
    await waitFor(
      () => started.agent.deliveries[0]?.deliveredThrough === COUNT - 1,
      20_000,
      "delivery to S3",
    );
  });

  afterAll(async () => {
    await started?.agent.shutdown(5000);
    await proxy?.close();
    client?.destroy();
    tmp?.cleanup();
  });

  it("writes gzip batch objects with one conditional PUT each, no HEAD first", async () => {
    const keys = await listKeys(client, bucket, `${PREFIX}/`);
    const recordKeys = keys.filter((k) => k.includes("/records/"));
    expect(recordKeys.length).toBeGreaterThan(1);
    for (const k of recordKeys) expect(k).toMatch(/\.ndjson\.gz$/);
    const text = gunzipSync(await getObject(client, bucket, recordKeys[0]!)).toString("utf8");
    expect(JSON.parse(text.split("\n")[0]!)).toMatchObject({ seq: "0" });
    const puts = proxy.requests.filter((r) => r.method === "PUT");
    expect(puts).toHaveLength(keys.length);
    for (const p of puts) {
      expect(p.headers["if-none-match"]).toBe("*");
      expect(p.headers["x-amz-object-lock-mode"]).toBeUndefined();
    }
    // The only HEAD: after opening, whether the first batch was stored uncompressed before.
    const heads = proxy.requests.filter((r) => r.method === "HEAD");
    expect(heads.map((h) => h.url.split("?")[0])).toEqual([
      `/${bucket}/${recordKeys[0]!.replace(/\.gz$/, "")}`,
    ]);
  });

  it("treats 412 Precondition Failed on a re-send as already written, and adds no version", async () => {
    const { chainId, batches } = await batchesInBucket(client, bucket, PREFIX);
    const before = await listVersions(client, bucket, `${PREFIX}/`);
    expect(before.every((v) => v.versionId === "null")).toBe(true);
    const seen = proxy.requests.length;
    await writeAll(makeSink(started.config), chainId, batches);
    const resent = proxy.requests.slice(seen).filter((r) => r.method === "PUT");
    expect(resent.length).toBe(before.length);
    expect(resent.every((r) => r.status === 412)).toBe(true);
    const after = await listVersions(client, bucket, `${PREFIX}/`);
    expect(after).toEqual(before);
  });

  it("writes beside a different object at a batch's key (412, then compared); stops when the keys beside are taken too", async () => {
    const { chainId, batches } = await batchesInBucket(client, bucket, PREFIX);
    const batch = batches.find((b) => b.records.length > 0)!;
    const name = `${String(batch.firstSeq).padStart(20, "0")}-${String(batch.lastSeq).padStart(20, "0")}`;
    const key = `planted/${chainId}/records/${name}.ndjson.gz`;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "something else" }));
    const config = withConfig(started.config, { prefix: "planted" });
    const sink = makeSink(config);
    await sink.open(chainId);
    await sink.write(batch);
    await sink.close();
    expect(await getObject(client, bucket, key)).toEqual(Buffer.from("something else"));
    const keys = (await listVersions(client, bucket, `planted/${chainId}/records/`)).map(
      (v) => v.key,
    );
    const beside = keys.find((k) => k.includes("~")) as string;
    expect(beside).toMatch(new RegExp(`/${name}~[0-9a-f]{16}\\.ndjson\\.gz$`));
    // Someone takes every key beside the next batch's too: the exporter stops, naming it.
    const next = batches.find((b) => b.records.length > 0 && b.firstSeq > batch.lastSeq)!;
    const nextName = `${String(next.firstSeq).padStart(20, "0")}-${String(next.lastSeq).padStart(20, "0")}`;
    const raw = Buffer.from(next.records.map((r) => `${r.canonicalText()}\n`).join(""));
    const hash = createHash("sha256").update(raw).digest("hex").slice(0, 16);
    const taken = [
      `${nextName}.ndjson.gz`,
      ...[0, 1, 2, 3].map((i) => `${nextName}~${hash}${i ? `-${i}` : ""}.ndjson.gz`),
    ];
    for (const n of taken)
      await client.send(
        new PutObjectCommand({ Bucket: bucket, Key: `planted/${chainId}/records/${n}`, Body: "x" }),
      );
    const again = makeSink(config);
    await again.open(chainId);
    const err = await again.write(next).catch((e: unknown) => e);
    await again.close();
    expect(err).toBeInstanceOf(PermanentExportError);
    expect((err as Error).message).toMatch(
      /and the 4 keys beside it already hold objects this agent did not write/,
    );
  });

  it("verifies clean, and falls back to ListObjectsV2 on a store without ListObjectVersions", async () => {
    const trusted = readTrustedKeys([started.trustFile]);
    const direct = await verifySource(s3ExporterFactory.reader!(started.config), trusted);
    expect(direct.findings).toEqual([]);
    expect(direct.ok).toBe(true);
    expect(direct.chains[0]).toMatchObject({ records: COUNT });
    proxy.intercept = (method, url) =>
      method === "GET" && /[?&]versions(=|&|$)/.test(url) ? { status: 501 } : null;
    try {
      const report = await verifySource(s3ExporterFactory.reader!(started.config), trusted);
      expect(report.findings).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.chains[0]?.records).toBe(COUNT);
      expect(report.chains[0]?.notes.join("\n")).toContain("ListObjectsV2");
    } finally {
      proxy.intercept = null;
    }
  });

  it("stops with a message saying what to fix when the bucket lacks Object Lock, does not exist, or the key is wrong", async () => {
    const failOpen = async (patch: Record<string, unknown>) => {
      const sink = makeSink(withConfig(started.config, patch));
      const err = await sink.open("c").catch((e: unknown) => e);
      await sink.close();
      expect(err).toBeInstanceOf(PermanentExportError);
      return (err as Error).message;
    };
    expect(await failOpen({ object_lock: { mode: "COMPLIANCE", retain_days: 1 } })).toContain(
      "does not have Object Lock enabled",
    );
    expect(await failOpen({ bucket: `${bucket}-nope` })).toContain("does not exist");
    expect(await failOpen({ secret_access_key: "wrong" })).toContain(
      "rejected the credentials (SignatureDoesNotMatch)",
    );
  });

  it("retries throttling and 5xx (honouring Retry-After), an unreachable endpoint and a hung request", async () => {
    const { chainId, batches } = await batchesInBucket(client, bucket, PREFIX);
    const sink = makeSink(withConfig(started.config, { timeout: "1s" }));
    await sink.open(chainId);
    let release: (d: "drop") => void = () => undefined;
    try {
      const held = new Promise<"drop">((r) => (release = r));
      proxy.hold = () => held;
      const startedAt = Date.now();
      const hung = await sink.write(batches[0]!).catch((e: unknown) => e);
      expect(hung).toBeInstanceOf(RetryableExportError);
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(900);
      expect(Date.now() - startedAt).toBeLessThan(5000);
      proxy.hold = null;
      release("drop");

      proxy.intercept = () => ({ status: 503, headers: { "retry-after": "7" } });
      const err = await sink.write(batches[0]!).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RetryableExportError);
      expect((err as RetryableExportError).retryAfterMs).toBe(7000);
      proxy.intercept = null;
      await proxy.down();
      const down = await sink.write(batches[0]!).catch((e: unknown) => e);
      expect(down).toBeInstanceOf(RetryableExportError);
      expect((down as Error).message).toContain("reachable");
      await proxy.up();
      await sink.write(batches[0]!);
    } finally {
      proxy.intercept = null;
      proxy.hold = null;
      release("drop");
      await sink.close();
    }
  });
});

import { execFile } from "node:child_process";
import { join } from "node:path";
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import { type S3ExporterConfig, s3ReadSchema } from "../../agent/exporters/s3/config.js";
import { S3Source } from "../../agent/exporters/s3/reader.js";
import { connectionFromConfig } from "../../agent/exporters/s3/client.js";
import {
  type ChainReader,
  type Finding,
  readChains,
  type StoredText,
} from "../../agent/exporters/source.js";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import type { PublicKey } from "../../agent/integrity/signing.js";
import { startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { verifySource } from "../../agent/verify/verify.js";
import { CLI, deliverRecords, makeTempDir } from "../helpers/agent.js";
import {
  createTestBucket,
  getObject,
  listKeys,
  S3_ACCESS_KEY,
  S3_AVAILABLE,
  S3_ENDPOINT,
  S3_REGION,
  S3_SECRET_KEY,
  S3Proxy,
  s3AgentYaml,
  testS3Client,
  warnIfNoS3,
} from "../helpers/s3.js";

/**
 * The S3 reader streams (issue 12): it lists a page of `read.page_size` keys at a time and
 * hands on one object at a time. Read with pages of 2 or 3 keys, a bucket with two chains
 * and objects changed behind the agent's back gives exactly what one page of 1000 gives:
 * chains, records, manifests, findings and notes, and the same verify report. With
 * `fromSeq`, records objects that end before it are not fetched.
 */

warnIfNoS3("test/integration/s3-streaming.test.ts");

const PREFIX = "stream";

function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ stdout: string; status: number }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { encoding: "utf8", env: { ...process.env, ...env } },
      (err, stdout) => resolve({ stdout, status: err ? Number(err.code ?? 1) : 0 }),
    );
  });
}

const recordsRange = (key: string) => {
  const m = /\/records\/(\d{20})-(\d{20})\.ndjson$/.exec(key);
  return m ? { first: Number(m[1]), last: Number(m[2]) } : null;
};

describe.skipIf(!S3_AVAILABLE)("s3 reader: streaming pages", () => {
  const dirs: ReturnType<typeof makeTempDir>[] = [];
  let client: S3Client;
  let proxy: S3Proxy;
  let bucket: string;
  let base: S3ExporterConfig;
  let trusted: PublicKey[];
  let chainA = "";
  let recordKeysA: string[] = [];

  const source = (pageSize: number) =>
    new S3Source(connectionFromConfig(base), s3ReadSchema.parse({ page_size: pageSize }));

  beforeAll(async () => {
    client = testS3Client();
    proxy = new S3Proxy();
    await proxy.start();
    bucket = await createTestBucket(client, true);
    // Two agents (two chains) writing to one prefix, in small batches: many objects.
    const chains: string[] = [];
    const pubs: string[] = [];
    for (const [count, batch] of [
      [30, 4],
      [7, 3],
    ] as const) {
      const dir = makeTempDir("audit-s3-stream-");
      dirs.push(dir);
      const yaml = s3AgentYaml({
        dir: dir.path,
        bucket,
        prefix: PREFIX,
        endpoint: S3_ENDPOINT,
        objectLock: { mode: "GOVERNANCE", retainDays: 1 },
        batchMaxRecords: batch,
      });
      const config = parseConfig(yaml, join(dir.path, "agent.yaml"), {});
      base = { ...(config.exporters[0]?.config as S3ExporterConfig), endpoint: proxy.url };
      const agent = await startAgent(config, createLogger("silent"));
      try {
        await deliverRecords(agent, count, "delivery to S3");
        chains.push(agent.chainId);
      } finally {
        await agent.shutdown(5000);
      }
      pubs.push(join(dir.path, "keys", "signing.pub"));
    }
    trusted = readTrustedKeys(pubs);
    chainA = chains[0] as string;

    // Behind the agents' backs: an overwritten records object, an identical re-send, a
    // deleted manifest, an object the agent does not write, one outside the layout.
    const keys = await listKeys(client, bucket, `${PREFIX}/${chainA}/`);
    recordKeysA = keys.filter((k) => recordsRange(k) !== null);
    const manifestKeys = keys.filter((k) => k.includes("/manifests/"));
    expect(recordKeysA.length).toBeGreaterThan(6);
    const put = (Key: string, Body: Buffer | string) =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key, Body }));
    const original = (await getObject(client, bucket, recordKeysA[1] as string)).toString("utf8");
    await put(recordKeysA[1] as string, original.replace("changed a setting", "changed nothing"));
    await put(recordKeysA[3] as string, await getObject(client, bucket, recordKeysA[3] as string));
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: manifestKeys[2] as string }));
    await put(`${PREFIX}/${chainA}/records/notes.txt`, "not a batch\n");
    await put(`${PREFIX}/README.txt`, "outside the layout\n");
  });

  afterAll(async () => {
    await proxy?.close();
    client?.destroy();
    for (const d of dirs) d.cleanup();
  });

  it("reads the same chains, records, manifests, findings and notes with pages of 2 and 3 keys as with one page", async () => {
    const whole = await readChains(source(1000));
    expect(whole.map((c) => c.chainId)).toHaveLength(2);
    const a = whole.find((c) => c.chainId === chainA)!;
    expect(a.records).toHaveLength(30);
    expect(a.findings.map((f) => f.category).sort()).toEqual(["malformed", "missing", "modified"]);
    expect(a.notes.join("\n")).toContain("1 extra identical version(s)");
    expect(a.notes.join("\n")).toContain("1 object(s) under");

    for (const pageSize of [2, 3]) {
      const from = proxy.requests.length;
      expect(await readChains(source(pageSize)), `page_size ${pageSize}`).toEqual(whole);
      const lists = proxy.requests
        .slice(from)
        .filter((r) => r.method === "GET" && /[?&]versions(=|&|$)/.test(r.url));
      // Every listing page asked for page_size keys, and there were many of them.
      expect(lists.every((r) => r.url.includes(`max-keys=${pageSize}`))).toBe(true);
      expect(lists.length).toBeGreaterThan(recordKeysA.length / pageSize);
    }
    const one = await verifySource(source(1000), trusted);
    expect(one.ok).toBe(false);
    expect(await verifySource(source(2), trusted)).toEqual(one);
  });

  it("hands on one records object per page", async () => {
    for await (const chain of source(2).chains()) {
      if (chain.chainId !== chainA) continue;
      const pages: (readonly StoredText[])[] = [];
      for await (const page of chain.records({ finding: () => {}, note: () => {} }))
        pages.push(page);
      expect(pages).toHaveLength(recordKeysA.length);
      for (const [i, page] of pages.entries()) {
        const objects = new Set(page.map((r) => r.location.replace(/:\d+$/, "")));
        expect([...objects]).toEqual([`s3://${bucket}/${recordKeysA[i]}`]);
      }
    }
  });

  it("with fromSeq, fetches no records object that ends before it unless it has other versions to judge", async () => {
    const whole = (await readChains(source(1000))).find((c) => c.chainId === chainA)!;
    const fromSeq = recordsRange(recordKeysA[5] as string)!.first;
    const wanted = new Set([recordKeysA[1], recordKeysA[3], ...recordKeysA.slice(5)]);

    let reader: ChainReader | undefined;
    const read: StoredText[] = [];
    const findings: Finding[] = [];
    const from = proxy.requests.length;
    for await (const chain of source(2).chains()) {
      if (chain.chainId !== chainA) continue;
      reader = chain;
      const problems = { finding: (f: Finding) => findings.push(f), note: () => {} };
      for await (const page of chain.records(problems, fromSeq)) read.push(...page);
    }
    expect(reader).toBeDefined();
    const fetched = new Set(
      proxy.requests
        .slice(from)
        .filter((r) => r.method === "GET" && r.url.split("?")[0]!.includes("/records/"))
        .map((r) => decodeURIComponent(r.url.split("?")[0]!.slice(bucket.length + 2))),
    );
    expect([...fetched].sort()).toEqual([...wanted].sort());
    // What it hands on is the whole read's records of those objects, in the same order.
    const inWanted = (r: StoredText) =>
      wanted.has(r.location.replace(`s3://${bucket}/`, "").replace(/:\d+$/, ""));
    expect(read).toEqual(whole.records.filter(inWanted));
    expect(read.filter((r) => Number(JSON.parse(r.text).seq) >= fromSeq)).toEqual(
      whole.records.filter((r) => Number(JSON.parse(r.text).seq) >= fromSeq),
    );
    // The overwritten object before fromSeq is still judged.
    expect(findings.map((f) => f.category).sort()).toEqual(["malformed", "modified"]);
  });

  it("takes ?page_size=N on verify --source, with the same report", async () => {
    const env = {
      AWS_ENDPOINT_URL_S3: S3_ENDPOINT,
      AWS_REGION: S3_REGION,
      AWS_ACCESS_KEY_ID: S3_ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY,
    };
    const trust = dirs.flatMap((d) => ["--trust", join(d.path, "keys", "signing.pub")]);
    const one = await runCli(["verify", "--source", `s3://${bucket}/${PREFIX}`, ...trust], env);
    const paged = await runCli(
      ["verify", "--source", `s3://${bucket}/${PREFIX}?page_size=2`, ...trust],
      env,
    );
    expect(one.stdout).toContain("overwritten behind the agent's back");
    expect(paged.stdout).toBe(one.stdout);
    expect(paged.status).toBe(one.status);
    const bad = await runCli(
      ["verify", "--source", `s3://${bucket}/${PREFIX}?page_size=5000`, ...trust],
      env,
    );
    expect(bad.status).not.toBe(0);
  });
});

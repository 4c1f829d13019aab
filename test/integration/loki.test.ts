import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { readChains } from "../../agent/exporters/source.js";
import { leafHash } from "../../agent/integrity/format.js";
import { parseConfig } from "../../agent/config/load.js";
import { lokiExporterConfigSchema } from "../../agent/exporters/loki/config.js";
import { lokiExporterFactory, lokiSourceFromSpec } from "../../agent/exporters/loki/factory.js";
import type { RunningAgent } from "../../agent/service/agent.js";
import type { AuditSource } from "../../agent/verify/types.js";
import { makeTempDir, waitFor } from "../helpers/agent.js";
import { type FakeLoki, startFakeLoki } from "../helpers/fake-loki.js";
import {
  expectExactlyOnce,
  type LokiYaml,
  lokiYaml,
  MANIFESTS,
  RECORDS,
  type RecordLine,
  recIdx,
  sendRecords,
  startLokiAgent,
  verifyLoki,
} from "../helpers/loki.js";

/**
 * The Loki exporter end to end: the real OTel SDK sends to the agent, the agent pushes to
 * an in-test Loki (test/helpers/fake-loki.ts, Loki's documented push/query behaviour), and
 * `verify` reads it back through the exporter's reader. Crashes: loki-crash.test.ts.
 */

describe("Loki exporter: delivery, labels, metadata, verify", () => {
  const tmp = makeTempDir("audit-agent-loki-");
  let loki: FakeLoki;
  let agent: RunningAgent;
  const COUNT = 5200; // more than one query page (Loki's 5000-entry limit)
  let reader: AuditSource;

  beforeAll(async () => {
    loki = await startFakeLoki({
      multiTenant: true,
      auth: { basic: { username: "audit", password: "s3cret" } },
    });
    const extra = `    tenant_id: team-a
    auth:
      basic:
        username: audit
        password: s3cret`;
    const started = await startLokiAgent({ dir: tmp.path, url: loki.url, extra });
    agent = started.agent;
    await sendRecords(started.url, COUNT);
    await waitFor(
      () => agent.deliveries[0]?.deliveredThrough === COUNT - 1,
      30_000,
      "delivery to Loki",
    );
    const config = lokiExporterConfigSchema.parse({
      endpoint: loki.url,
      tenant_id: "team-a",
      auth: { basic: { username: "audit", password: "s3cret" } },
      labels: { static: { env: "prod" } },
    });
    reader = lokiExporterFactory.reader!(config);
  });

  afterAll(async () => {
    await agent?.shutdown(2000);
    await loki?.stop();
    tmp.cleanup();
  });

  it("stores every record once, in order, with its canonical text as the line", () => {
    expectExactlyOnce(loki, COUNT, "team-a");
    const entries = loki.entries(RECORDS, "team-a");
    expect(entries.map((e) => recIdx(e.line))).toEqual(Array.from({ length: COUNT }, (_, i) => i));
    // Byte-exact: the structured metadata hash is the leaf hash of the stored line.
    for (const e of entries.slice(0, 50)) {
      expect(e.metadata.hash).toBe(leafHash(Buffer.from(e.line, "utf8")).toString("hex"));
      expect(e.metadata.seq).toBe((JSON.parse(e.line) as RecordLine).seq);
    }
    // Nothing reached the default tenant.
    expect(loki.entries({}, "fake")).toHaveLength(0);
  });

  it("labels streams from resource attributes, static labels, chain_id and audit_stream", () => {
    const streams = loki.streams("team-a");
    expect(streams).toEqual(
      expect.arrayContaining([
        {
          chain_id: agent.chainId,
          audit_stream: "records",
          env: "prod",
          service_name: "billing",
          namespace: "payments",
        },
        { chain_id: agent.chainId, audit_stream: "manifests", env: "prod" },
      ]),
    );
    expect(streams).toHaveLength(2);
  });

  it("writes one manifest entry per sealed batch, shaped like the file exporter's lines", () => {
    const manifests = loki.entries(MANIFESTS, "team-a");
    expect(manifests.length).toBe(agent.sealed.entryCount);
    expect(manifests.length).toBeGreaterThan(5);
    manifests.forEach((m, i) => {
      const parsed = JSON.parse(m.line) as {
        checkpoint: string | null;
        manifest: { index: string | number; chainId: string };
      };
      expect(Object.keys(parsed)).toEqual(["checkpoint", "manifest"]);
      expect(Number(parsed.manifest.index)).toBe(i);
      expect(typeof parsed.checkpoint).toBe("string");
      expect(m.metadata.batch).toBe(String(i));
    });
  });

  it("stamps entries strictly increasing across batches, the manifest after its records", () => {
    const all = [...loki.entries(RECORDS, "team-a"), ...loki.entries(MANIFESTS, "team-a")].sort(
      (a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0),
    );
    for (let i = 1; i < all.length; i++) expect(all[i]!.ts > all[i - 1]!.ts).toBe(true);
    // A manifest entry follows the last record of its batch.
    const manifests = loki.entries(MANIFESTS, "team-a");
    const records = loki.entries(RECORDS, "team-a");
    const first = JSON.parse(manifests[0]!.line) as { manifest: { lastSeq: string } };
    const lastOfBatch0 = records[Number(first.manifest.lastSeq)]!;
    expect(manifests[0]!.ts).toBe(lastOfBatch0.ts + 1n);
    // Close to the time of sending, not the records' own times.
    const now = BigInt(Date.now()) * 1_000_000n;
    expect(now - records[0]!.ts < 120_000_000_000n).toBe(true);
  });

  it("sends gzip JSON with basic auth and X-Scope-OrgID on every push", () => {
    const pushes = loki.requests.filter((r) => r.path === "/loki/api/v1/push");
    expect(pushes.length).toBeGreaterThan(0);
    for (const p of pushes) {
      expect(p.headers["content-type"]).toBe("application/json");
      expect(p.headers["content-encoding"]).toBe("gzip");
      expect(p.headers["x-scope-orgid"]).toBe("team-a");
      expect(p.headers.authorization).toBe(
        `Basic ${Buffer.from("audit:s3cret").toString("base64")}`,
      );
      expect(p.status).toBe(204);
    }
    // Structured metadata as the third element of each value.
    const body = JSON.parse(pushes[0]!.body!) as { streams: Array<{ values: unknown[][] }> };
    const value = body.streams[0]!.values[0]!;
    expect(value).toHaveLength(3);
    expect(Object.keys(value[2] as object).sort()).toEqual(["hash", "seq"]);
  });

  it("verify passes through the reader, paging past 5000 entries", async () => {
    const before = loki.requests.length;
    const report = await verifyLoki(reader, tmp.path);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.chains).toHaveLength(1);
    expect(report.chains[0]!.records).toBe(COUNT);
    expect(report.chains[0]!.lastSeq).toBe(COUNT - 1);
    const queries = loki.requests
      .slice(before)
      .filter((r) => r.path.startsWith("/loki/api/v1/query_range"));
    const recordQueries = queries.filter((q) => q.path.includes("records"));
    expect(recordQueries.length).toBeGreaterThanOrEqual(2);
    for (const q of queries) {
      const p = new URL(q.path, "http://x").searchParams;
      expect(p.get("direction")).toBe("forward");
      expect(p.get("limit")).toBe("5000");
      expect(p.get("start")).toMatch(/^\d{19}$/);
      expect(q.status).toBe(200);
      expect(q.headers["x-scope-orgid"]).toBe("team-a");
    }
    expect(
      loki.requests
        .slice(before)
        .some((r) => r.path.startsWith("/loki/api/v1/label/chain_id/values")),
    ).toBe(true);
  });

  it("verify reports a line modified directly in Loki, then a deleted entry", async () => {
    const target = loki.entries(RECORDS, "team-a")[4100]!;
    const original = target.line;
    loki.modifyLine(
      RECORDS,
      target.ts,
      original.replace("audit event 4100", "audit event 9999"),
      "team-a",
    );
    try {
      const report = await verifyLoki(reader, tmp.path);
      expect(report.ok).toBe(false);
      const modified = report.findings.filter((f) => f.category === "modified");
      expect(modified.length).toBeGreaterThan(0);
      expect(modified.some((f) => f.location.includes(String(target.ts)))).toBe(true);
    } finally {
      loki.modifyLine(RECORDS, target.ts, original, "team-a");
    }
    expect((await verifyLoki(reader, tmp.path)).ok).toBe(true);

    const gone = loki.entries(RECORDS, "team-a")[1234]!;
    loki.deleteEntry(RECORDS, gone.ts, "team-a");
    try {
      const report = await verifyLoki(reader, tmp.path);
      expect(report.ok).toBe(false);
      expect(report.findings).toEqual(
        expect.arrayContaining([expect.objectContaining({ category: "missing", seq: 1234 })]),
      );
    } finally {
      loki.insertEntry(gone.labels, gone, "team-a");
    }
    expect((await verifyLoki(reader, tmp.path)).ok).toBe(true);
  });

  it("verify reports a removed manifest and a duplicated record", async () => {
    const m = loki.entries(MANIFESTS, "team-a")[2]!;
    loki.deleteEntry(MANIFESTS, m.ts, "team-a");
    const dup = loki.entries(RECORDS, "team-a")[10]!;
    // Same line at another timestamp: Loki keeps both, the verifier must count it.
    loki.insertEntry(dup.labels, { ...dup, ts: dup.ts + 1_000_000_000_000n }, "team-a");
    try {
      const report = await verifyLoki(reader, tmp.path);
      expect(report.ok).toBe(false);
      expect(report.findings).toEqual([
        expect.objectContaining({ category: "missing", manifest: 2 }),
        expect.objectContaining({ category: "duplicate", seq: 10 }),
      ]);
    } finally {
      loki.deleteEntry(RECORDS, dup.ts + 1_000_000_000_000n, "team-a");
      loki.insertEntry(m.labels, m, "team-a");
    }
    expect((await verifyLoki(reader, tmp.path)).ok).toBe(true);
  });

  it("the reader refuses wrong credentials with a clear error", async () => {
    const bad = lokiExporterFactory.reader!(
      lokiExporterConfigSchema.parse({ endpoint: loki.url, tenant_id: "team-a" }),
    );
    await expect(readChains(bad)).rejects.toThrow(/cannot read Loki: .*HTTP 401/);
  });
});

describe("Loki exporter: re-sends, retries, outages, refusals", () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup(
    options: Parameters<typeof startFakeLoki>[0] = {},
    yaml: Partial<LokiYaml> = {},
  ) {
    const tmp = makeTempDir("audit-agent-loki-");
    const loki = await startFakeLoki(options);
    cleanups.push(
      () => tmp.cleanup(),
      () => loki.stop(),
    );
    const o: LokiYaml = { dir: tmp.path, url: loki.url, ...yaml };
    const run = await startLokiAgent(o);
    const state = { agent: run.agent, url: run.url };
    cleanups.push(() => state.agent.shutdown(300).then(() => undefined));
    return {
      tmp,
      loki,
      state,
      o,
      /** Stops the agent and starts it again on the same WAL. */
      async restart(change: Partial<LokiYaml> = {}) {
        await state.agent.shutdown(300);
        const next = await startLokiAgent({ ...o, ...change });
        state.agent = next.agent;
        state.url = next.url;
      },
    };
  }

  for (const sharded of [false, true])
    it(`re-sending batches already in Loki adds nothing (cursor rolled back, agent restarted${sharded ? "; Loki shards the streams" : ""})`, async () => {
      // Sharded: every push after a stream's first is spread over shards, round-robin from
      // where the last one stopped, so a batch sent again would land in other shards, where
      // Loki's dedup does not see the first copies.
      const s = await setup(sharded ? { shardStreams: { desiredRateBytes: 2048 } } : {}, {
        held: true,
        maxRecords: 50,
      });
      await sendRecords(s.state.url, 300);
      await waitFor(
        () => s.state.agent.deliveries[0]?.deliveredThrough === 299,
        15_000,
        "delivery",
      );
      const delivered = s.state.agent.deliveries[0]!.deliveredIndex;
      expect(delivered).toBeGreaterThanOrEqual(5);
      const entriesBefore = s.loki.entries(RECORDS).map((e) => `${e.ts} ${e.line}`);
      const manifestsBefore = s.loki.entries(MANIFESTS).map((e) => `${e.ts} ${e.line}`);
      if (sharded)
        expect(s.loki.streams().some((st) => st.__stream_shard__ !== undefined)).toBe(true);
      // Roll the cursor back to "nothing delivered"; loki/held keeps the records in the WAL.
      await s.state.agent.cursors.commit("loki", -1, -1);
      const pushesBefore = s.loki.acceptedPushes;
      expect(s.loki.duplicates).toBe(0);
      await s.restart();
      await waitFor(
        () => s.state.agent.deliveries[0]!.deliveredIndex === delivered,
        15_000,
        "re-delivery",
      );
      // Each batch's stamp may have reached Loki: the exporter asked what Loki holds, found
      // every entry, and sent nothing again.
      expect(s.loki.acceptedPushes - pushesBefore).toBe(0);
      expect(s.loki.duplicates).toBe(0);
      expect(s.loki.entries(RECORDS).map((e) => `${e.ts} ${e.line}`)).toEqual(entriesBefore);
      expect(s.loki.entries(MANIFESTS).map((e) => `${e.ts} ${e.line}`)).toEqual(manifestsBefore);
      const report = await verifyLoki(lokiSourceFromSpec(s.loki.url), s.tmp.path);
      expect(report.findings).toEqual([]);
      expect(report.ok).toBe(true);
    });

  it("retries 429 (honouring Retry-After, and without it), 503, and a 500 or a cut connection after the write", async () => {
    const s = await setup();
    s.loki.inject(
      { status: 429, retryAfter: "1", body: "Ingestion rate limit exceeded for user fake\n" },
      { status: 429, body: "Maximum active stream limit exceeded\n" },
      { status: 503, body: "no healthy ingesters\n" },
      { status: 500, storeFirst: true },
      { destroy: true, storeFirst: true },
    );
    await sendRecords(s.state.url, 40);
    await waitFor(() => s.state.agent.deliveries[0]?.deliveredThrough === 39, 15_000, "delivery");
    expectExactlyOnce(s.loki, 40);
    const pushes = s.loki.requests.filter((r) => r.path === "/loki/api/v1/push");
    // (The cut connection has no answer to log.)
    expect(pushes.slice(0, 4).map((p) => p.status)).toEqual([429, 429, 503, 500]);
    expect(pushes.slice(4).every((p) => p.status === 204)).toBe(true);
    const report = await verifyLoki(lokiSourceFromSpec(s.loki.url), s.tmp.path);
    expect(report.findings).toEqual([]);
  });

  it("splits a large batch into pushes under max_request_size_kib; a retry resumes after the acknowledged ones", async () => {
    const s = await setup({}, { extra: "    max_request_size_kib: 16" });
    s.loki.inject({ status: 503, skip: 2 });
    await sendRecords(s.state.url, 60, { body: (i) => `${i} ${"y".repeat(1000)}` });
    await waitFor(() => s.state.agent.deliveries[0]?.deliveredThrough === 59, 15_000, "delivery");
    expectExactlyOnce(s.loki, 60);
    const pushes = s.loki.requests.filter((r) => r.path === "/loki/api/v1/push");
    const recordPushes = pushes.filter((p) => p.body?.includes('"audit_stream":"records"'));
    expect(recordPushes.length).toBeGreaterThanOrEqual(4);
    for (const p of recordPushes) expect(Buffer.byteLength(p.body!)).toBeLessThanOrEqual(16 * 1024);
    expect(Math.max(...recordPushes.map((p) => Buffer.byteLength(p.body!)))).toBeGreaterThan(
      12 * 1024,
    );
    expect(pushes[2]!.status).toBe(503);
    expect(pushes[3]!.body).toBe(pushes[2]!.body); // the refused one again, not the first two
    expect(s.loki.duplicates).toBe(0);
  });

  it("waits for Retry-After before retrying (and not longer than the backoff without it)", async () => {
    const s = await setup();
    s.loki.inject({ status: 429, retryAfter: "1" }, { status: 429, skip: 1 });
    await sendRecords(s.state.url, 5);
    await waitFor(() => s.state.agent.deliveries[0]?.deliveredThrough === 4, 15_000, "delivery");
    const pushes = s.loki.requests.filter((r) => r.path === "/loki/api/v1/push");
    const [first, second, third] = pushes;
    expect([first!.status, second!.status]).toEqual([429, 204]);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(900);
    // The manifest push got a 429 without Retry-After: retried after the 50ms backoff.
    expect(third!.status).toBe(429);
    expect(pushes[3]!.at - third!.at).toBeLessThan(800);
    expectExactlyOnce(s.loki, 5);
  });

  it("survives an outage of many retry intervals during load: every record once, in order", async () => {
    const s = await setup();
    let sent = 0;
    const load = (async () => {
      for (let round = 0; round < 12; round++) {
        await sendRecords(s.state.url, 25, { first: sent });
        sent += 25;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await new Promise((r) => setTimeout(r, 250));
    await s.loki.down();
    await new Promise((r) => setTimeout(r, 2000)); // ≥ 10 × max_interval (200ms)
    expect(s.state.agent.deliveries[0]!.state).toBe("retrying");
    await s.loki.up();
    await load;
    await waitFor(
      () => s.state.agent.deliveries[0]?.deliveredThrough === sent - 1,
      20_000,
      "delivery after the outage",
    );
    expectExactlyOnce(s.loki, sent);
    expect(s.loki.entries(RECORDS).map((e) => recIdx(e.line))).toEqual(
      Array.from({ length: sent }, (_, i) => i),
    );
    const report = await verifyLoki(lokiSourceFromSpec(s.loki.url), s.tmp.path);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it("after an outage longer than Loki's reject_old_samples_max_age, batches still land (stamps of unsent batches are renewed)", async () => {
    const s = await setup({ rejectOldSamplesMaxAgeMs: 1000 });
    await s.loki.down();
    await sendRecords(s.state.url, 30);
    await new Promise((r) => setTimeout(r, 1800));
    await s.loki.up();
    const delivery = s.state.agent.deliveries[0]!;
    await waitFor(
      () => delivery.deliveredThrough === 29 || delivery.state === "failed",
      15_000,
      "delivery",
    );
    expect(delivery.lastError ?? "").not.toMatch(/too old/);
    expect(delivery.deliveredThrough).toBe(29);
    expectExactlyOnce(s.loki, 30);
  });

  it("a 400 partial write stops the exporter with Loki's reason; after the fix a restart adds only what was missing", async () => {
    const s = await setup({ maxLineSize: 3000 });
    const LONG = 7;
    await sendRecords(s.state.url, 12, {
      body: (i) => (i === LONG ? `big ${"x".repeat(4000)}` : `audit event ${i}`),
    });
    const delivery = s.state.agent.deliveries[0]!;
    await waitFor(() => delivery.state === "failed", 15_000, "the exporter to stop");
    expect(delivery.lastError).toMatch(/HTTP 400: Max entry size '3000' bytes exceeded for stream/);
    expect(delivery.lastError).toMatch(/max_line_size/);
    // Loki stored every other entry of the refused request.
    const refused = s.loki.requests.find((r) => r.status === 400)!;
    const body = JSON.parse(refused.body!) as { streams: Array<{ values: string[][] }> };
    const sentLines = body.streams.flatMap((st) => st.values.map((v) => v[1]!));
    expect(sentLines.length).toBeGreaterThan(1);
    const stored = new Set(s.loki.entries(RECORDS).map((e) => e.line));
    for (const line of sentLines) expect(stored.has(line)).toBe(recIdx(line) !== LONG);
    const partial = await verifyLoki(lokiSourceFromSpec(s.loki.url), s.tmp.path);
    expect(partial.ok).toBe(false);
    expect(partial.findings.some((f) => f.category === "missing")).toBe(true);
    // No retry loop: one refusal, then nothing more.
    const pushes = s.loki.requests.filter((r) => r.path === "/loki/api/v1/push").length;
    await new Promise((r) => setTimeout(r, 300));
    expect(s.loki.requests.filter((r) => r.path === "/loki/api/v1/push").length).toBe(pushes);

    s.loki.options.maxLineSize = 256 * 1024;
    await s.restart();
    await waitFor(
      () => s.state.agent.deliveries[0]?.deliveredThrough === 11,
      15_000,
      "delivery after the fix",
    );
    expectExactlyOnce(s.loki, 12);
    const report = await verifyLoki(lokiSourceFromSpec(s.loki.url), s.tmp.path);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it("a stream already holding much newer entries refuses the batch as too far behind: the exporter stops and says why", async () => {
    const s = await setup();
    const labels = {
      chain_id: s.state.agent.chainId,
      audit_stream: "records",
      env: "prod",
      namespace: "payments",
      service_name: "billing",
    };
    // Someone else wrote into this stream, two hours ahead (Loki's window is one hour).
    const ahead = (BigInt(Date.now()) + 7_200_000n) * 1_000_000n;
    s.loki.insertEntry(labels, { ts: ahead, line: "not ours", metadata: {} });
    await sendRecords(s.state.url, 3);
    const delivery = s.state.agent.deliveries[0]!;
    await waitFor(() => delivery.state === "failed", 15_000, "the exporter to stop");
    expect(delivery.lastError).toMatch(
      /HTTP 400: entry with timestamp .* ignored, reason: 'entry too far behind, entry timestamp is: .*, oldest acceptable timestamp is: .*/,
    );
    expect(delivery.lastError).toMatch(/another writer use the same labels/);
    expect(s.loki.entries(RECORDS)).toHaveLength(1);
  });

  it("structured metadata refused by Loki stops the exporter; structured_metadata: false delivers", async () => {
    const s = await setup({ allowStructuredMetadata: false });
    await sendRecords(s.state.url, 4);
    const delivery = s.state.agent.deliveries[0]!;
    await waitFor(() => delivery.state === "failed", 15_000, "the exporter to stop");
    expect(delivery.lastError).toMatch(
      /includes structured metadata, but this feature is disallowed/,
    );
    expect(delivery.lastError).toMatch(/structured_metadata: false/);
    await s.restart({ extra: "    structured_metadata: false" });
    await waitFor(() => s.state.agent.deliveries[0]?.deliveredThrough === 3, 15_000, "delivery");
    expectExactlyOnce(s.loki, 4);
    for (const e of s.loki.entries()) expect(e.metadata).toEqual({});
    const report = await verifyLoki(lokiSourceFromSpec(s.loki.url), s.tmp.path);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it("sends a bearer token; a refused credential stops the exporter with a clear message", async () => {
    const s = await setup(
      { auth: { bearer: "tok-123" } },
      { extra: "    auth:\n      bearer_token: tok-123" },
    );
    await sendRecords(s.state.url, 5);
    await waitFor(() => s.state.agent.deliveries[0]?.deliveredThrough === 4, 15_000, "delivery");
    for (const r of s.loki.requests) expect(r.headers.authorization).toBe("Bearer tok-123");
    expectExactlyOnce(s.loki, 5);

    await s.restart({ extra: "    auth:\n      bearer_token: wrong" });
    await sendRecords(s.state.url, 3, { first: 5 });
    const delivery = s.state.agent.deliveries[0]!;
    await waitFor(() => delivery.state === "failed", 15_000, "the exporter to stop");
    expect(delivery.lastError).toMatch(/HTTP 401.*check auth and tenant_id/);
  });

  it("rejects bad label configuration with messages that say what to write", () => {
    const tmp = makeTempDir("audit-agent-loki-");
    cleanups.push(() => tmp.cleanup());
    const bad = (labels: string) =>
      lokiYaml({ dir: tmp.path, url: "http://127.0.0.1:3100" }).replace(
        / {4}labels:\n(?: {6}.*\n)+/,
        `    labels:\n${labels}\n`,
      );
    expect(() =>
      parseConfig(
        bad("      resource_attributes:\n        service.name: service-name"),
        "t.yaml",
        {},
      ),
    ).toThrow(/not a Loki label name: use letters, digits and '_'/);
    expect(() => parseConfig(bad("      static:\n        chain_id: x"), "t.yaml", {})).toThrow(
      /set by the exporter itself/,
    );
    expect(() =>
      parseConfig(
        bad("      resource_attributes:\n        a: env\n      static:\n        env: prod"),
        "t.yaml",
        {},
      ),
    ).toThrow(/set twice/);
    expect(() =>
      parseConfig(
        lokiYaml({ dir: tmp.path, url: "http://127.0.0.1:3100/loki/api/v1/push" }),
        "t.yaml",
        {},
      ),
    ).toThrow(/without \/loki\/api\/v1\/push/);
  });
});

describe("Loki reader paging", () => {
  it("pages past the entry limit when entries share timestamps at a page boundary, reading each once", async () => {
    const loki = await startFakeLoki({ maxEntriesLimitPerQuery: 3 });
    try {
      const base = BigInt(Date.now() - 60_000) * 1_000_000n;
      const labelsA = { chain_id: "c1", audit_stream: "records", service_name: "a" };
      const labelsB = { chain_id: "c1", audit_stream: "records", service_name: "b" };
      // Timestamps: 0,1,2,2,2,3,4 (three entries at 2, in two streams).
      const plan: Array<[Record<string, string>, bigint, string]> = [
        [labelsA, 0n, "l0"],
        [labelsA, 1n, "l1"],
        [labelsA, 2n, "l2a"],
        [labelsB, 2n, "l2b"],
        [labelsA, 2n, "l2c"],
        [labelsB, 3n, "l3"],
        [labelsA, 4n, "l4"],
      ];
      for (const [labels, off, line] of plan)
        loki.insertEntry(labels, { ts: base + off, line, metadata: {} });
      const source = lokiSourceFromSpec(`${loki.url}?chain=c1&since=1h`);
      const [chain] = await readChains(source);
      // The page size adapted to Loki's limit (a 400 naming it), and nothing was lost.
      expect(chain!.records.map((r) => r.text).sort()).toEqual(
        ["l0", "l1", "l2a", "l2b", "l2c", "l3", "l4"].sort(),
      );
      expect(chain!.records.map((r) => r.text).slice(0, 2)).toEqual(["l0", "l1"]);
      expect(chain!.notes.join(" ")).toMatch(/allows 3 entries per query/);
      expect(chain!.records[0]!.location).toMatch(/chain_id="c1".* @ \d{19}$/);
    } finally {
      await loki.stop();
    }
  });

  it("rejects bad source specs", () => {
    expect(() => lokiSourceFromSpec("not a url")).toThrow(/loki:http:\/\/HOST:3100/);
    expect(() => lokiSourceFromSpec("http://h:3100?tenent=x")).toThrow(
      /unknown parameter "tenent"/,
    );
  });
});

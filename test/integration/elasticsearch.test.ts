import { execFile } from "node:child_process";
import { readChains } from "../../agent/exporters/source.js";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";
import { Agent as HttpDispatcher, request as httpRequest } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type StoredRecord, storedRecordOf } from "../../agent/store/record.js";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import type { PublicKey } from "../../agent/integrity/signing.js";
import { parseConfig } from "../../agent/config/load.js";
import type { ElasticsearchExporterConfig } from "../../agent/exporters/elasticsearch/config.js";
import {
  elasticsearchExporterFactory,
  elasticsearchSourceFromSpec,
} from "../../agent/exporters/elasticsearch/factory.js";
import { fileSource } from "../../agent/exporters/file/reader.js";
import {
  PermanentExportError,
  type RecordSink,
  type SealedBatch,
} from "../../agent/exporters/api.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { AgentCounters } from "../../agent/telemetry/counters.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { crossCheck } from "../../agent/verify/cross-check.js";
import { verifySource } from "../../agent/verify/verify.js";
import {
  type ChildAgent,
  CLI,
  killAgent,
  backendAgentYaml,
  makeTempDir,
  spawnAgent,
  waitFor,
} from "../helpers/agent.js";
import {
  FakeElasticsearch,
  type FakeEsOptions,
  type StoredDoc,
} from "../helpers/fake-elasticsearch.js";
import { deriveSeed, prng, testSeed } from "../helpers/prng.js";

/**
 * The Elasticsearch exporter against an in-test Elasticsearch (test/helpers/
 * fake-elasticsearch.ts): records sent by the OTel SDK through the agent land as one
 * document each (`create`, `_id` = leaf hash) with their canonical text byte-exact and
 * searchable fields derived from it; manifests in their own index; per-item and top-level
 * failures are retried or stop the exporter as they should; the reader and verifier prove
 * the data intact, report tampering, and accept the duplicate a rollover can cause.
 */

/** Parsed JSON documents, read field by field in assertions. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = Record<string, any>;

const INDEX = "audit-logs";
const MANIFESTS = "audit-logs-manifests";
const EXPORTER = "elasticsearch";

interface YamlOptions {
  dir: string;
  endpoint: string;
  /** Extra YAML lines under exporters.elasticsearch (4-space indent). */
  extra?: string;
  batchMaxRecords?: number;
  /** Also write a file exporter to <dir>/out, to compare against. */
  file?: boolean;
}

function esAgentYaml(o: YamlOptions): string {
  return backendAgentYaml({
    dir: o.dir,
    exporters: `  elasticsearch:
    endpoint: ${o.endpoint}
    index: ${INDEX}
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
${o.extra ?? ""}${
      o.file
        ? `  file:
    directory: ${join(o.dir, "out")}
`
        : ""
    }`,
    exporterIds: o.file ? ["elasticsearch", "file"] : ["elasticsearch"],
    batchMaxRecords: o.batchMaxRecords ?? 7,
  });
}

interface Started {
  agent: RunningAgent;
  config: ElasticsearchExporterConfig;
  httpUrl: string;
  trusted: PublicKey[];
}

async function startEsAgent(o: YamlOptions): Promise<Started> {
  const parsed = parseConfig(esAgentYaml(o), join(o.dir, "agent.yaml"), {});
  const agent = await startAgent(parsed, createLogger("error"));
  return {
    agent,
    config: parsed.exporters.find((e) => e.id === EXPORTER)?.config as ElasticsearchExporterConfig,
    httpUrl: `http://${agent.addresses().otlp?.http}/v1/logs`,
    trusted: readTrustedKeys([join(o.dir, "keys", "signing.pub")]),
  };
}

const delivery = (agent: RunningAgent) =>
  agent.deliveries.find((d) => d.exporterId === EXPORTER) as RunningAgent["deliveries"][number];

async function waitDelivered(agent: RunningAgent, count: number, timeoutMs = 20_000) {
  await waitFor(
    () => delivery(agent).deliveredThrough === count - 1,
    timeoutMs,
    `delivery of ${count} records to Elasticsearch (state ${delivery(agent).state}: ${delivery(agent).lastError})`,
  );
}

const T0 = 1_700_000_000;

/** Emits `count` audit records with the real OTel SDK over OTLP/HTTP and flushes them. */
async function sendWithSdk(
  url: string,
  count: number,
  tag: string,
  o: { poisonAt?: number; delayEveryMs?: number } = {},
): Promise<void> {
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": "es-test", "deployment.environment": "ci" }),
    processors: [
      new BatchLogRecordProcessor({
        exporter: new OTLPLogExporter({ url }),
        maxExportBatchSize: 9,
        scheduledDelayMillis: 5,
      }),
    ],
  });
  const logger = provider.getLogger("es.audit", "1.0.0");
  for (let i = 0; i < count; i++) {
    logger.emit({
      timestamp: [T0 + i, 123456789],
      severityNumber: SeverityNumber.WARN,
      severityText: "WARN",
      eventName: "audit.setting_changed",
      body: `${tag} #${i}: user u-${i} changed a setting`,
      attributes: {
        audit: true,
        "rec.tag": tag,
        "rec.idx": i,
        "user.name": "é😀",
        http: { method: "POST", status: 200 },
        ...(o.poisonAt === i ? { poison: true } : {}),
      },
    });
    if (o.delayEveryMs && i % 10 === 9) await new Promise((r) => setTimeout(r, o.delayEveryMs));
  }
  await provider.forceFlush();
  await provider.shutdown();
}

const leafHex = (text: string) =>
  createHash("sha256")
    .update(Buffer.from([0]))
    .update(text, "utf8")
    .digest("hex");

const canonicalOf = (d: StoredDoc) => (d.source.audit as { canonical: string }).canonical;
const seqOf = (d: StoredDoc) => (d.source.audit as { seq: number }).seq;

/** Record documents by seq; fails on a seq stored twice unless `allowCopies`. */
function bySeq(docs: StoredDoc[], allowCopies = false): Map<number, StoredDoc[]> {
  const out = new Map<number, StoredDoc[]>();
  for (const d of docs) out.set(seqOf(d), [...(out.get(seqOf(d)) ?? []), d]);
  if (!allowCopies)
    expect([...out].filter(([, list]) => list.length > 1).map(([s]) => s)).toEqual([]);
  return out;
}

/** A sink made by the exporter's own factory, as the agent makes it. */
function makeSink(config: ElasticsearchExporterConfig): RecordSink {
  return elasticsearchExporterFactory.create(
    {
      id: EXPORTER,
      logger: createLogger("error"),
      counters: new AgentCounters(),
      state: {
        get: async () => undefined,
        put: async () => undefined,
        delete: async () => undefined,
      },
    },
    config,
  ).sink as RecordSink;
}

function parseEs(raw: Record<string, unknown>): ElasticsearchExporterConfig {
  return elasticsearchExporterFactory.configSchema.parse(raw);
}

/**
 * The sealed batches of a running agent, as delivery hands them to sinks. Records already
 * released from the WAL are rebuilt from `lines` (the file exporter's copy).
 */
async function sealedBatches(agent: RunningAgent, lines?: string[]): Promise<SealedBatch[]> {
  const out: SealedBatch[] = [];
  for (let i = 0; i < agent.sealed.entryCount; i++) {
    const e = await agent.sealed.readEntry(i);
    if (!e) throw new Error(`no entry ${i}`);
    let records: StoredRecord[] = [];
    if (e.count > 0 && lines) {
      records = lines
        .slice(e.firstSeq, e.lastSeq + 1)
        .map((text, k) =>
          storedRecordOf(e.firstSeq + k, Buffer.from(leafHex(text), "hex"), Buffer.from(text)),
        );
    } else if (e.count > 0) {
      records = await agent.wal.read(e.firstSeq - 1, e.count, Infinity);
    }
    expect(records).toHaveLength(e.count);
    out.push({ ...e, records });
  }
  return out;
}

describe("elasticsearch exporter: records from the OTel SDK", () => {
  const tmp = makeTempDir("audit-es-sdk-");
  const fake = new FakeElasticsearch({ refreshIntervalMs: 0 });
  let s: Started;
  let fileLines: string[] = [];
  const COUNT = 60;

  beforeAll(async () => {
    await fake.start();
    s = await startEsAgent({ dir: tmp.path, endpoint: fake.url, file: true });
    await sendWithSdk(s.httpUrl, COUNT, "sdk");
    await waitDelivered(s.agent, COUNT);
    await waitFor(
      () => s.agent.deliveries.every((d) => d.deliveredThrough === COUNT - 1),
      10_000,
      "file delivery",
    );
    const [fileChain] = await readChains(fileSource(join(tmp.path, "out")));
    fileLines = fileChain?.records.map((r) => r.text) ?? [];
  });

  afterAll(async () => {
    await s?.agent.shutdown(5000);
    await fake.close();
    tmp.cleanup();
  });

  it("installs both index templates with the documented mapping", () => {
    const records = fake.templates.get(INDEX)?.body as Loose;
    expect(records.index_patterns).toEqual([INDEX]);
    expect(records.data_stream).toEqual({});
    expect(records.priority).toBe(200);
    const props = records.template.mappings.properties;
    expect(records.template.mappings.dynamic).toBe(false);
    expect(props.audit.properties.canonical).toEqual({
      type: "keyword",
      index: false,
      doc_values: false,
    });
    expect(props.audit.properties.seq).toEqual({ type: "long" });
    expect(props["@timestamp"]).toEqual({ type: "date_nanos" });
    expect(props.attributes.type).toBe("flattened");
    expect(props.body).toEqual({ type: "text" });
    const manifests = fake.templates.get(MANIFESTS)?.body as Loose;
    expect(manifests.index_patterns).toEqual([MANIFESTS]);
    expect(manifests.data_stream).toBeUndefined();
    expect(manifests.template.mappings.properties.audit.properties.manifest.index).toBe(false);
  });

  it("stores every record exactly once in the data stream, _id = leaf hash, canonical text byte-exact", async () => {
    expect([...fake.dataStreams.keys()]).toEqual([INDEX]);
    const docs = fake.documents(INDEX);
    expect(docs).toHaveLength(COUNT);
    expect(docs.every((d) => d.index.startsWith(`.ds-${INDEX}-`))).toBe(true);
    const seqs = bySeq(docs);
    expect([...seqs.keys()].sort((a, b) => a - b)).toEqual(
      Array.from({ length: COUNT }, (_, i) => i),
    );
    // The file exporter holds what the agent hashed; ES must hold the same text, byte for byte.
    const [fileChain] = await readChains(fileSource(join(tmp.path, "out")));
    expect(fileChain?.records).toHaveLength(COUNT);
    fileChain?.records.forEach((line, seq) => {
      const doc = (seqs.get(seq) as StoredDoc[])[0] as StoredDoc;
      expect(canonicalOf(doc)).toBe(line.text);
      expect(doc.id).toBe(leafHex(line.text));
      // The _source as received carries the text: JSON-decoding it gives the same bytes.
      const sent = (JSON.parse(doc.raw) as { audit: { canonical: string } }).audit.canonical;
      expect(Buffer.from(sent, "utf8").equals(Buffer.from(line.text, "utf8"))).toBe(true);
    });
    // Clean run: each record offered once, every item 201, no 409.
    const items = fake.requests
      .filter((r) => r.path.startsWith(`/${INDEX}/_bulk`))
      .flatMap((r) => r.items ?? []);
    expect(items).toHaveLength(COUNT);
    expect(new Set(items)).toEqual(new Set([201]));
  });

  it("derives the searchable fields from the record", () => {
    const seqs = bySeq(fake.documents(INDEX));
    const chainId = s.agent.chainId;
    for (const [seq, [doc]] of seqs) {
      const src = (doc as StoredDoc).source as Loose;
      const i = Number(/#(\d+):/.exec(src.body)?.[1]);
      expect(src.body).toBe(`sdk #${i}: user u-${i} changed a setting`);
      expect(src["@timestamp"]).toBe(
        `${new Date((T0 + i) * 1000).toISOString().slice(0, 19)}.123456789Z`,
      );
      expect(src.audit).toMatchObject({ chain_id: chainId, seq, leaf_hash: (doc as StoredDoc).id });
      expect(src.audit.received).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      expect(src.service).toEqual({ name: "es-test" });
      expect(src.severity).toEqual({ text: "WARN", number: 13 });
      expect(src.event).toEqual({ name: "audit.setting_changed" });
      expect(src.scope).toEqual({ name: "es.audit", version: "1.0.0" });
      // Flat keys (nested maps become dotted keys), int64 as exact decimal text.
      expect(src.attributes).toEqual({
        audit: true,
        "rec.tag": "sdk",
        "rec.idx": String(i),
        "user.name": "é😀",
        "http.method": "POST",
        "http.status": "200",
      });
      expect(src.resource.attributes).toMatchObject({
        "service.name": "es-test",
        "deployment.environment": "ci",
      });
    }
  });

  it("writes one manifest document per sealed batch, with its checkpoint, after the batch's records", async () => {
    const chainId = s.agent.chainId;
    const docs = fake.documents(MANIFESTS);
    expect(docs.every((d) => d.index === MANIFESTS)).toBe(true);
    expect(docs.map((d) => d.id).sort()).toEqual(
      Array.from({ length: s.agent.sealed.entryCount }, (_, i) => `${chainId}:${i}`).sort(),
    );
    for (const batch of await sealedBatches(s.agent, fileLines)) {
      const doc = docs.find((d) => d.id === `${chainId}:${batch.index}`) as StoredDoc;
      const audit = doc.source.audit as Record<string, unknown>;
      expect(audit.manifest).toBe(batch.manifest);
      expect(audit.checkpoint).toBe(batch.checkpoint);
      expect(audit).toMatchObject({
        chain_id: chainId,
        manifest_index: batch.index,
        first_seq: batch.firstSeq,
        last_seq: batch.lastSeq,
      });
      // Written after every record of its batch.
      const lastRecord = fake.documents(INDEX).find((d) => seqOf(d) === batch.lastSeq) as StoredDoc;
      expect(doc.seqNo).toBeGreaterThan(lastRecord.seqNo);
    }
    // Bodies were gzip-compressed NDJSON (compression: gzip is the default).
    const bulks = fake.requests.filter((r) => r.path.includes("/_bulk"));
    expect(bulks.length).toBeGreaterThan(0);
    expect(bulks.every((r) => r.gzip && r.status === 200)).toBe(true);
    expect(fake.internalErrors).toEqual([]);
  });

  it("verifies clean through a point in time: reader from the config, es: spec, CLI, and cross-checked with the file output", async () => {
    const before = fake.requests.length;
    const report = await verifySource(
      elasticsearchExporterFactory.reader?.(s.config) as never,
      s.trusted,
    );
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.chains).toEqual([
      expect.objectContaining({ chainId: s.agent.chainId, records: COUNT, lastSeq: COUNT - 1 }),
    ]);
    expect(report.chains[0]?.notes).toEqual([]);
    const used = fake.requests.slice(before);
    expect(
      used.filter(
        (r) => r.path.startsWith(`/${INDEX}/_pit`) || r.path.startsWith(`/${MANIFESTS}/_pit`),
      ),
    ).toHaveLength(2);
    expect(used.some((r) => r.method === "POST" && r.path.startsWith("/_search"))).toBe(true);
    expect(fake.pits.size).toBe(0); // closed after reading

    const fromSpec = elasticsearchSourceFromSpec(`${fake.url}/${INDEX}`);
    expect(fromSpec.description).toBe(`es:${fake.url}/${INDEX}`);
    expect((await verifySource(fromSpec, s.trusted)).ok).toBe(true);
    expect(await crossCheck(fromSpec, fileSource(join(tmp.path, "out")))).toEqual([]);

    // Asynchronously: the fake Elasticsearch answers from this very process.
    const cli = await runCli([
      "verify",
      "--source",
      `es:${fake.url}/${INDEX}`,
      "--trust",
      join(tmp.path, "keys", "signing.pub"),
    ]);
    expect(cli.stdout).toContain("OK: no findings");
    expect(cli.code).toBe(0);
  });

  it("reads with plain search_after (and says so) where the cluster has no point in time", async () => {
    fake.options.pit = false;
    try {
      const before = fake.requests.length;
      const report = await verifySource(
        elasticsearchSourceFromSpec(`${fake.url}/${INDEX}`),
        s.trusted,
      );
      expect(report.findings).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.chains[0]?.records).toBe(COUNT);
      expect(report.chains[0]?.notes.join("\n")).toMatch(
        /point in time is not available for "audit-logs".*plain search_after/,
      );
      expect(fake.requests.slice(before).some((r) => r.path.startsWith(`/${INDEX}/_search`))).toBe(
        true,
      );
    } finally {
      fake.options.pit = true;
    }
  });

  it("reads across several pages", async () => {
    const small = parseEs({ endpoint: fake.url, index: INDEX, read: { page_size: 7 } });
    const report = await verifySource(
      elasticsearchExporterFactory.reader?.(small) as never,
      s.trusted,
    );
    expect(report.ok).toBe(true);
    expect(report.chains[0]?.records).toBe(COUNT);
  });

  it("re-sending every batch adds nothing: each item answered 409 and counted as stored", async () => {
    const before = fake.documents().length;
    const sink = makeSink(s.config);
    await sink.open(s.agent.chainId);
    const from = fake.requests.length;
    for (const b of await sealedBatches(s.agent, fileLines)) await sink.write(b);
    await sink.close();
    expect(fake.documents().length).toBe(before);
    const items = fake.requests.slice(from).flatMap((r) => r.items ?? []);
    expect(items.length).toBe(COUNT + s.agent.sealed.entryCount);
    expect(new Set(items)).toEqual(new Set([409]));
    expect(fake.requests.slice(from).some((r) => r.path.startsWith(`/${MANIFESTS}/_doc/`))).toBe(
      true,
    );
    expect(
      (await verifySource(elasticsearchSourceFromSpec(`${fake.url}/${INDEX}`), s.trusted)).ok,
    ).toBe(true);
  });

  it("refuses to count a different manifest under the same _id as written", async () => {
    const [first] = await sealedBatches(s.agent, fileLines);
    const id = `${s.agent.chainId}:0`;
    const saved = fake.tamper(MANIFESTS, id, (src) => {
      (src.audit as Record<string, unknown>).checkpoint = "someone else's note\n";
    });
    const sink = makeSink(s.config);
    try {
      await sink.open(s.agent.chainId);
      await expect(sink.write(first as SealedBatch)).rejects.toThrow(PermanentExportError);
      await expect(sink.write(first as SealedBatch)).rejects.toThrow(
        /already holds a different manifest 0.*never overwrites/,
      );
    } finally {
      await sink.close();
      fake.restore(MANIFESTS, id, saved);
    }
  });

  it("reports a modified canonical text, a deleted document, an edited searchable field and a record inserted under another _id", async () => {
    const source = elasticsearchSourceFromSpec(`${fake.url}/${INDEX}`);
    const docs = bySeq(fake.documents(INDEX));
    const doc = (seq: number) => (docs.get(seq) as StoredDoc[])[0] as StoredDoc;
    const loc = (d: StoredDoc) => `${d.index}/_doc/${d.id}`;

    // 1. The canonical text of seq 10, changed.
    const d10 = doc(10);
    let saved = fake.tamper(d10.index, d10.id, (src) => {
      const a = src.audit as { canonical: string };
      a.canonical = a.canonical.replace("changed a setting", "changed nothing!!");
    });
    let report = await verifySource(source, s.trusted);
    expect(report.ok).toBe(false);
    expect(report.findings).toContainEqual(
      expect.objectContaining({ category: "modified", seq: 10, location: loc(d10) }),
    );
    fake.restore(d10.index, d10.id, saved);

    // 2. Seq 20, deleted.
    const d20 = doc(20);
    const removed = fake.remove(d20.index, d20.id);
    report = await verifySource(source, s.trusted);
    expect(report.findings).toContainEqual(
      expect.objectContaining({ category: "missing", seq: 20 }),
    );
    fake.restore(d20.index, d20.id, removed.raw);

    // 3. A searchable field of seq 5 edited, canonical text intact: only the reader can tell.
    const d5 = doc(5);
    saved = fake.tamper(d5.index, d5.id, (src) => {
      src.body = "nothing happened here";
    });
    report = await verifySource(source, s.trusted);
    expect(report.findings).toEqual([
      expect.objectContaining({
        category: "modified",
        seq: 5,
        location: loc(d5),
        detail: expect.stringMatching(/searchable fields \(body\)/),
      }),
    ]);
    fake.restore(d5.index, d5.id, saved);

    // 4. A different document claiming seq 3, under its own _id.
    const d3 = doc(3);
    const forged = JSON.parse(d3.raw) as { audit: { canonical: string; leaf_hash: string } };
    forged.audit.canonical = forged.audit.canonical.replace("changed a setting", "was never here");
    const forgedId = leafHex(forged.audit.canonical);
    forged.audit.leaf_hash = forgedId;
    fake.store(d3.index, forgedId, JSON.stringify(forged));
    report = await verifySource(source, s.trusted);
    expect(report.findings).toContainEqual(
      expect.objectContaining({
        category: "inserted",
        seq: 3,
        location: `${d3.index}/_doc/${forgedId}`,
      }),
    );
    fake.remove(d3.index, forgedId);

    // 5. A manifest removed.
    const m2 = fake.remove(MANIFESTS, `${s.agent.chainId}:2`);
    report = await verifySource(source, s.trusted);
    expect(report.findings).toContainEqual(
      expect.objectContaining({ category: "missing", manifest: 2 }),
    );
    fake.restore(MANIFESTS, m2.id, m2.raw);

    report = await verifySource(source, s.trusted);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
  });
});

describe("elasticsearch exporter: per-item results", () => {
  const dirs: { cleanup(): void }[] = [];
  const fakes: FakeElasticsearch[] = [];
  const agents: RunningAgent[] = [];

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.shutdown(3000);
    for (const f of fakes.splice(0)) await f.close();
    for (const d of dirs.splice(0)) d.cleanup();
  });

  async function setup(o: Partial<YamlOptions> = {}, fakeOptions: FakeEsOptions = {}) {
    const tmp = makeTempDir("audit-es-items-");
    dirs.push(tmp);
    const fake = new FakeElasticsearch(fakeOptions);
    fakes.push(fake);
    await fake.start();
    const s = await startEsAgent({ dir: tmp.path, endpoint: fake.url, ...o });
    agents.push(s.agent);
    return { tmp, fake, s };
  }

  it("retries rejected items, counts 409 as stored: mixed 201 / 409 / 429 results, no duplicate, no loss", async () => {
    const { fake, s } = await setup({ batchMaxRecords: 20 });
    // Every third record is rejected (429 es_rejected_execution_exception) the first time it
    // is offered, and the first bulk's answer is lost after it was applied: the re-send of
    // that bulk is answered 409 for what was stored and 201 for what had been rejected.
    fake.itemFailure = (item) =>
      item.target === INDEX &&
      item.attempt === 1 &&
      seqOf({ source: item.source } as StoredDoc) % 3 === 0
        ? {
            status: 429,
            type: "es_rejected_execution_exception",
            reason:
              "rejected execution of coordinating operation [shard_detail=[audit-logs][0][P], coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=1]",
          }
        : undefined;
    let dropped = false;
    fake.afterBulk = ({ path }) => {
      if (dropped || !path.startsWith(`/${INDEX}/`)) return undefined;
      dropped = true;
      return "drop";
    };
    const COUNT = 50;
    await sendWithSdk(s.httpUrl, COUNT, "mixed");
    await waitDelivered(s.agent, COUNT);
    const docs = fake.documents(INDEX);
    expect(docs).toHaveLength(COUNT);
    bySeq(docs);
    const answers = fake.requests
      .filter((r) => r.path.startsWith(`/${INDEX}/_bulk`) && r.items)
      .map((r) => new Set(r.items));
    expect(answers.some((set) => set.has(429) && set.has(201))).toBe(true);
    expect(answers.some((set) => set.has(409) && set.has(201))).toBe(true);
    // After a per-item rejection (answered, not lost) only the rejected items are offered again.
    const bulks = fake.requests.filter((r) => r.path.startsWith(`/${INDEX}/_bulk`) && r.items);
    let checked = 0;
    bulks.forEach((b, i) => {
      const rejected = (b.items ?? []).filter((st) => st === 429).length;
      if (i === 0 || rejected === 0) return; // the first answer was lost: all was re-sent
      expect(bulks[i + 1]?.items).toEqual(Array(rejected).fill(201));
      checked++;
    });
    expect(checked).toBeGreaterThan(0);
    const report = await verifySource(
      elasticsearchExporterFactory.reader?.(s.config) as never,
      s.trusted,
    );
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    expect(fake.internalErrors).toEqual([]);
  });

  it("stops on a mapping error naming the record, keeps the batch in the WAL, and delivers everything once fixed", async () => {
    const { tmp, fake, s } = await setup({ batchMaxRecords: 4 });
    fake.itemFailure = (item) =>
      (item.source.attributes as Record<string, unknown> | undefined)?.poison === true
        ? {
            status: 400,
            type: "mapper_parsing_exception",
            reason:
              "failed to parse field [attributes] of type [flattened] in document with id 'x'. Preview of field's value: 'true'",
          }
        : undefined;
    const COUNT = 12;
    await sendWithSdk(s.httpUrl, COUNT, "poison", { poisonAt: 6 });
    const d = delivery(s.agent);
    await waitFor(() => d.state === "failed", 10_000, "the exporter to stop");
    const entries = await Promise.all(
      Array.from({ length: s.agent.sealed.entryCount }, (_, i) => s.agent.sealed.readEntry(i)),
    );
    const failed = entries.find((b) => b.firstSeq <= 6 && b.lastSeq >= 6) as NonNullable<
      (typeof entries)[number]
    >;
    expect(d.lastError).toMatch(
      new RegExp(
        `Elasticsearch refused record seq 6 of batch ${failed.index} \\(_id [0-9a-f]{64}\\) in "audit-logs": HTTP 400 mapper_parsing_exception: failed to parse field \\[attributes\\].*the mapping of "audit-logs" does not accept the document.*stays in the write-ahead log`,
      ),
    );
    // Delivery stopped before the failed batch: nothing after it was sent, its manifest is
    // absent, and the WAL still holds every record from it on.
    expect(d.deliveredThrough).toBe(failed.firstSeq - 1);
    const stored = fake.documents(INDEX).map(seqOf);
    expect(stored).not.toContain(6);
    expect(Math.max(...stored)).toBeLessThanOrEqual(failed.lastSeq);
    expect(fake.documents(MANIFESTS).map((m) => m.id)).not.toContain(
      `${s.agent.chainId}:${failed.index}`,
    );
    const kept = await s.agent.wal.read(d.deliveredThrough, COUNT, Infinity);
    expect(kept.map((r) => r.seq)).toEqual(
      Array.from({ length: COUNT - failed.firstSeq }, (_, i) => failed.firstSeq + i),
    );

    // Fixed (here: the cluster accepts the document) and restarted: everything lands once.
    fake.itemFailure = null;
    await s.agent.shutdown(3000);
    agents.length = 0;
    const again = await startEsAgent({ dir: tmp.path, endpoint: fake.url, batchMaxRecords: 4 });
    agents.push(again.agent);
    await waitDelivered(again.agent, COUNT);
    expect(bySeq(fake.documents(INDEX)).size).toBe(COUNT);
    const report = await verifySource(
      elasticsearchExporterFactory.reader?.(again.config) as never,
      again.trusted,
    );
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it("treats 401 as permanent, naming the credential to fix; ApiKey auth works", async () => {
    const auth = {
      basic: { username: "writer", password: "right" },
      apiKey: Buffer.from("key-id:secret").toString("base64"),
    };
    const { fake, s } = await setup(
      { extra: "    auth:\n      basic:\n        username: writer\n        password: wrong\n" },
      { auth },
    );
    const d = delivery(s.agent);
    await waitFor(() => d.state === "failed", 10_000, "the exporter to stop");
    expect(d.lastError).toMatch(
      /installing index template "audit-logs".*HTTP 401 security_exception: unable to authenticate user \[writer\].*rejected the credentials: check auth.basic: the username "writer" or its password is wrong/,
    );
    expect(fake.requests.filter((r) => r.status === 401)).toHaveLength(1); // not retried

    // The same cluster with the API key: delivered, every request with Authorization: ApiKey.
    const { fake: fake2, s: s2 } = await setup(
      { extra: `    auth:\n      api_key: ${auth.apiKey}\n` },
      { auth },
    );
    await sendWithSdk(s2.httpUrl, 5, "apikey");
    await waitDelivered(s2.agent, 5);
    expect(fake2.requests.every((r) => r.authorization === `ApiKey ${auth.apiKey}`)).toBe(true);
    const reader = elasticsearchExporterFactory.reader?.(s2.config);
    expect((await verifySource(reader as never, s2.trusted)).ok).toBe(true);
    // A reader with a wrong key says so.
    const wrong = parseEs({
      endpoint: fake2.url,
      index: INDEX,
      auth: { api_key: Buffer.from("key-id:nope").toString("base64") },
    });
    await expect(readChains(await elasticsearchExporterFactory.reader!(wrong))).rejects.toThrow(
      /cannot read es:.*HTTP 401 security_exception.*check auth.api_key/,
    );
  });

  it("stops at the first write on a server that does not keep the _id of a create", async () => {
    const { fake, s } = await setup({}, { ignoresIds: true });
    await sendWithSdk(s.httpUrl, 3, "ignored-ids");
    const d = delivery(s.agent);
    await waitFor(() => d.state === "failed", 10_000, "the exporter to stop");
    expect(d.lastError).toMatch(
      /record seq 0 was sent with _id [0-9a-f]{64} and stored as "[^"]+": this server does not keep the _id of a create.*Supported servers/,
    );
    // One write, not retried: nothing else is stored twice.
    expect(fake.requests.filter((r) => r.path.includes("/_bulk"))).toHaveLength(1);
  });

  it("stops clearly when templates may not be installed (403), and writes without installing them when told", async () => {
    const fake = new FakeElasticsearch({ forbidTemplates: true });
    fakes.push(fake);
    await fake.start();
    const sink = makeSink(parseEs({ endpoint: fake.url, index: INDEX }));
    await expect(sink.open("c1")).rejects.toThrow(
      /installing index template "audit-logs".*HTTP 403 security_exception.*lack a privilege: installing index templates needs the cluster privilege manage_index_templates.*template.install: false/,
    );
    await sink.close();
    // Settings go to their own template: a records lifecycle policy never reaches manifests.
    const allowed = new FakeElasticsearch();
    fakes.push(allowed);
    await allowed.start();
    const sink1 = makeSink(
      parseEs({
        endpoint: allowed.url,
        index: INDEX,
        template: {
          settings: { "index.lifecycle.name": "audit-90d" },
          manifests_settings: { "index.number_of_replicas": 2 },
        },
      }),
    );
    await sink1.open("c1");
    await sink1.close();
    expect(allowed.templates.get(INDEX)?.body.template?.settings).toEqual({
      "index.lifecycle.name": "audit-90d",
    });
    expect(allowed.templates.get(MANIFESTS)?.body.template?.settings).toEqual({
      "index.number_of_replicas": 2,
    });
    const sink2 = makeSink(
      parseEs({ endpoint: fake.url, index: INDEX, template: { install: false } }),
    );
    await expect(sink2.open("c1")).resolves.toBeNull();
    await sink2.close();
    expect(fake.requests.filter((r) => r.path.startsWith("/_index_template"))).toHaveLength(1);
  });

  it("validates the config with messages that say what to write", () => {
    const problems = (raw: Record<string, unknown>) => {
      const r = elasticsearchExporterFactory.configSchema.safeParse(raw);
      return r.success ? [] : r.error.issues.map((i) => i.message);
    };
    expect(problems({ endpoint: "http://es:9200", auth: { api_key: "id:key" } })).toEqual([
      expect.stringMatching(/base64 "encoded" value.*not "id:api_key" itself/),
    ]);
    expect(problems({ endpoint: "http://es:9200", index: "Audit Logs" })[0]).toMatch(
      /lower case letters/,
    );
    expect(problems({ endpoint: "http://es:9200", mode: "stream" })[0]).toMatch(
      /"data_stream" or "index"/,
    );
    expect(
      problems({
        endpoint: "http://es:9200",
        auth: { api_key: "a2V5OnNlY3JldA==", basic: { username: "u", password: "p" } },
      })[0],
    ).toMatch(/one of basic, bearer_token or api_key/);
    expect(problems({ endpoint: "http://es:9200", index: "x", manifests_index: "x" })[0]).toMatch(
      /must differ/,
    );
    expect(problems({ endpoint: "http://es:9200/_bulk" })[0]).toMatch(/without \/_bulk/);
    const c = parseEs({ endpoint: "http://es:9200" });
    expect(c).toMatchObject({
      index: "audit-logs",
      manifests_index: "audit-logs-manifests",
      mode: "data_stream",
      compression: "gzip",
      template: { install: true, priority: 200 },
    });
    expect(() => elasticsearchSourceFromSpec("not a url")).toThrow(/es:URL\/INDEX/);
    expect(
      elasticsearchSourceFromSpec("https://u:p@es.example:9243/prefix/audit?manifests_index=m")
        .description,
    ).toBe("es:https://es.example:9243/prefix/audit");
  });

  it("maps odd records without a mapping error: huge values, deep maps, odd keys, a time out of range", async () => {
    const { fake, s } = await setup();
    const big = "é".repeat(20_000); // 40000 bytes: over Lucene's 32766-byte term limit
    let deep: Loose = { stringValue: "bottom" };
    for (let i = 0; i < 30; i++)
      deep = { kvlistValue: { values: [{ key: `k${i}`, value: deep }] } };
    const record = {
      timeUnixNano: "18446744073709551615", // beyond date_nanos: @timestamp falls back
      body: { kvlistValue: { values: [{ key: "a", value: { intValue: "9007199254740993" } }] } },
      attributes: [
        { key: "audit", value: { boolValue: true } },
        { key: "", value: { stringValue: "empty key" } },
        { key: "__proto__", value: { stringValue: "proto" } },
        { key: "deep", value: deep },
        { key: "big", value: { stringValue: big } },
        { key: "bytes", value: { bytesValue: "AAEC" } },
        { key: "n", value: { intValue: "9007199254740993" } },
        { key: "d", value: { doubleValue: 1.5 } },
        {
          key: "list",
          value: {
            arrayValue: {
              values: [
                { stringValue: "a" },
                { kvlistValue: { values: [{ key: "b", value: { intValue: "1" } }] } },
              ],
            },
          },
        },
      ],
    };
    const body = {
      resourceLogs: [
        {
          resource: { attributes: [{ key: "service.name", value: { stringValue: big } }] },
          scopeLogs: [{ scope: { name: "odd" }, logRecords: [record] }],
        },
      ],
    };
    const res = await httpRequest(s.httpUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    await res.body.text();
    expect(res.statusCode).toBe(200);
    await waitDelivered(s.agent, 1);
    const [doc] = fake.documents(INDEX);
    const src = doc?.source as Loose;
    expect(src["@timestamp"]).toBe(src.audit.received);
    expect(src.service.name).toBe(big); // in _source; ignore_above keeps it out of the index
    expect(src.body).toBe('{"a":"9007199254740993"}');
    const attrs = src.attributes as Loose;
    expect(Object.getOwnPropertyNames(attrs).sort()).toEqual(
      [
        "__proto__",
        "_empty_",
        "audit",
        "big",
        "bytes",
        "d",
        "list",
        "n",
        "deep.k29.k28.k27.k26.k25.k24.k23.k22",
      ].sort(),
    );
    expect(attrs._empty_).toBe("empty key");
    expect(Object.getOwnPropertyDescriptor(attrs, "__proto__")?.value).toBe("proto");
    expect(attrs.n).toBe("9007199254740993");
    expect(attrs.list).toEqual(["a", '{"b":"1"}']);
    const deepKey = Object.keys(attrs).find((k) => k.startsWith("deep.")) as string;
    expect(deepKey.split(".")).toHaveLength(9); // 8 levels of keys, then one JSON value
    expect(attrs[deepKey]).toMatch(/bottom/);
    const report = await verifySource(
      elasticsearchExporterFactory.reader?.(s.config) as never,
      s.trusted,
    );
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    expect(fake.internalErrors).toEqual([]);
  });

  it("index mode: a plain index, same guarantees", async () => {
    const { fake, s } = await setup({ extra: "    mode: index\n" });
    await sendWithSdk(s.httpUrl, 15, "index-mode");
    await waitDelivered(s.agent, 15);
    expect(fake.dataStreams.size).toBe(0);
    expect(fake.templates.get(INDEX)?.body.data_stream).toBeUndefined();
    expect(fake.documents(INDEX).every((d) => d.index === INDEX)).toBe(true);
    expect(bySeq(fake.documents(INDEX)).size).toBe(15);
    expect(
      (await verifySource(elasticsearchExporterFactory.reader?.(s.config) as never, s.trusted)).ok,
    ).toBe(true);
  });
});

describe("elasticsearch exporter: outages and rollover", () => {
  const dirs: { cleanup(): void }[] = [];
  const fakes: FakeElasticsearch[] = [];
  const agents: RunningAgent[] = [];

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.shutdown(3000);
    for (const f of fakes.splice(0)) await f.close();
    for (const d of dirs.splice(0)) d.cleanup();
  });

  it("rides out an outage of many retry intervals under load, then 429 with Retry-After and 503: every record once", async () => {
    const tmp = makeTempDir("audit-es-outage-");
    dirs.push(tmp);
    const fake = new FakeElasticsearch({ refreshIntervalMs: 200 });
    fakes.push(fake);
    await fake.start();
    const s = await startEsAgent({ dir: tmp.path, endpoint: fake.url, batchMaxRecords: 10 });
    agents.push(s.agent);
    const d = delivery(s.agent);
    const COUNT = 200;
    const sending = sendWithSdk(s.httpUrl, COUNT, "outage", { delayEveryMs: 20 });
    await waitFor(() => d.deliveredThrough >= 10, 10_000, "first deliveries");
    fake.down = true; // connections refused and cut: 1.5 s ≫ the 50–200 ms retry intervals
    const states = new Set<string>();
    const watch = setInterval(() => states.add(d.state), 10);
    await new Promise((r) => setTimeout(r, 1500));
    const during = fake.documents(INDEX).length;
    fake.failRequests({ path: /\/_bulk$/, status: 429, retryAfter: "1", times: 1 });
    fake.failRequests({ path: /\/_bulk$/, status: 503, times: 2 });
    fake.down = false;
    await sending;
    await waitDelivered(s.agent, COUNT, 30_000);
    clearInterval(watch);
    expect(states.has("retrying")).toBe(true);
    expect(d.state).toBe("running");
    expect(during).toBeLessThan(COUNT);
    expect(
      fake.requests.filter((r) => r.status === 429 || r.status === 503).map((r) => r.status),
    ).toEqual([429, 503, 503]);
    const docs = fake.documents(INDEX);
    expect(docs).toHaveLength(COUNT);
    expect(bySeq(docs).size).toBe(COUNT);
    const report = await verifySource(
      elasticsearchExporterFactory.reader?.(s.config) as never,
      s.trusted,
    );
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it("a batch re-sent across a rollover is stored twice under one _id: verify passes with a note; a different copy is still reported", async () => {
    const tmp = makeTempDir("audit-es-rollover-");
    dirs.push(tmp);
    const fake = new FakeElasticsearch();
    fakes.push(fake);
    await fake.start();
    const s = await startEsAgent({ dir: tmp.path, endpoint: fake.url, batchMaxRecords: 10 });
    agents.push(s.agent);
    // The third records bulk is applied, then the data stream rolls over and the answer is
    // lost: the retry lands in the new write index, where those _ids do not exist yet.
    let bulks = 0;
    let rolledTo = "";
    fake.afterBulk = ({ path }) => {
      if (!path.startsWith(`/${INDEX}/`) || ++bulks !== 3) return undefined;
      rolledTo = fake.rollover(INDEX);
      return "drop";
    };
    const COUNT = 40;
    await sendWithSdk(s.httpUrl, COUNT, "rollover");
    await waitDelivered(s.agent, COUNT);
    expect(fake.dataStreams.get(INDEX)?.backing).toHaveLength(2);
    const docs = fake.documents(INDEX);
    const copies = [...bySeq(docs, true)].filter(([, list]) => list.length > 1);
    expect(copies.length).toBeGreaterThan(0);
    for (const [, list] of copies) {
      expect(list.map((x) => x.id)).toEqual([list[0]?.id, list[0]?.id]);
      expect(new Set(list.map((x) => x.index)).size).toBe(2);
      expect(list.some((x) => x.index === rolledTo)).toBe(true);
    }
    const source = elasticsearchExporterFactory.reader?.(s.config);
    let report = await verifySource(source as never, s.trusted);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.chains[0]?.records).toBe(COUNT);
    expect(report.chains[0]?.notes.join("\n")).toMatch(
      new RegExp(
        `${copies.length} record\\(s\\) are stored twice under the same _id with identical text, counted once.*rollover`,
      ),
    );

    // A copy with the same _id but a different text is not collapsed: the verifier reports it.
    const [seq, [orig]] = copies[0] as [number, StoredDoc[]];
    const other = docs.find((x) => x.id === orig?.id && x.index !== orig?.index) as StoredDoc;
    const saved = fake.tamper(other.index, other.id, (src) => {
      const a = src.audit as { canonical: string };
      a.canonical = a.canonical.replace("changed a setting", "changed history");
    });
    report = await verifySource(source as never, s.trusted);
    expect(report.ok).toBe(false);
    expect(report.findings).toContainEqual(
      expect.objectContaining({
        category: "inserted",
        seq,
        location: `${other.index}/_doc/${other.id}`,
      }),
    );
    fake.restore(other.index, other.id, saved);
  });
});

describe("elasticsearch exporter: crash during delivery", () => {
  // Load time per iteration and request sizes are random: AUDIT_TEST_SEED replays them.
  const SEED = testSeed("test/integration/elasticsearch.test.ts");
  const tmp = makeTempDir("audit-es-crash-");
  const fake = new FakeElasticsearch({ refreshIntervalMs: 100 });
  const children: ChildAgent[] = [];
  const dispatcher = new HttpDispatcher({ connections: 8 });

  beforeAll(async () => {
    await fake.start();
  });

  afterAll(async () => {
    for (const c of children) await killAgent(c);
    await dispatcher.close();
    await fake.close();
    tmp.cleanup();
  });

  it(`SIGKILLed several times while delivering: every acknowledged record once, verify passes (seed ${SEED.hex})`, async () => {
    const yaml = esAgentYaml({ dir: tmp.path, endpoint: fake.url, batchMaxRecords: 5 });
    fake.delayMs = 15; // requests in flight when the kill lands
    const acked = new Set<string>();
    let n = 0;
    for (let iteration = 0; iteration < 4; iteration++) {
      const child = await spawnAgent(yaml, tmp.path);
      children.push(child);
      const until = Date.now() + 400 + SEED.rng.next() * 400;
      const senders = Array.from({ length: 3 }, async (_, s) => {
        // One stream per sender: its request sizes do not depend on the others' timing.
        const rng = prng(deriveSeed(SEED.seed, iteration, s));
        while (Date.now() < until) {
          const ids = Array.from({ length: 1 + rng.int(5) }, () => `r${n++}`);
          const ok = await postOtlp(child.httpUrl, ids, dispatcher);
          if (ok) for (const id of ids) acked.add(id);
        }
      });
      await Promise.all(senders);
      await killAgent(child);
    }
    expect(acked.size).toBeGreaterThan(20);
    fake.delayMs = 0;
    const child = await spawnAgent(yaml, tmp.path);
    children.push(child);
    await waitFor(
      () => {
        const docs = fake.documents(INDEX);
        const maxSeq = Math.max(-1, ...docs.map(seqOf));
        const sealed = Math.max(
          -1,
          ...fake
            .documents(MANIFESTS)
            .map((m) => Number((m.source.audit as { last_seq?: number }).last_seq ?? -1)),
        );
        const ids = new Set(docs.map((x) => (x.source.body as string).split(" ")[0]));
        return (
          [...acked].every((id) => ids.has(id)) && sealed === maxSeq && maxSeq + 1 === docs.length
        );
      },
      30_000,
      "every acknowledged record in Elasticsearch",
    );
    const docs = fake.documents(INDEX);
    const bodies = docs.map((x) => (x.source.body as string).split(" ")[0] as string);
    expect(bodies.length).toBe(new Set(bodies).size); // no record stored twice
    expect(bySeq(docs).size).toBe(docs.length);
    const report = await verifySource(
      elasticsearchSourceFromSpec(`${fake.url}/${INDEX}`),
      readTrustedKeys([join(tmp.path, "keys", "signing.pub")]),
    );
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.chains[0]?.records).toBe(docs.length);
    expect(fake.internalErrors).toEqual([]);
  });
});

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: "utf8" }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** One OTLP/JSON request of audit records whose bodies start with `ids`; true when acknowledged. */
async function postOtlp(url: string, ids: string[], dispatcher: HttpDispatcher): Promise<boolean> {
  const body = {
    resourceLogs: [
      {
        resource: { attributes: [{ key: "service.name", value: { stringValue: "crash" } }] },
        scopeLogs: [
          {
            scope: { name: "crash" },
            logRecords: ids.map((id) => ({
              timeUnixNano: `${Date.now()}000000`,
              body: { stringValue: `${id} acked?` },
              attributes: [{ key: "audit", value: { boolValue: true } }],
            })),
          },
        ],
      },
    ],
  };
  try {
    const res = await httpRequest(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      dispatcher,
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
    await res.body.text().catch(() => "");
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

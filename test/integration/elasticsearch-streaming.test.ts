import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import {
  type ElasticsearchExporterConfig,
  elasticsearchExporterConfigSchema,
} from "../../agent/exporters/elasticsearch/config.js";
import { indexTemplates } from "../../agent/exporters/elasticsearch/documents.js";
import { elasticsearchSourceFromSpec } from "../../agent/exporters/elasticsearch/factory.js";
import { ElasticsearchSource } from "../../agent/exporters/elasticsearch/reader.js";
import {
  type ChainData,
  type Finding,
  readChains,
  type StoredText,
} from "../../agent/exporters/source.js";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import type { PublicKey } from "../../agent/integrity/signing.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { verifySource } from "../../agent/verify/verify.js";
import { backendAgentYaml, deliverRecords, makeTempDir } from "../helpers/agent.js";
import { FakeElasticsearch, type StoredDoc } from "../helpers/fake-elasticsearch.js";

/**
 * The Elasticsearch reader streams (issue 12): chains listed with a paged composite
 * aggregation, each chain's documents searched with a point in time and search_after,
 * `read.page_size` hits a page. Read with pages of 2 or 3, three chains with rollover
 * copies and documents edited, stripped of fields or without text give exactly what one
 * page gives: chains, records, manifests, findings and notes, and the same verify report.
 * With `fromSeq`, only documents from that seq on are searched.
 */

const INDEX = "audit-logs";
const COUNT_A = 30;
const MANIFESTS = "audit-logs-manifests";

function esYaml(dir: string, endpoint: string, batch: number, extra = ""): string {
  return backendAgentYaml({
    dir,
    exporters: `  elasticsearch:
    endpoint: ${endpoint}
    index: ${INDEX}
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
${extra}`,
    exporterIds: ["elasticsearch"],
    batchMaxRecords: batch,
  });
}

/** Starts an agent, sends `count` audit records a few per request, waits for delivery, stops it. */
async function runAgent(
  dir: string,
  yaml: string,
  count: number,
): Promise<{ chainId: string; config: ElasticsearchExporterConfig }> {
  const parsed = parseConfig(yaml, join(dir, "agent.yaml"), {});
  const agent: RunningAgent = await startAgent(parsed, createLogger("silent"));
  try {
    await deliverRecords(agent, count, "delivery to Elasticsearch", true);
    return {
      chainId: agent.chainId,
      config: parsed.exporters[0]?.config as ElasticsearchExporterConfig,
    };
  } finally {
    await agent.shutdown(5000);
  }
}

const seqOf = (r: StoredText) => Number((JSON.parse(r.text) as { seq: string }).seq);

describe("elasticsearch reader: streaming pages", () => {
  const dirs: ReturnType<typeof makeTempDir>[] = [];
  const fake = new FakeElasticsearch();
  let trusted: PublicKey[];
  let chainA = "";
  let base: ElasticsearchExporterConfig;
  /** Chain A's documents changed behind the agent's back, by seq. */
  const changed = new Map<number, StoredDoc>();

  const source = (pageSize: number) =>
    new ElasticsearchSource(
      elasticsearchExporterConfigSchema.parse({
        endpoint: base.endpoint,
        index: INDEX,
        read: { page_size: pageSize },
      }),
    );

  beforeAll(async () => {
    await fake.start();
    const pubs: string[] = [];
    const chains: string[] = [];
    for (const [count, batch] of [
      [COUNT_A, 4],
      [7, 3],
      [5, 2],
    ] as const) {
      const dir = makeTempDir("audit-es-stream-");
      dirs.push(dir);
      // Chain A: its third records bulk is stored, then the data stream rolls over and the
      // answer is lost: the retry stores those records again in the new backing index.
      let bulks = 0;
      fake.afterBulk =
        chains.length > 0
          ? null
          : ({ path }) => {
              if (!path.startsWith(`/${INDEX}/`) || ++bulks !== 3) return undefined;
              fake.rollover(INDEX);
              return "drop";
            };
      const { chainId, config } = await runAgent(
        dir.path,
        esYaml(dir.path, fake.url, batch),
        count,
      );
      chains.push(chainId);
      base = config;
      pubs.push(join(dir.path, "keys", "signing.pub"));
    }
    fake.afterBulk = null;
    trusted = readTrustedKeys(pubs);
    chainA = chains[0] as string;

    // Chain A's documents by seq (the rolled-over batch has two copies of each).
    const bySeq = new Map<number, StoredDoc[]>();
    for (const d of fake.documents(INDEX)) {
      const audit = d.source.audit as { chain_id?: string; seq: number };
      if (audit.chain_id === chainA) bySeq.set(audit.seq, [...(bySeq.get(audit.seq) ?? []), d]);
    }
    expect([...bySeq.values()].some((list) => list.length === 2)).toBe(true);
    // Each change on a document with one copy and no copies next to it, a few seqs apart.
    let next = 1;
    const edit = (
      change: (audit: Record<string, unknown>, src: Record<string, unknown>) => void,
    ) => {
      for (let seq = next; seq < COUNT_A - 4; seq++) {
        if ([-1, 0, 1, 2, 3].some((k) => bySeq.get(seq + k)?.length !== 1 && seq + k >= 0))
          continue;
        const d = bySeq.get(seq)![0]!;
        fake.tamper(d.index, d.id, (src) => change(src.audit as Record<string, unknown>, src));
        changed.set(seq, d);
        next = seq + 4;
        return;
      }
      throw new Error("no document left to change");
    };
    // A searchable field edited; a seq field moved on past the next record; a seq field
    // removed (it sorts first); a chain id field removed (only its text says which chain).
    edit((_, src) => (src.body = "nothing happened here"));
    edit((audit) => (audit.seq = (audit.seq as number) + 2));
    edit((audit) => delete audit.seq);
    edit((audit) => delete audit.chain_id);
    // A document the agent did not write: no canonical text.
    const some = bySeq.get(0)![0]!;
    fake.store(some.index, "no-text", JSON.stringify({ audit: { chain_id: chainA, seq: 4 } }));
  });

  afterAll(async () => {
    await fake.close();
    for (const d of dirs) d.cleanup();
  });

  it("reads the same chains, records, manifests, findings and notes with pages of 2 and 3 hits as with one page", async () => {
    let from = fake.requests.length;
    const whole = await readChains(source(1000));
    const aggregations = (since: number) =>
      fake.requests.slice(since).filter((r) => r.path.startsWith(`/${MANIFESTS}/_search`)).length;
    expect(aggregations(from)).toBe(1);
    expect(whole).toHaveLength(3);
    const a = whole.find((c) => c.chainId === chainA) as ChainData;
    expect(a.records.map(seqOf)).toEqual(Array.from({ length: COUNT_A }, (_, i) => i));
    expect(a.findings.map((f) => f.category).sort()).toEqual([
      "malformed",
      "modified",
      "modified",
      "modified",
      "modified",
    ]);
    expect(a.notes.join("\n")).toMatch(/record\(s\) are stored twice under the same _id/);

    for (const pageSize of [2, 3]) {
      from = fake.requests.length;
      expect(await readChains(source(pageSize)), `page_size ${pageSize}`).toEqual(whole);
      // Three chains: the composite aggregation took two pages.
      expect(aggregations(from)).toBe(2);
      expect(fake.internalErrors).toEqual([]);
    }
    const one = await verifySource(source(1000), trusted);
    expect(one.ok).toBe(false); // the reader's findings
    expect(await verifySource(source(2), trusted)).toEqual(one);
    expect(fake.pits.size).toBe(0);
  });

  it("reads the same without a point in time (pages of 3: ties are broken by leaf hash, so the moved document may lie two places late)", async () => {
    fake.options.pit = false;
    try {
      const whole = await readChains(source(1000));
      const a = whole.find((c) => c.chainId === chainA) as ChainData;
      expect(a.records.map(seqOf)).toEqual(Array.from({ length: COUNT_A }, (_, i) => i));
      expect(await readChains(source(3))).toEqual(whole);
      expect(whole[0]?.notes.join("\n")).toMatch(/point in time is not available/);
    } finally {
      fake.options.pit = true;
    }
  });

  it("with fromSeq, hands on only the documents from that seq on (and those without a seq field)", async () => {
    const whole = (await readChains(source(1000))).find((c) => c.chainId === chainA)!;
    const [, , noSeq, last] = [...changed.keys()] as number[];
    const fromSeq = (last as number) + 2;
    expect(fromSeq).toBeLessThan(COUNT_A);
    for (const pageSize of [2, 1000]) {
      const read: StoredText[] = [];
      const findings: Finding[] = [];
      for await (const chain of source(pageSize).chains()) {
        if (chain.chainId !== chainA) continue;
        const problems = { finding: (f: Finding) => findings.push(f), note: () => {} };
        for await (const page of chain.records(problems, fromSeq)) read.push(...page);
      }
      expect(read).toEqual(whole.records.filter((r) => seqOf(r) >= fromSeq || seqOf(r) === noSeq));
      // The edited documents before fromSeq were not read, except the one without a seq field.
      expect(findings.map((f) => f.seq)).toEqual([noSeq]);
    }
  });

  it("takes ?page_size=N on verify --source and says what is wrong with a bad one", async () => {
    const whole = await readChains(source(1000));
    expect(
      await readChains(elasticsearchSourceFromSpec(`${fake.url}/${INDEX}?page_size=2`)),
    ).toEqual(whole);
    expect(() => elasticsearchSourceFromSpec(`${fake.url}/${INDEX}?page_size=20000`)).toThrow(
      /read.page_size must be at most 10000/,
    );
    expect(() => elasticsearchSourceFromSpec(`${fake.url}/${INDEX}?page_size=0`)).toThrow(
      /read.page_size must be at least 1/,
    );
    expect(() => elasticsearchSourceFromSpec(`${fake.url}/${INDEX}?page_size=ten`)).toThrow(
      /page_size must be a whole number/,
    );
  });
});

describe("elasticsearch reader: chain ids mapped as text", () => {
  it("lists chains on the keyword sub-field where audit.chain_id is text (a dynamic mapping)", async () => {
    const fake = new FakeElasticsearch();
    await fake.start();
    const dir = makeTempDir("audit-es-text-");
    try {
      // Templates as the exporter's, but with chain ids as text plus a keyword sub-field.
      const config = elasticsearchExporterConfigSchema.parse({ endpoint: fake.url, index: INDEX });
      for (const t of indexTemplates(config)) {
        const body = JSON.parse(JSON.stringify(t.body)) as {
          template: {
            mappings: { properties: { audit: { properties: Record<string, unknown> } } };
          };
        };
        body.template.mappings.properties.audit.properties.chain_id = {
          type: "text",
          fields: { keyword: { type: "keyword", ignore_above: 256 } },
        };
        const res = await fetch(`${fake.url}/_index_template/${t.name}`, {
          method: "PUT",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        expect(res.status).toBe(200);
      }
      const { chainId } = await runAgent(
        dir.path,
        esYaml(dir.path, fake.url, 3, "    template:\n      install: false\n"),
        10,
      );
      const from = fake.requests.length;
      const read = (pageSize: number) =>
        new ElasticsearchSource(
          elasticsearchExporterConfigSchema.parse({
            endpoint: fake.url,
            index: INDEX,
            read: { page_size: pageSize },
          }),
        );
      const report = await verifySource(
        read(1000),
        readTrustedKeys([join(dir.path, "keys", "signing.pub")]),
      );
      expect(report.findings).toEqual([]);
      expect(report.chains.map((c) => [c.chainId, c.records])).toEqual([[chainId, 10]]);
      // The aggregation on the text field was refused, then made on audit.chain_id.keyword.
      expect(
        fake.requests
          .slice(from)
          .filter((r) => r.status === 400 && r.path.startsWith(`/${MANIFESTS}/_search`)),
      ).toHaveLength(1);
      expect(await readChains(read(2))).toEqual(await readChains(read(1000)));
    } finally {
      await fake.close();
      dir.cleanup();
    }
  });
});

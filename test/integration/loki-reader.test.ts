import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { lokiSourceFromSpec } from "../../agent/exporters/loki/factory.js";
import { type ChainData, type ReadProblems, readChains } from "../../agent/exporters/source.js";
import type { RunningAgent } from "../../agent/service/agent.js";
import { makeTempDir, waitFor } from "../helpers/agent.js";
import { type FakeLoki, type StoredEntry, startFakeLoki } from "../helpers/fake-loki.js";
import {
  type PushStream,
  pushToLoki,
  RECORDS,
  type RecordLine,
  recordEntry,
  sendRecords,
  startLokiAgent,
  verifyLoki,
} from "../helpers/loki.js";
import { prng } from "../helpers/prng.js";

/**
 * The Loki reader reads every entry, once, in storage order, whatever Loki's stream
 * sharding and limit semantics (agent/exporters/loki/windows.ts). The in-test Loki shards
 * busy streams (`__stream_shard__`) and answers a limit-N query over several streams the
 * way Loki's frontend merges them, so a reader that pages with `limit` and continues from
 * the last timestamp of a full page skips entries here as it does against Loki 3.6 (the
 * reader before this one lost 5–17 entries a run there, and loses hundreds here).
 */

const PAGE_SIZES = [1000, 777, 500, 100];
const MINUTE_NS = 60_000_000_000n;

function seqOf(line: string): number {
  return Number((JSON.parse(line) as RecordLine).seq);
}

/** How `read` differs from `expected` (lines): lost, read twice, out of order. */
function compare(read: readonly string[], expected: readonly string[]) {
  const want = new Set(expected);
  const seen = new Map<string, number>();
  for (const line of read) seen.set(line, (seen.get(line) ?? 0) + 1);
  return {
    missing: expected.filter((l) => !seen.has(l)).length,
    doubled: [...seen.values()].filter((n) => n > 1).length,
    foreign: read.filter((l) => !want.has(l)).length,
    outOfOrder: read.filter((l, i) => i > 0 && seqOf(l) < seqOf(read[i - 1] as string)).length,
  };
}

describe("Loki reader: a sharded records stream", () => {
  const COUNT = 6000;
  const lines: string[] = [];
  let loki: FakeLoki;

  beforeAll(async () => {
    // Loki 3 shards a stream pushed faster than shard_streams.desired_rate (1536KB/s); a
    // low rate over a long window shards these pushes whatever the test machine's speed.
    loki = await startFakeLoki({
      shardStreams: { desiredRateBytes: 400_000, rateWindowMs: 600_000 },
    });
    const rng = prng(0x10c1);
    const base = BigInt(Date.now()) * 1_000_000n - 2n * MINUTE_NS;
    for (let push = 0; push < COUNT / 250; push++) {
      const streams = new Map<string, PushStream>();
      for (let i = 0; i < 250; i++) {
        const seq = push * 250 + i;
        const { line, metadata } = recordEntry(
          "c1",
          seq,
          `event ${seq} ${"x".repeat(rng.int(600))}`,
        );
        lines.push(line);
        // Two resource streams, as labels.resource_attributes makes them.
        const service = rng.chance(0.75) ? "billing" : "auth";
        const labels = { ...RECORDS, chain_id: "c1", env: "prod", service_name: service };
        const stream = streams.get(service) ?? { labels, values: [] };
        stream.values.push([base + BigInt(push) * 1_000_000n + BigInt(i), line, metadata]);
        streams.set(service, stream);
      }
      await pushToLoki(loki.url, [...streams.values()]);
    }
  });

  afterAll(async () => {
    await loki?.stop();
  });

  it("the in-test Loki shards the stream and answers limit-N queries as Loki merges them", async () => {
    const shards = loki.streams().filter((l) => l.__stream_shard__ !== undefined);
    expect(shards.length).toBeGreaterThan(4);
    expect(new Set(shards.map((l) => l.service_name))).toEqual(new Set(["billing", "auth"]));
    // The first push of a stream is never sharded: the unsharded streams hold entries too.
    expect(loki.streams().filter((l) => l.__stream_shard__ === undefined)).toHaveLength(2);

    // A full page over the chain's streams is not the first 1000 entries in time.
    const all = loki.entries({ chain_id: "c1" });
    const params = new URLSearchParams({
      query: '{chain_id="c1",audit_stream="records"}',
      start: String(all[0]!.ts),
      end: String(all[all.length - 1]!.ts + 1n),
      limit: "1000",
      direction: "forward",
    });
    const res = await fetch(`${loki.url}/loki/api/v1/query_range?${params}`);
    const body = (await res.json()) as { data: { result: Array<{ values: string[][] }> } };
    const got = new Set(body.data.result.flatMap((s) => s.values.map((v) => v[1])));
    expect(got.size).toBe(1000);
    const last = body.data.result
      .flatMap((s) => s.values.map((v) => BigInt(v[0]!)))
      .reduce((m, t) => (t > m ? t : m));
    const skipped = all.filter((e) => e.ts < last && !got.has(e.line));
    expect(skipped.length).toBeGreaterThan(0);
  });

  it.each(PAGE_SIZES)(
    "page_size %i: every record once, in storage order, each query complete by its own answer",
    async (pageSize) => {
      const before = loki.requests.length;
      const [chain] = await readChains(
        lokiSourceFromSpec(`${loki.url}?chain=c1&since=1h&page_size=${pageSize}`),
      );
      const read = chain!.records.map((r) => r.text);
      expect(compare(read, lines)).toEqual({ missing: 0, doubled: 0, foreign: 0, outOfOrder: 0 });
      expect(read).toEqual(lines);
      expect(chain!.findings).toEqual([]);
      // Locations name the shard an entry is in.
      expect(chain!.records.some((r) => /__stream_shard__="\d+"/.test(r.location))).toBe(true);
      const queries = loki.requests
        .slice(before)
        .filter((r) => r.path.startsWith("/loki/api/v1/query_range"));
      for (const q of queries) {
        const p = new URL(q.path, "http://x").searchParams;
        expect(p.get("limit")).toBe(String(pageSize));
        expect(p.get("direction")).toBe("forward");
        expect(q.status).toBe(200);
      }
    },
  );

  it("records(problems, fromSeq) skips what lies wholly before fromSeq, and hands over every later record once", async () => {
    const FROM = 4500;
    const source = lokiSourceFromSpec(`${loki.url}?chain=c1&since=1h`);
    const problems: ReadProblems = { finding: () => {}, note: () => {} };
    const read: string[] = [];
    for await (const chain of source.chains())
      for await (const page of chain.records(problems, FROM)) read.push(...page.map((r) => r.text));
    expect(read.filter((l) => seqOf(l) >= FROM)).toEqual(lines.slice(FROM));
    // With seq metadata the reader can tell which windows hold only earlier records.
    expect(read.filter((l) => seqOf(l) < FROM).length).toBeLessThan(250);
  });

  it("a reader stopped early (a spot check) leaves nothing running", async () => {
    const source = lokiSourceFromSpec(`${loki.url}?chain=c1&since=1h&page_size=500`);
    const problems: ReadProblems = { finding: () => {}, note: () => {} };
    let first: string | undefined;
    for await (const chain of source.chains()) {
      for await (const page of chain.records(problems)) {
        first = page[0]?.text;
        break;
      }
    }
    expect(first).toBe(lines[0]);
    const before = loki.requests.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(loki.requests.length).toBe(before);
  });
});

describe("Loki reader: timestamps, sizes and a Loki without pipelines", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });
  async function fake(options: Parameters<typeof startFakeLoki>[0] = {}): Promise<FakeLoki> {
    const loki = await startFakeLoki(options);
    cleanups.push(() => loki.stop());
    return loki;
  }
  const labels = (service: string, shard?: number) => ({
    chain_id: "c1",
    audit_stream: "records",
    service_name: service,
    ...(shard === undefined ? {} : { __stream_shard__: String(shard) }),
  });

  it("entries sharing a timestamp across shards and streams, at the cuts of full pages, are each read once", async () => {
    const loki = await fake();
    const base = BigInt(Date.now()) * 1_000_000n - MINUTE_NS;
    const streams = [labels("billing", 0), labels("billing", 1), labels("auth")];
    const stored: Array<StoredEntry & { key: string }> = [];
    const put = (l: Record<string, string>, ts: bigint, line: string) => {
      loki.insertEntry(l, { ts, line, metadata: {} });
      stored.push({ ts, line, metadata: {}, key: JSON.stringify(l) });
    };
    // Every stream has entries at the same 20 timestamps; a third one at +10 in shard 0.
    for (const l of streams)
      for (let i = 0; i < 20; i++) put(l, base + BigInt(i), `${JSON.stringify(l)} #${i}`);
    put(streams[0]!, base + 10n, "shard 0, second at +10");
    put(streams[0]!, base + 10n, "shard 0, third at +10");
    const [chain] = await readChains(
      lokiSourceFromSpec(`${loki.url}?chain=c1&since=1h&page_size=3`),
    );
    const read = chain!.records.map((r) => r.text);
    expect(read.slice().sort()).toEqual(stored.map((e) => e.line).sort());
    const times = chain!.records.map((r) => BigInt(r.location.split(" @ ")[1]!));
    for (let i = 1; i < times.length; i++) expect(times[i]! >= times[i - 1]!).toBe(true);
    // Three at one nanosecond of one stream fill a page of three: said, and still read.
    expect(chain!.notes.join("\n")).toMatch(
      /3 or more entries of the records stream \{.*__stream_shard__="0".*\} share timestamp \d+/,
    );
  });

  async function bigEntries(loki: FakeLoki, count: number): Promise<string[]> {
    const base = BigInt(Date.now()) * 1_000_000n - MINUTE_NS;
    const lines: string[] = [];
    for (let seq = 0; seq < count; seq++) {
      const { line, metadata } = recordEntry("c1", seq, `${seq} ${"z".repeat(300 * 1024)}`);
      lines.push(line);
      loki.insertEntry(labels("billing"), { ts: base + BigInt(seq), line, metadata });
    }
    return lines;
  }

  it("entries of 300 KiB: with the default page_size every answer stays under Loki's 4 MiB message limit", async () => {
    const loki = await fake();
    const lines = await bigEntries(loki, 30);
    // A page larger than the message limit fails, as it does between Loki's querier and
    // frontend (where real Loki leaves the client waiting; the fake answers).
    const params = new URLSearchParams({
      query: '{chain_id="c1"}',
      start: String(BigInt(Date.now() - 3_600_000) * 1_000_000n),
      limit: "5000",
      direction: "forward",
    });
    const res = await fetch(`${loki.url}/loki/api/v1/query_range?${params}`);
    expect(res.status).toBe(500);
    expect(await res.text()).toMatch(/larger than max \(\d+ vs\. 4194304\)/);

    const before = loki.requests.length;
    const [chain] = await readChains(lokiSourceFromSpec(`${loki.url}?chain=c1&since=1h`));
    expect(chain!.records.map((r) => r.text)).toEqual(lines);
    expect(chain!.findings).toEqual([]);
    const queries = loki.requests.slice(before).filter((r) => r.path.includes("query_range"));
    expect(queries.every((q) => q.status === 200)).toBe(true);
    expect(
      queries.every((q) => new URL(q.path, "http://x").searchParams.get("limit") === "5000"),
    ).toBe(true);
  });

  it("a Loki that refuses the size probe is read without it: pages too large are split, nothing is lost", async () => {
    const loki = await fake({
      pipelines: false,
      shardStreams: { desiredRateBytes: 50_000, rateWindowMs: 600_000 },
    });
    const lines = await bigEntries(loki, 30);
    const small: string[] = [];
    const base = BigInt(Date.now()) * 1_000_000n - MINUTE_NS / 2n;
    for (let push = 0; push < 8; push++) {
      const values: PushStream["values"] = [];
      for (let i = 0; i < 100; i++) {
        const seq = 30 + push * 100 + i;
        const { line, metadata } = recordEntry("c1", seq, `small ${seq} ${"y".repeat(200)}`);
        small.push(line);
        values.push([base + BigInt(push) * 1_000_000n + BigInt(i), line, metadata]);
      }
      await pushToLoki(loki.url, [{ labels: labels("auth"), values }]);
    }
    expect(loki.streams().some((l) => l.__stream_shard__ !== undefined)).toBe(true);
    const [chain] = await readChains(
      lokiSourceFromSpec(`${loki.url}?chain=c1&since=1h&page_size=100`),
    );
    expect(
      compare(
        chain!.records.map((r) => r.text),
        [...lines, ...small],
      ),
    ).toEqual({
      missing: 0,
      doubled: 0,
      foreign: 0,
      outOfOrder: 0,
    });
    expect(chain!.notes.join("\n")).toMatch(/did not answer the size probe/);
    expect(loki.requests.some((r) => r.status === 500 && r.path.includes("query_range"))).toBe(
      true,
    );
  });
});

describe("Loki reader: agent → sharded Loki → verify", () => {
  const tmp = makeTempDir("audit-agent-loki-reader-");
  const COUNT = 3000;
  let loki: FakeLoki;
  let agent: RunningAgent;

  beforeAll(async () => {
    loki = await startFakeLoki({
      shardStreams: { desiredRateBytes: 150_000, rateWindowMs: 600_000 },
    });
    const started = await startLokiAgent({ dir: tmp.path, url: loki.url, maxRecords: 200 });
    agent = started.agent;
    await sendRecords(started.url, COUNT);
    await waitFor(
      () => agent.deliveries[0]?.deliveredThrough === COUNT - 1,
      30_000,
      "delivery to Loki",
    );
  });

  afterAll(async () => {
    await agent?.shutdown(2000);
    await loki?.stop();
    tmp.cleanup();
  });

  it.each(PAGE_SIZES)("verify passes with page_size %i", async (pageSize) => {
    expect(loki.streams().some((l) => l.__stream_shard__ !== undefined)).toBe(true);
    const report = await verifyLoki(
      lokiSourceFromSpec(`${loki.url}?page_size=${pageSize}`),
      tmp.path,
    );
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.chains[0]!.records).toBe(COUNT);
  });
});

describe("verify --source loki:URL options", () => {
  it("takes page_size, window, since, chain and tenant; refuses a bad page_size", async () => {
    const loki = await startFakeLoki({ multiTenant: true });
    try {
      const base = BigInt(Date.now()) * 1_000_000n - MINUTE_NS;
      const { line, metadata } = recordEntry("c9", 0, "only");
      loki.insertEntry(
        { chain_id: "c9", audit_stream: "records" },
        { ts: base, line, metadata },
        "team-x",
      );
      const chains: ChainData[] = await readChains(
        lokiSourceFromSpec(`${loki.url}?tenant=team-x&chain=c9&since=2h&window=30m&page_size=7`),
      );
      expect(chains.map((c) => [c.chainId, c.records.length])).toEqual([["c9", 1]]);
      expect(chains[0]!.notes.join(" ")).toMatch(/read\.since 2h\) in 6 window\(s\)/);
      const queries = loki.requests.filter((r) => r.path.includes("query_range"));
      expect(queries.length).toBeGreaterThan(0);
      for (const q of queries) {
        const p = new URL(q.path, "http://x").searchParams;
        expect(p.get("limit")).toBe("7");
        expect(q.headers["x-scope-orgid"]).toBe("team-x");
        expect(BigInt(p.get("end")!) - BigInt(p.get("start")!)).toBeLessThanOrEqual(
          1_800_000_000_000n,
        );
      }
    } finally {
      await loki.stop();
    }
    expect(() => lokiSourceFromSpec("http://h:3100?page_size=lots")).toThrow(
      /page_size "lots" is not a whole number/,
    );
    expect(() => lokiSourceFromSpec("http://h:3100?page_size=20000")).toThrow(/at most 10000/);
  });
});

import { createHash } from "node:crypto";
import { AgentError } from "../../common/errors.js";
import {
  type AuditSource,
  addManifestLine,
  type ChainData,
  type ChainReader,
  chainReaderOf,
} from "../source.js";
import { HttpClient, type HttpResponse } from "../http/client.js";
import type { HttpClientConfig } from "../http/config.js";
import { type LokiReadConfig, sinceEpochMs } from "./config.js";

/**
 * Reads back what the Loki exporter wrote (docs/exporter-loki.md §Reading): the chains
 * from GET /loki/api/v1/label/chain_id/values (or the configured one), then per chain and
 * stream GET /loki/api/v1/query_range, direction=forward, over time windows no wider than
 * Loki's max_query_length, paging past the entry limit by starting the next page at the
 * last timestamp received and skipping the entries already seen at it.
 */

export interface LokiReaderOptions {
  http: HttpClientConfig;
  tenantId?: string;
  /** Label pairs every stream of interest carries (the config's static labels). */
  match: Record<string, string>;
  read: LokiReadConfig;
}

interface Entry {
  ts: bigint;
  line: string;
  /** The stream's own labels (metadata removed when Loki merged it in). */
  labels: Record<string, string>;
  metadata: Record<string, string> | null;
}

const METADATA_KEYS = new Set(["seq", "hash", "batch"]);
const HOUR_NS = 3_600_000_000_000n;

export class LokiSource implements AuditSource {
  readonly description: string;

  constructor(private readonly options: LokiReaderOptions) {
    this.description = `loki:${options.http.endpoint}${options.tenantId ? ` (tenant ${options.tenantId})` : ""}`;
  }

  /** Each chain is read whole, then handed on as one page (see chainReaderOf). */
  async *chains(): AsyncIterable<ChainReader> {
    for (const data of await this.loadChains()) yield chainReaderOf(data);
  }

  private async loadChains(): Promise<ChainData[]> {
    const client = new HttpClient(this.options.http);
    try {
      return await new LokiRead(client, this.options).chains();
    } finally {
      await client.close();
    }
  }
}

class LokiRead {
  private limit: number;
  private readonly notes: string[] = [];
  private readonly headers: Record<string, string> = {
    // Loki 3: structured metadata as the third element of each value, not merged into labels.
    "x-loki-response-encoding-flags": "categorize-labels",
  };

  constructor(
    private readonly client: HttpClient,
    private readonly options: LokiReaderOptions,
  ) {
    this.limit = options.read.page_size;
    if (options.tenantId) this.headers["x-scope-orgid"] = options.tenantId;
  }

  async chains(): Promise<ChainData[]> {
    const now = Date.now();
    const start = BigInt(Math.floor(sinceEpochMs(this.options.read.since, now))) * 1_000_000n;
    // Loki refuses entries more than its creation_grace_period (10m) ahead; an hour is ample.
    const end = BigInt(now) * 1_000_000n + HOUR_NS;
    const width = BigInt(Math.max(1, Math.floor(this.options.read.query_window))) * 1_000_000n;
    const windows: [bigint, bigint][] = [];
    if ((end - start) / width > 20_000n)
      throw unreadable(
        `read.since ${this.options.read.since} in windows of ${this.options.read.query_window} ms makes more than 20000 queries per stream: widen read.query_window (up to Loki's max_query_length)`,
      );
    for (let s = start; s < end; s += width) windows.push([s, s + width < end ? s + width : end]);
    this.notes.push(
      `read entries from ${new Date(Number(start / 1_000_000n)).toISOString()} on (read.since ${this.options.read.since}) in ${windows.length} window(s)`,
    );

    const configured = this.options.read.chain_id;
    const found = new Map<string, [bigint, bigint][]>();
    if (configured) found.set(configured, windows);
    else {
      for (const w of windows) {
        for (const id of await this.chainIds(w)) {
          const list = found.get(id);
          if (list) list.push(w);
          else found.set(id, [w]);
        }
      }
    }
    const out: ChainData[] = [];
    for (const id of [...found.keys()].sort()) {
      const inWindows = found.get(id) as [bigint, bigint][];
      out.push(await this.chain(id, inWindows));
    }
    return out;
  }

  private async chainIds([start, end]: [bigint, bigint]): Promise<string[]> {
    const matchers = [
      `audit_stream=~"records|manifests"`,
      ...Object.entries(this.options.match).map(([k, v]) => `${k}=${JSON.stringify(v)}`),
    ];
    const params = new URLSearchParams({
      start: String(start),
      end: String(end),
      query: `{${matchers.join(",")}}`,
    });
    const res = await this.get(`/loki/api/v1/label/chain_id/values?${params}`, "list chains");
    const data = (parseJson(res, "label values") as { data?: unknown }).data;
    if (data === undefined || data === null) return [];
    if (!Array.isArray(data) || data.some((v) => typeof v !== "string"))
      throw unreadable("label values: data is not a list of strings");
    return data as string[];
  }

  private async chain(chainId: string, windows: [bigint, bigint][]): Promise<ChainData> {
    const data: ChainData = {
      chainId,
      records: [],
      manifests: [],
      findings: [],
      notes: [...this.notes],
    };
    const records = await this.stream(chainId, "records", windows, data.notes);
    for (const e of records) {
      const location = locate(e);
      data.records.push({ text: e.line, location });
      const problem = metadataProblem(e);
      if (problem)
        data.findings.push({ category: "malformed", chainId, location, detail: problem });
    }
    for (const e of await this.stream(chainId, "manifests", windows, data.notes)) {
      addManifestLine(data, e.line, locate(e));
    }
    if (this.limit !== this.options.read.page_size)
      data.notes.push(`Loki allows ${this.limit} entries per query; pages were that size`);
    return data;
  }

  /** Every entry of one stream of a chain, in timestamp order. */
  private async stream(
    chainId: string,
    stream: "records" | "manifests",
    windows: [bigint, bigint][],
    notes: string[],
  ): Promise<Entry[]> {
    const query = `{chain_id=${JSON.stringify(chainId)},audit_stream="${stream}"}`;
    const out: Entry[] = [];
    for (const [windowStart, windowEnd] of windows) {
      let start = windowStart;
      let seenAtStart = new Set<string>();
      for (;;) {
        const page = await this.page(query, start, windowEnd);
        const fresh = page.filter((e) => !(e.ts === start && seenAtStart.has(identity(e))));
        out.push(...fresh);
        if (page.length < this.limit) break;
        const last = (page[page.length - 1] as Entry).ts;
        if (fresh.length === 0) {
          // A whole page at one timestamp, all seen: any further entries at it cannot be
          // paged to. The exporter never stamps two entries of a chain alike, so this is
          // someone else's doing; anything genuine hidden here shows up as missing.
          notes.push(
            `${this.limit} or more entries of the ${stream} stream share timestamp ${last}; any past the first ${this.limit} were not read`,
          );
          start = last + 1n;
          seenAtStart = new Set();
          continue;
        }
        if (last !== start) seenAtStart = new Set();
        for (const e of page) if (e.ts === last) seenAtStart.add(identity(e));
        start = last;
      }
    }
    return out;
  }

  /** One query_range page, flattened over streams and sorted by timestamp. */
  private async page(query: string, start: bigint, end: bigint): Promise<Entry[]> {
    for (;;) {
      const params = new URLSearchParams({
        query,
        start: String(start),
        end: String(end),
        limit: String(this.limit),
        direction: "forward",
      });
      const res = await this.client
        .send({
          method: "GET",
          path: `/loki/api/v1/query_range?${params}`,
          headers: this.headers,
        })
        .catch((err: unknown) => {
          throw unreadable(`query_range: ${(err as Error).message}`);
        });
      if (res.status === 400) {
        const text = res.body.toString("utf8");
        const m = /max entries limit per query exceeded.*\((\d+) > (\d+)\)/.exec(text);
        if (m && Number(m[2]) > 0 && Number(m[2]) < this.limit) {
          this.limit = Number(m[2]);
          continue;
        }
        if (/query time range exceeds the limit/.test(text))
          throw unreadable(
            `query_range: ${text.trim()}: set read.query_window (or ?window= in the source) below Loki's max_query_length`,
          );
      }
      if (res.status !== 200) throw unreadable(`query_range: ${httpProblem(res)}`);
      return flatten(parseJson(res, "query_range"));
    }
  }

  private async get(path: string, what: string): Promise<HttpResponse> {
    const res = await this.client
      .send({ method: "GET", path, headers: this.headers })
      .catch((err: unknown) => {
        throw unreadable(`${what}: ${(err as Error).message}`);
      });
    if (res.status !== 200) throw unreadable(`${what}: ${httpProblem(res)}`);
    return res;
  }
}

function flatten(body: unknown): Entry[] {
  const data = (
    body as { data?: { resultType?: unknown; result?: unknown; encodingFlags?: unknown } }
  ).data;
  if (!data || data.resultType !== "streams" || !Array.isArray(data.result))
    throw unreadable("query_range: the answer holds no streams result");
  const categorized =
    Array.isArray(data.encodingFlags) && data.encodingFlags.includes("categorize-labels");
  const out: Entry[] = [];
  for (const s of data.result as { stream?: unknown; values?: unknown }[]) {
    const raw = (s.stream ?? {}) as Record<string, string>;
    let labels = raw;
    let merged: Record<string, string> | null = null;
    if (!categorized) {
      // Older encoding: structured metadata arrives merged into the stream's labels.
      labels = {};
      merged = {};
      for (const [k, v] of Object.entries(raw)) {
        if (METADATA_KEYS.has(k)) merged[k] = v;
        else labels[k] = v;
      }
    }
    if (!Array.isArray(s.values)) throw unreadable("query_range: a stream without values");
    for (const v of s.values as unknown[]) {
      if (
        !Array.isArray(v) ||
        typeof v[0] !== "string" ||
        typeof v[1] !== "string" ||
        !/^\d+$/.test(v[0])
      )
        throw unreadable('query_range: a value is not ["<ns>", "<line>", …]');
      const third = v[2] as { structuredMetadata?: Record<string, string> } | undefined;
      const metadata = categorized ? (third?.structuredMetadata ?? null) : merged;
      out.push({ ts: BigInt(v[0]), line: v[1], labels, metadata });
    }
  }
  out.sort((a, b) =>
    a.ts !== b.ts
      ? a.ts < b.ts
        ? -1
        : 1
      : identity(a) < identity(b)
        ? -1
        : identity(a) > identity(b)
          ? 1
          : 0,
  );
  return out;
}

function identity(e: Entry): string {
  return `${labelText(e.labels)}\n${e.line}`;
}

function labelText(labels: Record<string, string>): string {
  return `{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(",")}}`;
}

/** Where a user finds the entry: its stream selector and nanosecond timestamp. */
function locate(e: Entry): string {
  return `${labelText(e.labels)} @ ${e.ts}`;
}

/** The structured metadata must name the line it is attached to (an index for users). */
function metadataProblem(e: Entry): string | null {
  const md = e.metadata;
  if (!md || (md.seq === undefined && md.hash === undefined)) return null;
  const seq = /"seq":"(\d+)"/.exec(e.line)?.[1];
  if (md.seq !== undefined && md.seq !== seq)
    return `structured metadata seq ${md.seq} does not match the line's seq ${seq ?? "(none)"}`;
  if (md.hash !== undefined) {
    const hash = createHash("sha256")
      .update(Buffer.from([0]))
      .update(e.line, "utf8")
      .digest("hex");
    if (md.hash !== hash)
      return `structured metadata hash ${md.hash.slice(0, 16)}… does not match the line's leaf hash ${hash.slice(0, 16)}…`;
  }
  return null;
}

function parseJson(res: HttpResponse, what: string): unknown {
  try {
    return JSON.parse(res.body.toString("utf8"));
  } catch (err) {
    throw unreadable(`${what}: the answer is not JSON (${(err as Error).message})`);
  }
}

function httpProblem(res: HttpResponse): string {
  const text = res.body.toString("utf8").trim().slice(0, 500);
  return `HTTP ${res.status}${text ? `: ${text}` : ""}`;
}

function unreadable(detail: string): AgentError {
  return new AgentError("SOURCE_UNREADABLE", `cannot read Loki: ${detail}`);
}

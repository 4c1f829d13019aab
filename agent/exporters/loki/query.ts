import { AgentError } from "../../common/errors.js";
import { HttpClient, type HttpResponse } from "../http/client.js";
import type { HttpClientConfig } from "../http/config.js";
import type { LokiReadConfig } from "./config.js";

/**
 * The Loki HTTP API as the reader uses it: query_range (log lines, or the probe that
 * returns each line's length instead), series, label values. One HTTP client shared by a
 * source's chains, made on first use and closed when nothing uses it any more.
 *
 * Time ranges are [start, end) in Unix nanoseconds: Loki's query_range returns entries
 * with `start <= ts < end` ("greater or equal to start", "lower than end": the HTTP API
 * reference), so adjacent windows share no entry and miss none.
 */

export interface LokiReaderOptions {
  http: HttpClientConfig;
  tenantId?: string;
  /** Label pairs every stream of interest carries (the config's static labels). */
  match: Record<string, string>;
  read: LokiReadConfig;
}

/** A time range [start, end) in Unix ns. */
export type Range = readonly [bigint, bigint];

export interface Entry {
  ts: bigint;
  /** The line; for a probe, the line's length in bytes as text. */
  line: string;
  /** The stream's own labels (metadata removed when Loki merged it in). */
  labels: Record<string, string>;
  /** The labels as a selector, `{a="1",b="2"}`: the stream's name in locations. */
  key: string;
  metadata: Record<string, string> | null;
}

/** What one query_range call gave. */
export type Answer =
  /** The entries, oldest first; `limit` is the limit the call was made with. */
  | { kind: "entries"; entries: Entry[]; limit: number }
  /** The page was larger than a gRPC message between Loki's querier and frontend. */
  | { kind: "too-big"; detail: string }
  /** Loki refused the query itself (a 400), for a probe: it does not run pipelines. */
  | { kind: "refused"; detail: string };

const METADATA_KEYS = new Set(["seq", "hash", "batch"]);
/** What Loki (dskit/gRPC) says when a response exceeds the message size limit. */
const TOO_BIG = /larger than max|ResourceExhausted|message size/i;

export class LokiQuery {
  private client: HttpClient | null = null;
  private users = 0;
  private currentLimit: number;
  private readonly headers: Record<string, string> = {
    // Loki 3: structured metadata as the third element of each value, not merged into labels.
    "x-loki-response-encoding-flags": "categorize-labels",
  };

  constructor(private readonly options: LokiReaderOptions) {
    this.currentLimit = options.read.page_size;
    if (options.tenantId) this.headers["x-scope-orgid"] = options.tenantId;
  }

  /** The entries per query: read.page_size, or Loki's max_entries_limit_per_query if lower. */
  get limit(): number {
    return this.currentLimit;
  }

  acquire(): void {
    this.users++;
    this.client ??= new HttpClient(this.options.http);
  }

  async release(): Promise<void> {
    if (--this.users > 0 || this.client === null) return;
    const client = this.client;
    this.client = null;
    await client.close();
  }

  /** The values of `name` on streams matching `selector` with entries in `range`. */
  async labelValues(name: string, selector: string, [start, end]: Range): Promise<string[]> {
    const params = new URLSearchParams({ start: String(start), end: String(end), query: selector });
    const res = await this.get(`/loki/api/v1/label/${name}/values?${params}`, "list chains");
    const data = (parseJson(res, "label values") as { data?: unknown }).data;
    if (data === undefined || data === null) return [];
    if (!Array.isArray(data) || data.some((v) => typeof v !== "string"))
      throw unreadable("label values: data is not a list of strings");
    return data as string[];
  }

  /** The label sets of the streams matching `selector` with entries in `range`. */
  async series(selector: string, [start, end]: Range): Promise<Record<string, string>[]> {
    const params = new URLSearchParams({
      "match[]": selector,
      start: String(start),
      end: String(end),
    });
    const res = await this.get(`/loki/api/v1/series?${params}`, "series");
    const data = (parseJson(res, "series") as { data?: unknown }).data;
    if (data === undefined || data === null) return [];
    const valid = (s: unknown) =>
      typeof s === "object" && s !== null && Object.values(s).every((v) => typeof v === "string");
    if (!Array.isArray(data) || !data.every(valid))
      throw unreadable("series: data is not a list of label sets");
    return data as Record<string, string>[];
  }

  /**
   * One query_range call over [start, end). `limit` defaults to the current limit, which
   * follows Loki down when it answers that the limit is above max_entries_limit_per_query.
   */
  async range(
    query: string,
    [start, end]: Range,
    o: { direction: "forward" | "backward"; limit?: number; probe?: boolean },
  ): Promise<Answer> {
    for (;;) {
      const limit = Math.min(o.limit ?? this.currentLimit, this.currentLimit);
      const params = new URLSearchParams({
        query,
        start: String(start),
        end: String(end),
        limit: String(limit),
        direction: o.direction,
      });
      const res = await this.send(`/loki/api/v1/query_range?${params}`, "query_range");
      if (res.status === 200) return { kind: "entries", entries: flatten(res), limit };
      const text = res.body.toString("utf8").trim();
      if (res.status === 400) {
        const m = /max entries limit per query exceeded.*\((\d+) > (\d+)\)/.exec(text);
        if (m && Number(m[2]) > 0 && Number(m[2]) < this.currentLimit) {
          this.currentLimit = Number(m[2]);
          continue;
        }
        if (/query time range exceeds the limit/.test(text))
          throw unreadable(
            `query_range: ${text}: set read.query_window (or ?window= in the source) below Loki's max_query_length`,
          );
        if (o.probe) return { kind: "refused", detail: httpProblem(res) };
      }
      if (res.status >= 500 && TOO_BIG.test(text))
        return { kind: "too-big", detail: httpProblem(res) };
      throw unreadable(`query_range: ${httpProblem(res)}`);
    }
  }

  private async get(path: string, what: string): Promise<HttpResponse> {
    const res = await this.send(path, what);
    if (res.status !== 200) throw unreadable(`${what}: ${httpProblem(res)}`);
    return res;
  }

  private async send(path: string, what: string): Promise<HttpResponse> {
    const client = this.client;
    if (client === null) throw new Error("LokiQuery used without acquire()");
    return client.send({ method: "GET", path, headers: this.headers }).catch((err: unknown) => {
      throw unreadable(`${what}: ${(err as Error).message}`);
    });
  }
}

/** A query_range answer's entries, flattened over its streams, oldest first. */
function flatten(res: HttpResponse): Entry[] {
  const data = (
    parseJson(res, "query_range") as {
      data?: { resultType?: unknown; result?: unknown; encodingFlags?: unknown };
    }
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
    const key = labelText(labels);
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
      out.push({ ts: BigInt(v[0]), line: v[1], labels, key, metadata });
    }
  }
  return out.sort(byTime);
}

function byTime(a: Entry, b: Entry): number {
  return a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0;
}

/** A label set as LogQL writes it, names sorted: `{a="1",b="2"}`. */
export function labelText(labels: Record<string, string>): string {
  return `{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(",")}}`;
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

export function unreadable(detail: string): AgentError {
  return new AgentError("SOURCE_UNREADABLE", `cannot read Loki: ${detail}`);
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { gunzipSync, inflateSync } from "node:zlib";

/**
 * An in-test Loki that follows Loki's documented HTTP API and ingestion rules closely
 * enough to test a client against (Loki 3.x behaviour, messages as Loki words them):
 *
 * - POST /loki/api/v1/push, JSON body (Content-Type application/json; Content-Encoding
 *   gzip or deflate), values `["<ns>", "<line>"]` or `["<ns>", "<line>", {metadata}]`; 204.
 * - A stream is its label set. An entry identical in (stream, timestamp, line) to a stored
 *   one is dropped as a duplicate.
 * - Distributor validation per entry (line longer than max_line_size, timestamp older
 *   than reject_old_samples_max_age or beyond creation_grace_period, structured metadata
 *   when not allowed), then ingester rules per stream (unordered writes: an entry more than
 *   max_chunk_age/2 older than the newest entry of its stream is "too far behind").
 *   Refused entries make the answer a 400 naming them; every other entry of the request is
 *   stored anyway (a partial write), as Loki does.
 * - Multi-tenancy (auth_enabled): X-Scope-OrgID required (401 "no org id"), data kept per
 *   tenant; without it every request is tenant "fake". Optional gateway auth (basic or
 *   bearer) in front, as a reverse proxy would add.
 * - Stream sharding (Loki 3 `shard_streams`, opt-in here: most tests check exact stream
 *   sets): once a stream's push rate plus the push exceeds `desiredRateBytes`, the
 *   distributor splits each push of it round-robin over ceil((rate + push) / desired)
 *   streams labelled `__stream_shard__="<n>"`; the first push of a stream is never split.
 * - GET /loki/api/v1/query_range (stream selectors with =, !=, =~, !~, optionally followed
 *   by `| line_format "…"` with `{{ __line__ }}` and `{{ len __line__ }}`; start inclusive,
 *   end exclusive, ns / s / RFC 3339; direction; limit default 100, above
 *   max_entries_limit_per_query a 400; range above max_query_length a 400), with the
 *   categorize-labels encoding flag or structured metadata merged into stream labels.
 *   The limit works as in Loki: each stream (and query shard) yields its own first
 *   `limit` entries, and the frontend merges the per-shard answers in shard order,
 *   stopping once it holds `limit` (mergeOrderedNonOverlappingStreams), so a query over
 *   several streams that returns `limit` entries need not return the first `limit` in
 *   time. Entries equal in timestamp and (processed) line within a stream are returned
 *   once. An answer larger than `maxResponseBytes` (Loki: the 4 MiB gRPC message limit
 *   between querier and frontend) fails with a 500 naming the sizes, as Loki's querier
 *   does (real Loki then leaves the client waiting; the fake answers).
 * - GET /loki/api/v1/series (match[], start, end) and GET /loki/api/v1/label/<name>/values
 *   (start/end default the last 6 h, optional query).
 *
 * Test hooks: injected failures (status with or without Retry-After, destroyed sockets),
 * delays, going down (connections refused) and up again, and direct access to the stored
 * entries to tamper with them.
 */

export interface FakeLokiOptions {
  port?: number;
  maxLineSize?: number;
  maxEntriesLimitPerQuery?: number;
  maxQueryLengthMs?: number;
  /** max_chunk_age / 2: how far behind the newest entry of a stream an entry may be. */
  outOfOrderWindowMs?: number;
  rejectOldSamplesMaxAgeMs?: number;
  creationGracePeriodMs?: number;
  allowStructuredMetadata?: boolean;
  /** auth_enabled: require X-Scope-OrgID. */
  multiTenant?: boolean;
  /** A gateway in front of Loki that requires this Authorization. */
  auth?: { basic?: { username: string; password: string }; bearer?: string };
  /**
   * Stream sharding: `desiredRateBytes` is shard_streams.desired_rate (Loki 3: 1536KB);
   * the rate is the bytes (lines and metadata) pushed to the stream in the last
   * `rateWindowMs` (default 1000, i.e. per second; longer makes a test timing-proof).
   */
  shardStreams?: { desiredRateBytes: number; rateWindowMs?: number };
  /** Largest query_range answer (Loki: grpc_server_max_send_msg_size, 4 MiB). */
  maxResponseBytes?: number;
  /** Whether queries may carry a pipeline (`| line_format …`); false: a 400, as a gateway might. */
  pipelines?: boolean;
}

export interface StoredEntry {
  ts: bigint;
  line: string;
  metadata: Record<string, string>;
}

interface Stream {
  labels: Record<string, string>;
  key: string;
  entries: StoredEntry[];
  highest: bigint;
}

/** What the distributor knows of a stream before sharding: its recent pushes. */
interface StreamRate {
  pushes: Array<{ at: number; bytes: number }>;
  nextShard: number;
}

export interface Injected {
  status?: number;
  retryAfter?: string;
  body?: string;
  /** Destroy the socket instead of answering (after reading the body: it may be stored). */
  destroy?: boolean;
  /** Store the push before answering with the injected status (a 5xx after a write). */
  storeFirst?: boolean;
  /** Which requests: pushes (default) or any. */
  on?: "push" | "any";
  /** Let this many matching requests through first. */
  skip?: number;
}

export interface LoggedRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  status: number;
  /** When it was answered (epoch ms). */
  at: number;
  /** Decoded push body, for pushes. */
  body?: string;
}

const NS_PER_MS = 1_000_000n;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class FakeLoki {
  readonly options: Required<Omit<FakeLokiOptions, "port" | "auth" | "shardStreams">> & {
    auth?: FakeLokiOptions["auth"];
    shardStreams?: FakeLokiOptions["shardStreams"];
  };
  private server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly tenants = new Map<string, Map<string, Stream>>();
  private readonly rates = new Map<string, StreamRate>();
  private readonly injected: Injected[] = [];
  port = 0;
  isDown = false;
  pushDelayMs = 0;
  readonly requests: LoggedRequest[] = [];
  /** Pushes answered 2xx. */
  acceptedPushes = 0;
  /** Entries dropped as duplicates of a stored (stream, timestamp, line). */
  duplicates = 0;

  constructor(options: FakeLokiOptions = {}) {
    this.options = {
      maxLineSize: options.maxLineSize ?? 256 * 1024,
      maxEntriesLimitPerQuery: options.maxEntriesLimitPerQuery ?? 5000,
      maxQueryLengthMs: options.maxQueryLengthMs ?? 721 * 3_600_000,
      outOfOrderWindowMs: options.outOfOrderWindowMs ?? 3_600_000,
      rejectOldSamplesMaxAgeMs: options.rejectOldSamplesMaxAgeMs ?? 7 * 24 * 3_600_000,
      creationGracePeriodMs: options.creationGracePeriodMs ?? 10 * 60_000,
      allowStructuredMetadata: options.allowStructuredMetadata ?? true,
      multiTenant: options.multiTenant ?? false,
      auth: options.auth,
      shardStreams: options.shardStreams,
      maxResponseBytes: options.maxResponseBytes ?? 4 * 1024 * 1024,
      pipelines: options.pipelines ?? true,
    };
    this.port = options.port ?? 0;
    this.server = this.makeServer();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    await this.listen();
    return this;
  }

  /** Answers the next matching requests as given (first in, first used). */
  inject(...failures: Injected[]): void {
    this.injected.push(...failures);
  }

  /** Stops accepting connections (refused) and cuts the open ones. */
  async down(): Promise<void> {
    if (this.isDown) return;
    this.isDown = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
  }

  /** Listens again on the same port. */
  async up(): Promise<void> {
    if (!this.isDown) return;
    this.server = this.makeServer();
    await this.listen();
    this.isDown = false;
  }

  async stop(): Promise<void> {
    if (!this.isDown) await this.down();
  }

  // ----- direct access (tests only) ---------------------------------------------------

  /** Stored entries of streams whose labels include `match`, in timestamp order. */
  entries(
    match: Record<string, string> = {},
    tenant = "fake",
  ): Array<StoredEntry & { labels: Record<string, string> }> {
    const out: Array<StoredEntry & { labels: Record<string, string> }> = [];
    for (const s of this.tenants.get(tenant)?.values() ?? []) {
      if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
      for (const e of s.entries) out.push({ ...e, labels: s.labels });
    }
    return out.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  }

  /** Label sets of the stored streams. */
  streams(tenant = "fake"): Record<string, string>[] {
    return [...(this.tenants.get(tenant)?.values() ?? [])].map((s) => s.labels);
  }

  /** Replaces the line of the entry at `ts` in the stream matching `match`. */
  modifyLine(match: Record<string, string>, ts: bigint, line: string, tenant = "fake"): void {
    const e = this.locate(match, ts, tenant);
    e.stream.entries[e.index] = { ...(e.stream.entries[e.index] as StoredEntry), line };
  }

  deleteEntry(match: Record<string, string>, ts: bigint, tenant = "fake"): void {
    const e = this.locate(match, ts, tenant);
    e.stream.entries.splice(e.index, 1);
  }

  insertEntry(labels: Record<string, string>, entry: StoredEntry, tenant = "fake"): void {
    const stream = this.streamFor(tenant, labels);
    insertSorted(stream.entries, entry);
    if (entry.ts > stream.highest) stream.highest = entry.ts;
  }

  private locate(match: Record<string, string>, ts: bigint, tenant: string) {
    for (const stream of this.tenants.get(tenant)?.values() ?? []) {
      if (!Object.entries(match).every(([k, v]) => stream.labels[k] === v)) continue;
      const index = stream.entries.findIndex((e) => e.ts === ts);
      if (index >= 0) return { stream, index };
    }
    throw new Error(`no entry at ${ts} in a stream matching ${JSON.stringify(match)}`);
  }

  // ----- server -----------------------------------------------------------------------

  private makeServer(): Server {
    const server = createServer((req, res) => {
      void this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.reply(req, res, 500, String(err));
      });
    });
    server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    return server;
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.port, "127.0.0.1", () => {
        this.server.off("error", reject);
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private reply(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: string | object = "",
    headers: Record<string, string> = {},
    pushBody?: string,
  ): void {
    const text = typeof body === "string" ? body : JSON.stringify(body);
    this.requests.push({
      method: req.method ?? "",
      path: req.url ?? "",
      headers: req.headers,
      status,
      at: Date.now(),
      body: pushBody,
    });
    res.writeHead(status, {
      "content-type": typeof body === "string" ? "text/plain; charset=utf-8" : "application/json",
      ...headers,
    });
    res.end(status === 204 ? undefined : text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? "/", "http://loki");
    const isPush = req.method === "POST" && url.pathname === "/loki/api/v1/push";

    const auth = this.options.auth;
    if (auth) {
      const expected = auth.basic
        ? `Basic ${Buffer.from(`${auth.basic.username}:${auth.basic.password}`).toString("base64")}`
        : `Bearer ${auth.bearer}`;
      if (req.headers.authorization !== expected)
        return this.reply(req, res, 401, "Unauthorized\n");
    }
    let tenant = "fake";
    if (this.options.multiTenant) {
      const org = req.headers["x-scope-orgid"];
      if (typeof org !== "string" || org === "") return this.reply(req, res, 401, "no org id\n");
      tenant = org;
    }

    const i = this.injected.findIndex((f) => (f.on ?? "push") === "any" || isPush);
    let injected: Injected | undefined;
    if (i >= 0) {
      const next = this.injected[i] as Injected;
      if (next.skip) next.skip--;
      else injected = this.injected.splice(i, 1)[0];
    }
    if (injected?.destroy) {
      if (injected.storeFirst && isPush) this.push(tenant, req, raw);
      req.socket.destroy();
      return;
    }
    if (injected && !injected.storeFirst) {
      return this.reply(
        req,
        res,
        injected.status ?? 500,
        injected.body ?? "injected failure\n",
        injected.retryAfter !== undefined ? { "retry-after": injected.retryAfter } : {},
        isPush ? decoded(req, raw) : undefined,
      );
    }

    if (isPush) {
      if (this.pushDelayMs > 0) await new Promise((r) => setTimeout(r, this.pushDelayMs));
      const outcome = this.push(tenant, req, raw);
      if (injected)
        return this.reply(
          req,
          res,
          injected.status ?? 500,
          injected.body ?? "injected failure after the write\n",
          injected.retryAfter !== undefined ? { "retry-after": injected.retryAfter } : {},
          outcome.body,
        );
      if (outcome.status === 204) this.acceptedPushes++;
      return this.reply(req, res, outcome.status, outcome.message, {}, outcome.body);
    }
    if (req.method === "GET" && url.pathname === "/loki/api/v1/query_range")
      return this.queryRange(req, res, url, tenant);
    if (req.method === "GET" && url.pathname === "/loki/api/v1/series")
      return this.series(req, res, url, tenant);
    const lv = /^\/loki\/api\/v1\/label\/([^/]+)\/values$/.exec(url.pathname);
    if (req.method === "GET" && lv) return this.labelValues(req, res, url, tenant, lv[1] as string);
    if (req.method === "GET" && url.pathname === "/ready")
      return this.reply(req, res, 200, "ready\n");
    if (req.method === "GET" && url.pathname === "/loki/api/v1/status/buildinfo")
      return this.reply(req, res, 200, { version: "3.6.7", revision: "fake", branch: "fake" });
    if (req.method === "GET" && url.pathname === "/config")
      return this.reply(req, res, 200, this.runningConfig());
    return this.reply(req, res, 404, "404 page not found\n");
  }

  /** The running configuration as Loki's /config shows it (YAML; sizes as "256KB"). */
  private runningConfig(): string {
    const o = this.options;
    const kb = (n: number) => `${Math.round(n / 1024)}KB`;
    return [
      "server:",
      `  grpc_server_max_recv_msg_size: ${o.maxResponseBytes}`,
      `  grpc_server_max_send_msg_size: ${o.maxResponseBytes}`,
      "limits_config:",
      "  ingestion_rate_mb: 4",
      "  ingestion_burst_size_mb: 6",
      `  max_line_size: ${kb(o.maxLineSize)}`,
      "  reject_old_samples: true",
      `  reject_old_samples_max_age: ${Math.round(o.rejectOldSamplesMaxAgeMs / 3_600_000)}h`,
      `  allow_structured_metadata: ${o.allowStructuredMetadata}`,
      `  max_entries_limit_per_query: ${o.maxEntriesLimitPerQuery}`,
      "  shard_streams:",
      `    enabled: ${o.shardStreams !== undefined}`,
      `    desired_rate: ${kb(o.shardStreams?.desiredRateBytes ?? 1536 * 1024)}`,
      "",
    ].join("\n");
  }

  // ----- push -------------------------------------------------------------------------

  private push(
    tenant: string,
    req: IncomingMessage,
    raw: Buffer,
  ): { status: number; message: string; body?: string } {
    let text: string;
    try {
      const encoding = (req.headers["content-encoding"] ?? "").toLowerCase();
      if (encoding === "gzip") text = gunzipSync(raw).toString("utf8");
      else if (encoding === "deflate") text = inflateSync(raw).toString("utf8");
      else if (encoding === "") text = raw.toString("utf8");
      else return { status: 415, message: `Content-Encoding "${encoding}" not supported\n` };
    } catch (err) {
      return { status: 400, message: `${(err as Error).message}\n` };
    }
    const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim();
    if (type !== "application/json")
      return { status: 415, message: `unsupported Content-Type ${JSON.stringify(type)}\n` };

    type PushStream = { stream?: unknown; values?: unknown };
    let streams: PushStream[];
    try {
      const parsed = JSON.parse(text) as { streams?: unknown };
      if (!Array.isArray(parsed.streams)) throw new Error("streams is not an array");
      streams = parsed.streams as PushStream[];
    } catch (err) {
      return { status: 400, message: `loghttp: ${(err as Error).message}\n`, body: text };
    }
    if (streams.length === 0)
      return {
        status: 400,
        message: "error at least one valid stream is required for ingestion\n",
        body: text,
      };

    const now = BigInt(Date.now()) * NS_PER_MS;
    const errors: string[] = [];
    const valid: Array<{ labels: Record<string, string>; entries: StoredEntry[] }> = [];
    for (const s of streams) {
      const labels = s.stream as Record<string, unknown> | undefined;
      if (typeof labels !== "object" || labels === null || Object.keys(labels).length === 0) {
        errors.push("error at least one label pair is required per stream");
        continue;
      }
      const bad = Object.entries(labels).find(
        ([k, v]) => !LABEL_NAME.test(k) || typeof v !== "string",
      );
      if (bad) {
        errors.push(
          `Error parsing labels '${JSON.stringify(labels)}' with error: invalid label ${bad[0]}`,
        );
        continue;
      }
      const clean = Object.fromEntries(
        Object.entries(labels as Record<string, string>).filter(([, v]) => v !== ""),
      );
      const streamText = labelString(clean);
      if (!Array.isArray(s.values)) {
        errors.push(`stream '${streamText}' has no values`);
        continue;
      }
      const entries: StoredEntry[] = [];
      for (const v of s.values as unknown[]) {
        if (
          !Array.isArray(v) ||
          typeof v[0] !== "string" ||
          !/^\d+$/.test(v[0]) ||
          typeof v[1] !== "string"
        ) {
          return {
            status: 400,
            message: `loghttp: bad value ${JSON.stringify(v).slice(0, 100)}\n`,
            body: text,
          };
        }
        const metadata = (v[2] ?? {}) as Record<string, string>;
        const ts = BigInt(v[0]);
        const line = v[1];
        if (Object.keys(metadata).length > 0 && !this.options.allowStructuredMetadata) {
          errors.push(
            `stream '${streamText}' includes structured metadata, but this feature is disallowed. Please see \`limits_config.allow_structured_metadata\` or contact your Loki administrator to enable it.`,
          );
          continue;
        }
        const oldest = now - BigInt(this.options.rejectOldSamplesMaxAgeMs) * NS_PER_MS;
        if (ts < oldest) {
          errors.push(
            `entry for stream '${streamText}' has timestamp too old: ${goTime(ts)}, oldest acceptable timestamp is: ${goTime(oldest)}`,
          );
          continue;
        }
        if (ts > now + BigInt(this.options.creationGracePeriodMs) * NS_PER_MS) {
          errors.push(`entry for stream '${streamText}' has timestamp too new: ${goTime(ts)}`);
          continue;
        }
        const length = Buffer.byteLength(line, "utf8");
        if (length > this.options.maxLineSize) {
          errors.push(
            `Max entry size '${this.options.maxLineSize}' bytes exceeded for stream '${streamText}' while adding an entry with length '${length}' bytes`,
          );
          continue;
        }
        entries.push({ ts, line, metadata });
      }
      if (entries.length > 0) valid.push({ labels: clean, entries });
    }

    // Ingester: per stream, unordered writes within max_chunk_age/2 of the newest entry.
    for (const { labels, entries } of valid.flatMap((v) => this.shard(tenant, v))) {
      const stream = this.streamFor(tenant, labels);
      const window = BigInt(this.options.outOfOrderWindowMs) * NS_PER_MS;
      const ignored: string[] = [];
      for (const e of entries) {
        if (stream.highest > 0n && e.ts < stream.highest - window) {
          ignored.push(
            `entry with timestamp ${goTime(e.ts)} ignored, reason: 'entry too far behind, entry timestamp is: ${rfc3339(e.ts)}, oldest acceptable timestamp is: ${rfc3339(stream.highest - window)}',`,
          );
          continue;
        }
        if (holds(stream.entries, e)) {
          this.duplicates++; // a duplicate of (stream, timestamp, line): dropped
          continue;
        }
        insertSorted(stream.entries, e);
        if (e.ts > stream.highest) stream.highest = e.ts;
      }
      if (ignored.length > 0)
        errors.push(
          `${ignored.join("\n")}\nuser '${tenant}', total ignored: ${ignored.length} out of ${entries.length} for stream: ${stream.key}`,
        );
    }
    if (errors.length > 0) return { status: 400, message: `${errors.join("\n")}\n`, body: text };
    return { status: 204, message: "", body: text };
  }

  /**
   * The distributor's stream sharding: the push's entries of one stream spread round-robin
   * over ceil((rate + push) / desired_rate) shards once that is above one (Loki's
   * calculateShards; never on a stream's first push, never more shards than entries).
   */
  private shard(
    tenant: string,
    push: { labels: Record<string, string>; entries: StoredEntry[] },
  ): Array<{ labels: Record<string, string>; entries: StoredEntry[] }> {
    const config = this.options.shardStreams;
    if (!config) return [push];
    const id = `${tenant}\n${labelString(push.labels)}`;
    const rate = this.rates.get(id) ?? { pushes: [], nextShard: 0 };
    this.rates.set(id, rate);
    const now = Date.now();
    rate.pushes = rate.pushes.filter((p) => p.at > now - (config.rateWindowMs ?? 1000));
    const bytes = push.entries.reduce((n, e) => n + entryBytes(e), 0);
    const recent = rate.pushes.reduce((n, p) => n + p.bytes, 0);
    const first = rate.pushes.length === 0;
    rate.pushes.push({ at: now, bytes });
    const wanted = Math.ceil((recent + bytes) / config.desiredRateBytes);
    const shards = first || wanted <= 1 ? 1 : Math.min(wanted, push.entries.length);
    if (shards === 1) return [push];
    const out = Array.from({ length: shards }, (_, i) => ({
      labels: { ...push.labels, __stream_shard__: String((rate.nextShard + i) % shards) },
      entries: [] as StoredEntry[],
    }));
    push.entries.forEach((e, i) => out[i % shards]!.entries.push(e));
    rate.nextShard = (rate.nextShard + push.entries.length) % shards;
    return out.filter((o) => o.entries.length > 0);
  }

  private streamFor(tenant: string, labels: Record<string, string>): Stream {
    let streams = this.tenants.get(tenant);
    if (!streams) {
      streams = new Map();
      this.tenants.set(tenant, streams);
    }
    const key = labelString(labels);
    let stream = streams.get(key);
    if (!stream) {
      stream = { labels: { ...labels }, key, entries: [], highest: 0n };
      streams.set(key, stream);
    }
    return stream;
  }

  // ----- query ------------------------------------------------------------------------

  private queryRange(req: IncomingMessage, res: ServerResponse, url: URL, tenant: string): void {
    const p = url.searchParams;
    let query: { matchers: Matcher[]; format: ((line: string) => string) | null };
    try {
      query = parseQuery(p.get("query") ?? "", this.options.pipelines);
    } catch (err) {
      return this.reply(req, res, 400, `parse error : ${(err as Error).message}\n`);
    }
    const now = BigInt(Date.now()) * NS_PER_MS;
    let end: bigint;
    let start: bigint;
    try {
      end = p.has("end") ? parseTime(p.get("end") as string) : now;
      start = p.has("start") ? parseTime(p.get("start") as string) : end - 3_600_000n * NS_PER_MS;
    } catch (err) {
      return this.reply(req, res, 400, `${(err as Error).message}\n`);
    }
    const limit = p.has("limit") ? Number(p.get("limit")) : 100;
    if (!Number.isInteger(limit) || limit <= 0)
      return this.reply(req, res, 400, "limit must be a positive value\n");
    const direction = (p.get("direction") ?? "backward").toLowerCase();
    if (direction !== "forward" && direction !== "backward")
      return this.reply(req, res, 400, `invalid direction ${direction}\n`);
    if (end <= start)
      return this.reply(req, res, 400, "end timestamp must not be before or equal to start time\n");
    if (limit > this.options.maxEntriesLimitPerQuery)
      return this.reply(
        req,
        res,
        400,
        `max entries limit per query exceeded, limit > max_entries_limit_per_query (${limit} > ${this.options.maxEntriesLimitPerQuery})\n`,
      );
    const length = end - start;
    if (length > BigInt(this.options.maxQueryLengthMs) * NS_PER_MS)
      return this.reply(
        req,
        res,
        400,
        `the query time range exceeds the limit (query length: ${goDuration(length)}, limit: ${goDuration(BigInt(this.options.maxQueryLengthMs) * NS_PER_MS)})\n`,
      );

    const streams = [...(this.tenants.get(tenant)?.values() ?? [])].filter((st) =>
      matches(query.matchers, st.labels),
    );
    const chosen = selectEntries(streams, start, end, limit, direction, query.format);
    const size = chosen.reduce(
      (n, { e }) => n + entryBytes(e),
      new Set(chosen.map((c) => c.stream)).size * 64,
    );
    if (size > this.options.maxResponseBytes)
      return this.reply(
        req,
        res,
        500,
        `rpc error: code = ResourceExhausted desc = trying to send message larger than max (${size} vs. ${this.options.maxResponseBytes})\n`,
      );
    const categorize = (req.headers["x-loki-response-encoding-flags"] ?? "")
      .toString()
      .split(",")
      .map((f) => f.trim())
      .includes("categorize-labels");
    const result = new Map<string, { stream: Record<string, string>; values: unknown[] }>();
    for (const { stream, e } of chosen) {
      const labels = categorize ? stream.labels : { ...stream.labels, ...e.metadata };
      const key = labelString(labels);
      let r = result.get(key);
      if (!r) {
        r = { stream: labels, values: [] };
        result.set(key, r);
      }
      const hasMetadata = Object.keys(e.metadata).length > 0;
      r.values.push(
        categorize && hasMetadata
          ? [String(e.ts), e.line, { structuredMetadata: e.metadata }]
          : [String(e.ts), e.line],
      );
    }
    const data: Record<string, unknown> = {
      resultType: "streams",
      result: [...result.values()],
      stats: { summary: { totalEntriesReturned: chosen.length } },
    };
    if (categorize) data.encodingFlags = ["categorize-labels"];
    this.reply(req, res, 200, { status: "success", data });
  }

  private series(req: IncomingMessage, res: ServerResponse, url: URL, tenant: string): void {
    const p = url.searchParams;
    const now = BigInt(Date.now()) * NS_PER_MS;
    let start: bigint;
    let end: bigint;
    let selectors: Matcher[][];
    try {
      end = p.has("end") ? parseTime(p.get("end") as string) : now;
      start = p.has("start") ? parseTime(p.get("start") as string) : end - 3_600_000n * NS_PER_MS;
      selectors = p.getAll("match[]").map(parseSelector);
    } catch (err) {
      return this.reply(req, res, 400, `${(err as Error).message}\n`);
    }
    if (selectors.length === 0)
      return this.reply(req, res, 400, "at least one match[] argument must be provided\n");
    if (end - start > BigInt(this.options.maxQueryLengthMs) * NS_PER_MS)
      return this.reply(
        req,
        res,
        400,
        `the query time range exceeds the limit (query length: ${goDuration(end - start)}, limit: ${goDuration(BigInt(this.options.maxQueryLengthMs) * NS_PER_MS)})\n`,
      );
    const data: Record<string, string>[] = [];
    for (const stream of this.tenants.get(tenant)?.values() ?? []) {
      if (!selectors.some((m) => matches(m, stream.labels))) continue;
      if (countIn(stream.entries, start, end) > 0) data.push({ ...stream.labels });
    }
    this.reply(req, res, 200, { status: "success", data });
  }

  private labelValues(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    tenant: string,
    name: string,
  ): void {
    const p = url.searchParams;
    const now = BigInt(Date.now()) * NS_PER_MS;
    let start: bigint;
    let end: bigint;
    let matchers: Matcher[] = [];
    try {
      end = p.has("end") ? parseTime(p.get("end") as string) : now;
      start = p.has("start")
        ? parseTime(p.get("start") as string)
        : end - 6n * 3_600_000n * NS_PER_MS;
      if (p.get("query")) matchers = parseSelector(p.get("query") as string);
    } catch (err) {
      return this.reply(req, res, 400, `${(err as Error).message}\n`);
    }
    if (end - start > BigInt(this.options.maxQueryLengthMs) * NS_PER_MS)
      return this.reply(
        req,
        res,
        400,
        `the query time range exceeds the limit (query length: ${goDuration(end - start)}, limit: ${goDuration(BigInt(this.options.maxQueryLengthMs) * NS_PER_MS)})\n`,
      );
    const values = new Set<string>();
    for (const stream of this.tenants.get(tenant)?.values() ?? []) {
      const value = stream.labels[decodeURIComponent(name)];
      if (value === undefined || !matches(matchers, stream.labels)) continue;
      if (stream.entries.some((e) => e.ts >= start && e.ts < end)) values.add(value);
    }
    this.reply(req, res, 200, { status: "success", data: [...values].sort() });
  }
}

export async function startFakeLoki(options: FakeLokiOptions = {}): Promise<FakeLoki> {
  return new FakeLoki(options).start();
}

// ----- helpers ------------------------------------------------------------------------

/** A push body as text, for the request log. */
function decoded(req: IncomingMessage, raw: Buffer): string | undefined {
  try {
    const encoding = (req.headers["content-encoding"] ?? "").toLowerCase();
    if (encoding === "gzip") return gunzipSync(raw).toString("utf8");
    if (encoding === "deflate") return inflateSync(raw).toString("utf8");
    return raw.toString("utf8");
  } catch {
    return undefined;
  }
}

/** Bytes an entry weighs in an answer or a push rate: line, metadata, some framing. */
function entryBytes(e: StoredEntry): number {
  let n = Buffer.byteLength(e.line, "utf8") + 16;
  for (const [k, v] of Object.entries(e.metadata)) n += k.length + v.length + 4;
  return n;
}

/** Index of the first entry of `list` (sorted by ts) at or after `ts`. */
function firstAtOrAfter(list: readonly StoredEntry[], ts: bigint): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((list[mid] as StoredEntry).ts < ts) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function countIn(list: readonly StoredEntry[], start: bigint, end: bigint): number {
  return firstAtOrAfter(list, end) - firstAtOrAfter(list, start);
}

/** Query shards of the fake's "TSDB": a stream's shard is a hash of its labels. */
const QUERY_SHARDS = 16;

function queryShard(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h % QUERY_SHARDS;
}

type Picked = { stream: Stream; e: StoredEntry };

/**
 * The entries a query_range answer holds, as Loki picks them: per stream its first `limit`
 * entries in [start, end) in the query's direction (the pipeline applied, entries equal in
 * timestamp and line returned once), per query shard the first `limit` of its streams,
 * then the frontend's merge of the shard answers in shard order, which stops taking
 * answers once it holds `limit` entries and keeps the first `limit` of those by time.
 */
function selectEntries(
  streams: readonly Stream[],
  start: bigint,
  end: bigint,
  limit: number,
  direction: "forward" | "backward",
  format: ((line: string) => string) | null,
): Picked[] {
  const sign = direction === "forward" ? 1 : -1;
  const order = (a: Picked, b: Picked) =>
    a.e.ts !== b.e.ts
      ? (a.e.ts < b.e.ts ? -1 : 1) * sign
      : a.stream.key < b.stream.key
        ? -1
        : a.stream.key > b.stream.key
          ? 1
          : 0;
  const shards = new Map<number, Picked[][]>();
  for (const stream of streams) {
    let list = stream.entries.slice(
      firstAtOrAfter(stream.entries, start),
      firstAtOrAfter(stream.entries, end),
    );
    if (direction === "backward") list = list.reverse();
    const picked: Picked[] = [];
    let linesAt = { ts: -1n, lines: new Set<string>() };
    for (const e of list) {
      if (picked.length >= limit) break;
      const line = format ? format(e.line) : e.line;
      if (e.ts !== linesAt.ts) linesAt = { ts: e.ts, lines: new Set() };
      if (linesAt.lines.has(line)) continue; // Loki's iterators drop an equal (ts, line)
      linesAt.lines.add(line);
      picked.push({ stream, e: format ? { ...e, line } : e });
    }
    const shard = queryShard(stream.key);
    shards.set(shard, [...(shards.get(shard) ?? []), picked]);
  }
  // Each list is in order already: merge only where several streams meet.
  const merged = (lists: Picked[][]) =>
    lists.length === 1 ? (lists[0] as Picked[]) : lists.flat().sort(order);
  const collected: Picked[][] = [];
  let total = 0;
  for (const shard of [...shards.keys()].sort((a, b) => a - b)) {
    const answer = merged(shards.get(shard) as Picked[][]).slice(0, limit);
    collected.push(answer);
    total += answer.length;
    if (total >= limit) break;
  }
  return merged(collected).slice(0, limit);
}

/** A query: a stream selector, optionally `| line_format "<template>"`. */
function parseQuery(
  text: string,
  pipelines: boolean,
): { matchers: Matcher[]; format: ((line: string) => string) | null } {
  const t = text.trim();
  let close = -1;
  for (let i = 0, quoted = false; i < t.length; i++) {
    if (t[i] === "\\" && quoted) i++;
    else if (t[i] === '"') quoted = !quoted;
    else if (t[i] === "}" && !quoted) {
      close = i;
      break;
    }
  }
  const matchers = parseSelector(close < 0 ? t : t.slice(0, close + 1));
  const rest = close < 0 ? "" : t.slice(close + 1).trim();
  if (rest === "") return { matchers, format: null };
  const m = /^\|\s*line_format\s+("(?:[^"\\]|\\.)*"|`[^`]*`)$/.exec(rest);
  if (!m) throw new Error(`syntax error: unexpected ${JSON.stringify(rest.slice(0, 40))}`);
  if (!pipelines) throw new Error("pipelines are not allowed here");
  const raw = m[1] as string;
  const template = raw.startsWith("`") ? raw.slice(1, -1) : (JSON.parse(raw) as string);
  return { matchers, format: lineFormat(template) };
}

/** Go text/template, the part the reader uses: text, `{{ __line__ }}`, `{{ len __line__ }}`. */
function lineFormat(template: string): (line: string) => string {
  const parts: Array<(line: string) => string> = [];
  const re = /\{\{-?\s*(.*?)\s*-?\}\}/g;
  let at = 0;
  for (let m = re.exec(template); m; m = re.exec(template)) {
    const text = template.slice(at, m.index);
    parts.push(() => text);
    const action = (m[1] as string).replace(/\s+/g, " ");
    if (action === "__line__") parts.push((line) => line);
    else if (action === "len __line__" || action === "__line__ | len")
      parts.push((line) => String(Buffer.byteLength(line, "utf8")));
    else throw new Error(`template: line:1: function "${action.split(" ")[0]}" not defined`);
    at = re.lastIndex;
  }
  const tail = template.slice(at);
  parts.push(() => tail);
  return (line) => parts.map((part) => part(line)).join("");
}

/** Whether `list` (sorted by ts) holds an entry with e's timestamp and line. */
function holds(list: StoredEntry[], e: StoredEntry): boolean {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((list[mid] as StoredEntry).ts < e.ts) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < list.length && (list[i] as StoredEntry).ts === e.ts; i++)
    if ((list[i] as StoredEntry).line === e.line) return true;
  return false;
}

function insertSorted(list: StoredEntry[], e: StoredEntry): void {
  let i = list.length;
  while (i > 0 && (list[i - 1] as StoredEntry).ts > e.ts) i--;
  list.splice(i, 0, e);
}

/** Prometheus label-set text, as Loki prints streams: {a="1", b="2"}. */
export function labelString(labels: Record<string, string>): string {
  return `{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(", ")}}`;
}

interface Matcher {
  name: string;
  op: "=" | "!=" | "=~" | "!~";
  value: string;
}

function parseSelector(text: string): Matcher[] {
  const t = text.trim();
  if (!t.startsWith("{") || !t.endsWith("}"))
    throw new Error(`unexpected query ${JSON.stringify(text)}`);
  const body = t.slice(1, -1);
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*(,|$)/y;
  const out: Matcher[] = [];
  let pos = 0;
  while (pos < body.length) {
    re.lastIndex = pos;
    const m = re.exec(body);
    if (!m) throw new Error(`syntax error in ${JSON.stringify(text)} at ${pos}`);
    out.push({
      name: m[1] as string,
      op: m[2] as Matcher["op"],
      value: JSON.parse(m[3] as string) as string,
    });
    pos = re.lastIndex;
  }
  if (
    out.length === 0 ||
    !out.some(
      (m) =>
        (m.op === "=" && m.value !== "") ||
        (m.op === "=~" && !new RegExp(`^(?:${m.value})$`).test("")),
    )
  )
    throw new Error(
      "queries require at least one regexp or equality matcher that does not have an empty-compatible value",
    );
  return out;
}

function matches(matchers: Matcher[], labels: Record<string, string>): boolean {
  return matchers.every((m) => {
    const v = labels[m.name] ?? "";
    switch (m.op) {
      case "=":
        return v === m.value;
      case "!=":
        return v !== m.value;
      case "=~":
        return new RegExp(`^(?:${m.value})$`).test(v);
      case "!~":
        return !new RegExp(`^(?:${m.value})$`).test(v);
    }
    return false;
  });
}

/** Loki's timestamp parameter: ns (more than 10 digits) or s integers, float s, RFC 3339. */
function parseTime(value: string): bigint {
  if (/^\d+$/.test(value))
    return value.length <= 10 ? BigInt(value) * 1_000_000_000n : BigInt(value);
  if (/^\d+\.\d+$/.test(value)) return BigInt(Math.round(Number(value) * 1e9));
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new Error(`cannot parse "${value}" to a valid timestamp`);
  return BigInt(ms) * NS_PER_MS;
}

/** Go's time.Time.String() in UTC: 2006-01-02 15:04:05.999999999 +0000 UTC. */
function goTime(ns: bigint): string {
  const ms = Number(ns / NS_PER_MS);
  const iso = new Date(ms).toISOString(); // 2006-01-02T15:04:05.000Z
  const frac = (ns % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${frac ? `.${frac}` : ""} +0000 UTC`;
}

function rfc3339(ns: bigint): string {
  return `${new Date(Number(ns / NS_PER_MS)).toISOString().slice(0, 19)}Z`;
}

/** Prometheus model.Duration text: 30d1h, 721h → "30d1h". */
function goDuration(ns: bigint): string {
  let ms = Number(ns / NS_PER_MS);
  const parts: string[] = [];
  for (const [unit, size] of [
    ["y", 365 * 86_400_000],
    ["w", 7 * 86_400_000],
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
    ["ms", 1],
  ] as const) {
    const n = Math.floor(ms / size);
    if (n > 0) parts.push(`${n}${unit}`);
    ms -= n * size;
  }
  return parts.join("") || "0s";
}

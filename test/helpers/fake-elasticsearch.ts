import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { gunzipSync } from "node:zlib";

/**
 * An in-test Elasticsearch that follows the documented REST API for what the exporter and
 * its reader use, closely enough to exercise their error handling:
 *
 * - `_bulk` (NDJSON, gzip request bodies, `create` / `index` actions, per-item results with
 *   `errors`, 409 version_conflict_engine_exception on an existing `_id`, `filter_path`);
 * - composable index templates (PUT/GET /_index_template/<name>) that decide, on first
 *   write, whether a name becomes a data stream (`data_stream: {}`) or an index, and whose
 *   mappings are checked on every write (types of long/date/keyword/object fields,
 *   `dynamic: strict`, flattened depth);
 * - data streams with backing indices `.ds-<name>-<date>-<generation>`; only `create` is
 *   allowed, `_id` is unique only within the write index, and `rollover()` (or
 *   POST /<ds>/_rollover) starts a new one — so the same `_id` can exist twice;
 * - near-real-time search: documents become searchable at a refresh (POST /_refresh or
 *   every `refreshIntervalMs`); GET /<index>/_doc/<id> is real-time;
 * - point in time (POST /<target>/_pit, DELETE /_pit) and `_search` with `query`
 *   (match_all, term, exists, numeric range, bool filter/must/must_not/should with
 *   minimum_should_match), `sort` (fields, `_index`, `_shard_doc` with a point in time
 *   only; `missing`), `search_after`, `size`, and composite `terms` aggregations (`size`,
 *   `after`, `missing_bucket`; refused on a `text` field, as Elasticsearch refuses it;
 *   a multi-field such as `x.keyword` reads `x`);
 * - security: basic and ApiKey credentials, 401 with Elasticsearch's error shape and
 *   WWW-Authenticate, 403 for template installs when not permitted.
 *
 * Test hooks inject per-item failures, top-level failures, dropped responses, outages and
 * latency, and tamper with stored documents.
 */

export interface FakeEsOptions {
  auth?: { basic?: { username: string; password: string }; apiKey?: string };
  /** PUT /_index_template answers 403 (a user without manage_index_templates). */
  forbidTemplates?: boolean;
  /** false: answers POST /<index>/_pit like a cluster without the point-in-time API. */
  pit?: boolean;
  /** Documents become searchable at the next refresh; periodic refresh interval (0: none). */
  refreshIntervalMs?: number;
  /** Creating a missing index or data stream on first write (action.auto_create_index). */
  autoCreate?: boolean;
  /**
   * Bulk `_id`s are ignored and each document gets a new one, as some servers with an
   * "Elasticsearch-compatible" bulk endpoint do (VictoriaLogs): `create` no longer dedups.
   */
  ignoresIds?: boolean;
}

export interface StoredDoc {
  index: string;
  id: string;
  /** The _source exactly as received. */
  raw: string;
  source: Record<string, unknown>;
  seqNo: number;
  visible: boolean;
}

export interface BulkItemInfo {
  action: string;
  target: string;
  id: string | undefined;
  source: Record<string, unknown>;
  /** How many times this _id was offered so far, this one included. */
  attempt: number;
}

export interface ItemError {
  status: number;
  type: string;
  reason: string;
}

export interface RequestLog {
  method: string;
  path: string;
  status: number;
  gzip: boolean;
  authorization?: string;
  /** For _bulk: the item statuses answered. */
  items?: number[];
}

export interface InjectedFailure {
  /** Which requests: method and a pattern of the path (without query). */
  method?: string;
  path: RegExp;
  status: number;
  retryAfter?: string;
  body?: unknown;
  /** How many matching requests fail (default 1). */
  times?: number;
}

interface Template {
  name: string;
  body: {
    index_patterns: string[];
    data_stream?: object;
    priority?: number;
    template?: { mappings?: Mapping; settings?: Record<string, unknown> };
  };
}

interface Mapping {
  dynamic?: boolean | string;
  type?: string;
  properties?: Record<string, Mapping>;
  depth_limit?: number;
  [key: string]: unknown;
}

interface Index {
  name: string;
  docs: Map<string, StoredDoc>;
  mappings: Mapping | undefined;
  dataStream?: string;
}

interface Pit {
  id: string;
  docs: StoredDoc[];
  expiresAt: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`);
  }
}

const esError = (status: number, type: string, reason: string, extra: object = {}) =>
  new HttpError(status, {
    error: { root_cause: [{ type, reason, ...extra }], type, reason, ...extra },
    status,
  });

const WWW_AUTHENTICATE = ['Basic realm="security", charset="UTF-8"', "ApiKey"];

export class FakeElasticsearch {
  readonly indices = new Map<string, Index>();
  readonly dataStreams = new Map<string, { name: string; backing: string[]; generation: number }>();
  readonly templates = new Map<string, Template>();
  readonly requests: RequestLog[] = [];
  readonly pits = new Map<string, Pit>();
  /** Exceptions thrown by the fake itself (answered 500): a test should expect none. */
  readonly internalErrors: unknown[] = [];
  /** Decides a per-item failure for a bulk item (undefined: process it normally). */
  itemFailure: ((item: BulkItemInfo) => ItemError | undefined) | null = null;
  /** Called after a bulk request was processed; "drop" closes the connection unanswered. */
  afterBulk: ((info: { path: string; items: number[] }) => "drop" | undefined) | null = null;
  /** Milliseconds every request waits before it is handled. */
  delayMs = 0;
  private failures: (InjectedFailure & { left: number })[] = [];
  private readonly attempts = new Map<string, number>();
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private isDown = false;
  private seqNo = 0;
  private refreshTimer: NodeJS.Timeout | null = null;
  port = 0;

  constructor(readonly options: FakeEsOptions = {}) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.on("connection", (socket) => {
      if (this.isDown) {
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    const every = this.options.refreshIntervalMs ?? 0;
    if (every > 0) {
      this.refreshTimer = setInterval(() => this.refreshAll(), every);
      this.refreshTimer.unref();
    }
  }

  async close(): Promise<void> {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** While down, every connection is closed at once (and open ones are cut). */
  set down(value: boolean) {
    this.isDown = value;
    if (value) for (const s of this.sockets) s.destroy();
  }

  get down(): boolean {
    return this.isDown;
  }

  /** The next `times` requests matching fail with `status` (e.g. 429 with Retry-After). */
  failRequests(f: InjectedFailure): void {
    this.failures.push({ ...f, left: f.times ?? 1 });
  }

  // ---- test hooks on stored data ----

  /** Every stored document of an index, a data stream (all backing indices) or everything. */
  documents(target?: string): StoredDoc[] {
    const names = target === undefined ? [...this.indices.keys()] : this.resolve(target, false);
    return names.flatMap((n) => [...(this.indices.get(n)?.docs.values() ?? [])]);
  }

  /** Replaces a stored document's source (as someone with write access to the cluster could). */
  tamper(index: string, id: string, change: (source: Record<string, unknown>) => void): string {
    const doc = this.indices.get(index)?.docs.get(id);
    if (!doc) throw new Error(`no document ${index}/${id}`);
    const before = doc.raw;
    const source = JSON.parse(doc.raw) as Record<string, unknown>;
    change(source);
    doc.raw = JSON.stringify(source);
    doc.source = source;
    return before;
  }

  /** Puts back a source saved from tamper(). */
  restore(index: string, id: string, raw: string): void {
    const doc = this.indices.get(index)?.docs.get(id);
    if (doc) {
      doc.raw = raw;
      doc.source = JSON.parse(raw) as Record<string, unknown>;
    } else {
      this.store(index, id, raw);
    }
  }

  remove(index: string, id: string): StoredDoc {
    const docs = this.indices.get(index)?.docs;
    const doc = docs?.get(id);
    if (!docs || !doc) throw new Error(`no document ${index}/${id}`);
    docs.delete(id);
    return doc;
  }

  /** Stores a document directly (visible at once). */
  store(index: string, id: string, raw: string): StoredDoc {
    const idx = this.indices.get(index) ?? this.createIndex(index, undefined);
    const doc: StoredDoc = {
      index,
      id,
      raw,
      source: JSON.parse(raw) as Record<string, unknown>,
      seqNo: this.seqNo++,
      visible: true,
    };
    idx.docs.set(id, doc);
    return doc;
  }

  /** Rolls a data stream over to a new write index; returns its name. */
  rollover(name: string): string {
    const ds = this.dataStreams.get(name);
    if (!ds) throw new Error(`no data stream ${name}`);
    ds.generation++;
    const backing = backingName(name, ds.generation);
    const first = this.indices.get(ds.backing[0] as string);
    this.createIndex(backing, first?.mappings, name);
    ds.backing.push(backing);
    return backing;
  }

  refreshAll(): void {
    for (const idx of this.indices.values()) for (const d of idx.docs.values()) d.visible = true;
  }

  // ---- HTTP ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.isDown) {
      req.socket.destroy();
      return;
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    const method = req.method ?? "GET";
    const gzip = req.headers["content-encoding"] === "gzip";
    const log: RequestLog = {
      method,
      path: url.pathname + url.search,
      status: 0,
      gzip,
      authorization: req.headers.authorization,
    };
    this.requests.push(log);
    let status = 200;
    let body: unknown;
    let headers: Record<string, string> = {};
    try {
      this.authenticate(req, url.pathname);
      const injected = this.failures.find(
        (f) => f.left > 0 && f.path.test(url.pathname) && (!f.method || f.method === method),
      );
      if (injected) {
        injected.left--;
        throw new HttpError(
          injected.status,
          injected.body ?? {
            error: {
              root_cause: [
                { type: "injected_failure", reason: `injected HTTP ${injected.status}` },
              ],
              type:
                injected.status === 429 ? "es_rejected_execution_exception" : "injected_failure",
              reason: `injected HTTP ${injected.status}`,
            },
            status: injected.status,
          },
          injected.retryAfter ? { "retry-after": injected.retryAfter } : {},
        );
      }
      let raw = Buffer.concat(chunks);
      if (gzip) {
        try {
          raw = gunzipSync(raw);
        } catch {
          throw esError(400, "parse_exception", "request body is not valid gzip");
        }
      }
      const out = this.route(method, url, raw, req.headers["content-type"], log);
      if (out === "drop") {
        req.socket.destroy();
        return;
      }
      status = out.status ?? 200;
      body = out.body;
    } catch (err) {
      if (err instanceof HttpError) {
        status = err.status;
        body = err.body;
        headers = err.headers;
      } else {
        // A bug in the fake: answer like an internal error and keep it visible.
        this.internalErrors.push(err);
        status = 500;
        body = esError(500, "fake_internal_error", String((err as Error)?.stack ?? err)).body;
      }
    }
    const filter = url.searchParams.get("filter_path");
    if (filter && status < 300) body = filterPath(body, filter);
    log.status = status;
    res.writeHead(status, {
      "content-type": "application/json; charset=UTF-8",
      "x-elastic-product": "Elasticsearch",
      ...headers,
    });
    res.end(JSON.stringify(body));
  }

  private authenticate(req: IncomingMessage, path: string): void {
    const auth = this.options.auth;
    if (!auth) return;
    const header = req.headers.authorization ?? "";
    const [scheme, value] = header.split(" ", 2) as [string, string | undefined];
    let ok = false;
    let who = "";
    if (scheme === "Basic" && value && auth.basic) {
      const [u, ...p] = Buffer.from(value, "base64").toString("utf8").split(":");
      who = u ?? "";
      ok = u === auth.basic.username && p.join(":") === auth.basic.password;
    } else if (scheme === "ApiKey" && value && auth.apiKey) {
      ok = value === auth.apiKey;
    }
    if (ok) return;
    const reason = !header
      ? `missing authentication credentials for REST request [${path}]`
      : scheme === "Basic"
        ? `unable to authenticate user [${who}] for REST request [${path}]`
        : "unable to authenticate with provided credentials and anonymous access is not allowed for this request";
    const header401 = { "WWW-Authenticate": WWW_AUTHENTICATE };
    throw new HttpError(
      401,
      {
        error: {
          root_cause: [{ type: "security_exception", reason, header: header401 }],
          type: "security_exception",
          reason,
          header: header401,
        },
        status: 401,
      },
      { "www-authenticate": WWW_AUTHENTICATE.join(", ") },
    );
  }

  private route(
    method: string,
    url: URL,
    raw: Buffer,
    contentType: string | undefined,
    log: RequestLog,
  ): { status?: number; body: unknown } | "drop" {
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    const [a, b, c] = parts;
    const json = () => parseBody(raw);
    if (parts.length === 0 && method === "GET")
      return {
        body: {
          name: "fake-es",
          cluster_name: "fake",
          version: { number: "8.15.0" },
          tagline: "You Know, for Search",
        },
      };
    if (a === "_index_template" && b && parts.length === 2) {
      if (method === "PUT") return this.putTemplate(b, json());
      if (method === "GET") return this.getTemplate(b);
    }
    if ((method === "POST" || method === "PUT") && (a === "_bulk" || b === "_bulk")) {
      if (!contentType || !/^application\/(x-ndjson|json)/.test(contentType))
        throw new HttpError(406, {
          error: `Content-Type header [${contentType ?? ""}] is not supported`,
          status: 406,
        });
      return this.bulk(a === "_bulk" ? undefined : a, raw.toString("utf8"), url, log);
    }
    if (b === "_pit" && method === "POST" && parts.length === 2)
      return this.openPit(a as string, url);
    if (a === "_pit" && method === "DELETE") return this.closePit(json());
    if ((method === "POST" || method === "GET") && (a === "_search" || b === "_search"))
      return this.search(a === "_search" ? undefined : a, raw.length ? json() : {});
    if (method === "POST" && (a === "_refresh" || b === "_refresh")) {
      const names =
        a === "_refresh"
          ? [...this.indices.keys()]
          : this.resolve(a as string, url.searchParams.get("ignore_unavailable") === "true");
      for (const n of names)
        for (const d of this.indices.get(n)?.docs.values() ?? []) d.visible = true;
      return {
        body: { _shards: { total: names.length * 2, successful: names.length, failed: 0 } },
      };
    }
    if (method === "GET" && b === "_doc" && c && parts.length === 3)
      return this.getDoc(a as string, c);
    if (method === "POST" && b === "_rollover" && parts.length === 2) {
      const old = this.dataStreams.get(a as string)?.backing.at(-1);
      if (!old) throw esError(404, "index_not_found_exception", `no such index [${a}]`);
      const created = this.rollover(a as string);
      return {
        body: {
          acknowledged: true,
          old_index: old,
          new_index: created,
          rolled_over: true,
          dry_run: false,
        },
      };
    }
    if (method === "GET" && a === "_data_stream" && b) {
      const ds = this.dataStreams.get(b);
      if (!ds) throw esError(404, "index_not_found_exception", `no such index [${b}]`);
      return {
        body: {
          data_streams: [
            {
              name: ds.name,
              timestamp_field: { name: "@timestamp" },
              indices: ds.backing.map((n) => ({ index_name: n })),
              generation: ds.generation,
            },
          ],
        },
      };
    }
    throw new HttpError(400, {
      error: `no handler found for uri [${url.pathname}${url.search}] and method [${method}]`,
      status: 400,
    });
  }

  private putTemplate(name: string, body: unknown): { body: unknown } {
    if (this.options.forbidTemplates)
      throw esError(
        403,
        "security_exception",
        "action [indices:admin/index_template/put] is unauthorized for user [writer] with effective roles [audit_writer], this action is granted by the cluster privileges [manage_index_templates,manage,all]",
      );
    const t = body as Template["body"];
    if (!t || !Array.isArray(t.index_patterns) || t.index_patterns.length === 0)
      throw esError(
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: index patterns are missing;",
      );
    for (const other of this.templates.values()) {
      if (other.name === name) continue;
      const overlap = other.body.index_patterns.some((p) => t.index_patterns.some((q) => p === q));
      if (overlap && (other.body.priority ?? 0) === (t.priority ?? 0))
        throw esError(
          400,
          "illegal_argument_exception",
          `index template [${name}] has index patterns [${t.index_patterns.join(", ")}] matching patterns from existing templates [${other.name}] with patterns (${other.name} => [${other.body.index_patterns.join(", ")}]) that have the same priority [${t.priority ?? 0}], multiple index templates may not match during index creation, please use a different priority`,
        );
    }
    this.templates.set(name, { name, body: t });
    return { body: { acknowledged: true } };
  }

  private getTemplate(name: string): { body: unknown } {
    const t = this.templates.get(name);
    if (!t)
      throw esError(
        404,
        "resource_not_found_exception",
        `index template matching [${name}] not found`,
      );
    return { body: { index_templates: [{ name, index_template: t.body }] } };
  }

  /** Names of the concrete indices behind a target (comma list, data streams expanded). */
  private resolve(target: string, ignoreUnavailable: boolean): string[] {
    const out: string[] = [];
    for (const name of target.split(",")) {
      const ds = this.dataStreams.get(name);
      if (ds) out.push(...ds.backing);
      else if (this.indices.has(name)) out.push(name);
      else if (name.includes("*")) {
        const re = globRe(name);
        out.push(...[...this.indices.keys()].filter((n) => re.test(n) && !n.startsWith(".")));
        for (const d of this.dataStreams.values()) if (re.test(d.name)) out.push(...d.backing);
      } else if (!ignoreUnavailable)
        throw esError(404, "index_not_found_exception", `no such index [${name}]`, {
          "resource.type": "index_or_alias",
          "resource.id": name,
          index: name,
        });
    }
    return out;
  }

  private matchingTemplate(name: string): Template | undefined {
    let best: Template | undefined;
    for (const t of this.templates.values()) {
      if (!t.body.index_patterns.some((p) => globRe(p).test(name))) continue;
      if (!best || (t.body.priority ?? 0) > (best.body.priority ?? 0)) best = t;
    }
    return best;
  }

  private createIndex(name: string, mappings: Mapping | undefined, dataStream?: string): Index {
    const idx: Index = { name, docs: new Map(), mappings, dataStream };
    this.indices.set(name, idx);
    return idx;
  }

  /** The index a write to `target` goes to, created as its template says when missing. */
  private writeIndex(target: string): Index | ItemError {
    const ds = this.dataStreams.get(target);
    if (ds) return this.indices.get(ds.backing.at(-1) as string) as Index;
    const existing = this.indices.get(target);
    if (existing) return existing;
    if (this.options.autoCreate === false)
      return {
        status: 404,
        type: "index_not_found_exception",
        reason: `no such index [${target}]`,
      };
    const t = this.matchingTemplate(target);
    const mappings = t?.body.template?.mappings;
    if (t?.body.data_stream) {
      const backing = backingName(target, 1);
      this.dataStreams.set(target, { name: target, backing: [backing], generation: 1 });
      return this.createIndex(backing, mappings, target);
    }
    return this.createIndex(target, mappings);
  }

  private bulk(
    pathIndex: string | undefined,
    text: string,
    url: URL,
    log: RequestLog,
  ): { body: unknown } | "drop" {
    if (text.length > 0 && !text.endsWith("\n"))
      throw esError(
        400,
        "illegal_argument_exception",
        "The bulk request must be terminated by a newline [\\n]",
      );
    const lines = text.split("\n");
    lines.pop();
    const items: Record<string, unknown>[] = [];
    let errors = false;
    const started = Date.now();
    for (let i = 0; i < lines.length; i += 2) {
      const action = parseLine(lines[i] as string, i);
      const [op] = Object.keys(action);
      const meta = (action[op as string] ?? {}) as { _index?: string; _id?: string };
      const target = meta._index ?? pathIndex;
      if (op !== "create" && op !== "index")
        throw esError(
          400,
          "illegal_argument_exception",
          `Malformed action/metadata line [${i + 1}], expected one of [create, index] here, got [${op}]`,
        );
      if (!target)
        throw esError(
          400,
          "action_request_validation_exception",
          "Validation Failed: 1: index is missing;",
        );
      const sourceText = lines[i + 1];
      if (sourceText === undefined)
        throw esError(
          400,
          "illegal_argument_exception",
          "The bulk request must be terminated by a newline [\\n]",
        );
      const id = this.options.ignoresIds ? undefined : meta._id;
      const result = this.bulkItem(op as string, target, id, sourceText);
      if (typeof result.status === "number" && result.status >= 300) errors = true;
      items.push({ [op as string]: result });
    }
    log.items = items.map((it) => (Object.values(it)[0] as { status: number }).status);
    if (this.afterBulk?.({ path: url.pathname, items: log.items }) === "drop") return "drop";
    return { body: { took: Date.now() - started, errors, items } };
  }

  private bulkItem(
    op: string,
    target: string,
    id: string | undefined,
    sourceText: string,
  ): Record<string, unknown> {
    let source: Record<string, unknown>;
    try {
      source = JSON.parse(sourceText) as Record<string, unknown>;
      if (typeof source !== "object" || source === null || Array.isArray(source))
        throw new Error("not an object");
    } catch {
      return itemError(target, id, {
        status: 400,
        type: "document_parsing_exception",
        reason: "[1:1] failed to parse: not a JSON object",
      });
    }
    if (id !== undefined) {
      const key = `${target}\u0000${id}`;
      const attempt = (this.attempts.get(key) ?? 0) + 1;
      this.attempts.set(key, attempt);
      const injected = this.itemFailure?.({ action: op, target, id, source, attempt });
      if (injected) return itemError(target, id, injected);
    }
    const idx = this.writeIndex(target);
    if ("status" in idx) return itemError(target, id, idx);
    if (idx.dataStream) {
      if (op !== "create")
        return itemError(idx.name, id, {
          status: 400,
          type: "illegal_argument_exception",
          reason: `only write ops with an op_type of create are allowed in data streams`,
        });
      if (source["@timestamp"] === undefined)
        return itemError(idx.name, id, {
          status: 400,
          type: "document_parsing_exception",
          reason: "[1:2] failed to parse: data stream timestamp field [@timestamp] is missing",
        });
    }
    const docId = id ?? randomBytes(15).toString("base64url");
    const mappingProblem = idx.mappings ? checkMapping(idx.mappings, source, docId) : null;
    if (mappingProblem) return itemError(idx.name, docId, mappingProblem);
    const existing = idx.docs.get(docId);
    if (existing && op === "create")
      return itemError(idx.name, docId, {
        status: 409,
        type: "version_conflict_engine_exception",
        reason: `[${docId}]: version conflict, document already exists (current version [1])`,
      });
    const seqNo = this.seqNo++;
    idx.docs.set(docId, {
      index: idx.name,
      id: docId,
      raw: sourceText,
      source,
      seqNo,
      visible: false,
    });
    return {
      _index: idx.name,
      _id: docId,
      _version: existing ? 2 : 1,
      result: existing ? "updated" : "created",
      _shards: { total: 2, successful: 1, failed: 0 },
      _seq_no: seqNo,
      _primary_term: 1,
      status: existing ? 200 : 201,
    };
  }

  private getDoc(index: string, id: string): { status: number; body: unknown } {
    const idx = this.indices.get(index);
    if (!idx) {
      if (this.dataStreams.has(index))
        throw esError(
          400,
          "illegal_argument_exception",
          `only write ops with an op_type of create are allowed in data streams`,
        );
      throw esError(404, "index_not_found_exception", `no such index [${index}]`);
    }
    const doc = idx.docs.get(id);
    if (!doc) return { status: 404, body: { _index: index, _id: id, found: false } };
    return {
      status: 200,
      body: {
        _index: index,
        _id: id,
        _version: 1,
        _seq_no: doc.seqNo,
        _primary_term: 1,
        found: true,
        _source: doc.source,
      },
    };
  }

  private openPit(target: string, url: URL): { body: unknown } {
    const keepAlive = url.searchParams.get("keep_alive");
    if (this.options.pit === false)
      throw esError(
        400,
        "illegal_argument_exception",
        `request [/${target}/_pit] contains unrecognized parameter: [keep_alive]`,
      );
    if (!keepAlive)
      throw esError(
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: [keep_alive] is not specified;",
      );
    const names = this.resolve(target, false);
    const docs = names.flatMap((n) =>
      [...(this.indices.get(n)?.docs.values() ?? [])].filter((d) => d.visible),
    );
    const id = randomBytes(24).toString("base64");
    this.pits.set(id, {
      id,
      docs: docs.map((d) => ({ ...d })),
      expiresAt: Date.now() + durationMs(keepAlive),
    });
    return {
      body: {
        id,
        _shards: { total: names.length, successful: names.length, skipped: 0, failed: 0 },
      },
    };
  }

  private closePit(body: unknown): { status: number; body: unknown } {
    const id = (body as { id?: string })?.id;
    if (!id)
      throw esError(
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: [id] is not specified;",
      );
    const existed = this.pits.delete(id);
    return { status: existed ? 200 : 404, body: { succeeded: true, num_freed: existed ? 1 : 0 } };
  }

  private search(target: string | undefined, body: unknown): { body: unknown } {
    const req = (body ?? {}) as {
      size?: number;
      sort?: unknown[];
      search_after?: unknown[];
      query?: unknown;
      pit?: { id: string; keep_alive?: string };
      track_total_hits?: boolean;
      aggs?: Record<string, unknown>;
      aggregations?: Record<string, unknown>;
    };
    let docs: StoredDoc[];
    let pit: Pit | undefined;
    if (req.pit) {
      if (target !== undefined)
        throw esError(
          400,
          "action_request_validation_exception",
          "Validation Failed: 1: [indices] cannot be used with point in time. Do not specify any index with point in time.;",
        );
      pit = this.pits.get(req.pit.id);
      if (!pit || pit.expiresAt < Date.now())
        throw esError(
          404,
          "search_context_missing_exception",
          `No search context found for id [${req.pit.id.slice(0, 12)}]`,
        );
      if (req.pit.keep_alive) pit.expiresAt = Date.now() + durationMs(req.pit.keep_alive);
      docs = pit.docs;
    } else {
      const names = this.resolve(target ?? "*", false);
      docs = names.flatMap((n) =>
        [...(this.indices.get(n)?.docs.values() ?? [])].filter((d) => d.visible),
      );
    }
    const size = req.size ?? 10;
    if (size > 10_000)
      throw esError(
        400,
        "illegal_argument_exception",
        "Result window is too large, from + size must be less than or equal to: [10000]",
      );
    const sort = (req.sort ?? [{ _doc: "asc" }]).map(parseSort);
    if (!pit && sort.some((s) => s.field === "_shard_doc"))
      throw esError(
        400,
        "illegal_argument_exception",
        "[_shard_doc] sort field cannot be used without [point in time]",
      );
    if (sort.some((s) => s.field === "_id"))
      throw esError(
        400,
        "illegal_argument_exception",
        "Fielddata access on the _id field is disallowed, you can re-enable it by updating the dynamic cluster setting: indices.id_field_data.enabled",
      );
    const matching = docs.filter((d) => matches((path) => this.valueOf(d, path), req.query));
    const aggs = req.aggs ?? req.aggregations;
    const aggregations = aggs === undefined ? undefined : this.aggregate(aggs, matching);
    const position = new Map(docs.map((d, i) => [d, i]));
    const keyed = matching.map((d) => ({
      d,
      key: sort.map((s) => sortValue(d, s, position.get(d) as number)),
    }));
    keyed.sort((x, y) => compareKeys(x.key, y.key, sort));
    let from = 0;
    if (req.search_after) {
      if (req.search_after.length !== sort.length)
        throw esError(
          400,
          "illegal_argument_exception",
          `search_after has ${req.search_after.length} value(s) but sort has ${sort.length}.`,
        );
      const after = req.search_after;
      from = keyed.findIndex((k) => compareKeys(k.key, after, sort) > 0);
      if (from < 0) from = keyed.length;
    }
    const page = keyed.slice(from, from + size);
    return {
      body: {
        ...(pit ? { pit_id: pit.id } : {}),
        took: 1,
        timed_out: false,
        _shards: { total: 1, successful: 1, skipped: 0, failed: 0 },
        hits: {
          ...(req.track_total_hits === false
            ? {}
            : { total: { value: matching.length, relation: "eq" } }),
          max_score: null,
          hits: page.map(({ d, key }) => ({
            _index: d.index,
            _id: d.id,
            _score: null,
            _source: JSON.parse(d.raw) as unknown,
            sort: key,
          })),
        },
        ...(aggregations !== undefined ? { aggregations } : {}),
      },
    };
  }

  /**
   * A document's value of `path` as a search reads it: a multi-field such as
   * `audit.chain_id.keyword` (declared under the parent's `fields`) reads its parent's value.
   */
  private valueOf(d: StoredDoc, path: string): unknown {
    const mappings = this.indices.get(d.index)?.mappings;
    const dot = path.lastIndexOf(".");
    if (mappings && dot > 0) {
      const parent = mappingAt(mappings, path.slice(0, dot));
      const fields = parent?.fields as Record<string, unknown> | undefined;
      if (fields && path.slice(dot + 1) in fields) return valueAt(d.source, path.slice(0, dot));
    }
    return valueAt(d.source, path);
  }

  /** `aggs`: composite aggregations of `terms` sources (what the reader lists chains with). */
  private aggregate(aggs: Record<string, unknown>, docs: StoredDoc[]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(aggs)) {
      const [type, def] = Object.entries(spec as Record<string, unknown>)[0] ?? [];
      if (type !== "composite")
        throw esError(
          400,
          "x_content_parse_exception",
          `[1:1] unknown aggregation type [${type}] (the fake Elasticsearch knows composite only)`,
        );
      out[name] = this.composite(def as CompositeSpec, docs);
    }
    return out;
  }

  private composite(spec: CompositeSpec, docs: StoredDoc[]): unknown {
    const sources = (spec.sources ?? []).map((entry) => {
      const [name, def] = Object.entries(entry)[0] as [string, { terms?: TermsSource }];
      if (!def?.terms?.field)
        throw esError(
          400,
          "x_content_parse_exception",
          `[1:1] [composite] source [${name}] needs terms.field`,
        );
      return { name, ...def.terms, field: def.terms.field };
    });
    for (const d of docs)
      for (const s of sources) {
        const mapping = this.indices.get(d.index)?.mappings;
        const field = mapping ? mappingAt(mapping, s.field) : undefined;
        if (field?.type === "text" && field.fielddata !== true)
          throw esError(400, "search_phase_execution_exception", "all shards failed", {
            caused_by: {
              type: "illegal_argument_exception",
              reason: `Fielddata is disabled on [${s.field}] in [${d.index}]. Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [${s.field}] in order to load field data by uninverting the inverted index. Note that this can use significant memory.`,
            },
          });
      }
    const buckets = new Map<string, { key: unknown[]; count: number }>();
    for (const d of docs) {
      let combos: unknown[][] = [[]];
      for (const s of sources) {
        const v = this.valueOf(d, s.field);
        const values = [...new Set((Array.isArray(v) ? v : [v]).filter((x) => x != null))];
        if (values.length === 0) {
          if (s.missing_bucket !== true) {
            combos = [];
            break;
          }
          values.push(null);
        }
        combos = combos.flatMap((c) => values.map((x) => [...c, x]));
      }
      for (const key of combos) {
        const id = JSON.stringify(key);
        const b = buckets.get(id);
        if (b) b.count++;
        else buckets.set(id, { key, count: 1 });
      }
    }
    // Missing values first when ascending, last when descending (the default missing_order).
    const compare = (a: unknown[], b: unknown[]) => {
      for (const [i, s] of sources.entries()) {
        const x = a[i] ?? null;
        const y = b[i] ?? null;
        const desc = s.order === "desc";
        if (x === null || y === null) {
          if (x !== y) return (x === null ? -1 : 1) * (desc ? -1 : 1);
          continue;
        }
        const c =
          typeof x === "number" && typeof y === "number"
            ? x - y
            : Buffer.compare(Buffer.from(String(x)), Buffer.from(String(y)));
        if (c !== 0) return desc ? -c : c;
      }
      return 0;
    };
    const sorted = [...buckets.values()].sort((x, y) => compare(x.key, y.key));
    let from = 0;
    if (spec.after) {
      const after = sources.map((s) => (spec.after as Record<string, unknown>)[s.name] ?? null);
      from = sorted.findIndex((b) => compare(b.key, after) > 0);
      if (from < 0) from = sorted.length;
    }
    const page = sorted.slice(from, from + (spec.size ?? 10));
    const keyOf = (key: unknown[]) => Object.fromEntries(sources.map((s, i) => [s.name, key[i]]));
    return {
      ...(page.length > 0
        ? { after_key: keyOf((page[page.length - 1] as { key: unknown[] }).key) }
        : {}),
      buckets: page.map((b) => ({ key: keyOf(b.key), doc_count: b.count })),
    };
  }
}

interface TermsSource {
  field?: string;
  missing_bucket?: boolean;
  order?: "asc" | "desc";
}

interface CompositeSpec {
  size?: number;
  sources?: Record<string, { terms?: TermsSource }>[];
  after?: Record<string, unknown>;
}

/** The mapping of a dotted field path (through object properties), if it is mapped. */
function mappingAt(mapping: Mapping, path: string): Mapping | undefined {
  let m: Mapping | undefined = mapping;
  for (const part of path.split(".")) m = m?.properties?.[part];
  return m;
}

function itemError(index: string, id: string | undefined, e: ItemError): Record<string, unknown> {
  return {
    _index: index,
    _id: id ?? null,
    status: e.status,
    error: { type: e.type, reason: e.reason, index_uuid: "fake-uuid", shard: "0", index },
  };
}

function backingName(name: string, generation: number): string {
  const d = new Date();
  const date = `${d.getUTCFullYear()}.${String(d.getUTCMonth() + 1).padStart(2, "0")}.${String(d.getUTCDate()).padStart(2, "0")}`;
  return `.ds-${name}-${date}-${String(generation).padStart(6, "0")}`;
}

function globRe(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
}

function parseBody(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch (err) {
    throw esError(400, "x_content_parse_exception", `[1:1] ${(err as Error).message}`);
  }
}

function parseLine(line: string, i: number): Record<string, unknown> {
  try {
    const v = JSON.parse(line) as Record<string, unknown>;
    if (typeof v !== "object" || v === null || Object.keys(v).length !== 1) throw new Error();
    return v;
  } catch {
    throw esError(
      400,
      "illegal_argument_exception",
      `Malformed action/metadata line [${i + 1}], expected START_OBJECT or END_OBJECT but found [VALUE_STRING]`,
    );
  }
}

function durationMs(v: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(v);
  if (!m)
    throw esError(
      400,
      "illegal_argument_exception",
      `failed to parse setting [keep_alive] with value [${v}] as a time value: unit is missing or unrecognized`,
    );
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms"];
}

/** A value at a dotted path, through nested objects or literal dotted keys. */
function valueAt(source: unknown, path: string): unknown {
  if (source === null || typeof source !== "object") return undefined;
  const o = source as Record<string, unknown>;
  if (path in o) return o[path];
  const parts = path.split(".");
  for (let i = parts.length - 1; i > 0; i--) {
    const head = parts.slice(0, i).join(".");
    if (head in o) return valueAt(o[head], parts.slice(i).join("."));
  }
  return undefined;
}

/**
 * Whether a document matches a query: match_all, term, exists, range (numeric) and bool
 * (filter, must, must_not, should with minimum_should_match: by default 1 when the bool has
 * no filter or must clause, else 0). `read` gives the document's value of a field.
 */
function matches(read: (path: string) => unknown, query: unknown): boolean {
  if (query === undefined || query === null) return true;
  const q = query as Record<string, unknown>;
  const values = (field: string) => {
    const v = read(field);
    return (Array.isArray(v) ? v : [v]).filter((x) => x !== undefined && x !== null);
  };
  if ("match_all" in q) return true;
  if ("term" in q) {
    const [field, spec] = Object.entries(q.term as Record<string, unknown>)[0] as [string, unknown];
    const want =
      typeof spec === "object" && spec !== null ? (spec as { value: unknown }).value : spec;
    return values(field).some((h) => String(h) === String(want));
  }
  if ("exists" in q) {
    const field = (q.exists as { field?: unknown }).field;
    if (typeof field !== "string")
      throw esError(400, "parsing_exception", "[exists] must be provided with a [field]");
    return values(field).length > 0;
  }
  if ("range" in q) {
    const [field, spec] = Object.entries(q.range as Record<string, unknown>)[0] as [
      string,
      { gte?: unknown; gt?: unknown; lte?: unknown; lt?: unknown },
    ];
    return values(field).some((x) => {
      const n = Number(x);
      if (typeof x === "boolean" || !Number.isFinite(n)) return false;
      return (
        (spec.gte === undefined || n >= Number(spec.gte)) &&
        (spec.gt === undefined || n > Number(spec.gt)) &&
        (spec.lte === undefined || n <= Number(spec.lte)) &&
        (spec.lt === undefined || n < Number(spec.lt))
      );
    });
  }
  if ("bool" in q) {
    const b = q.bool as {
      filter?: unknown;
      must?: unknown;
      must_not?: unknown;
      should?: unknown;
      minimum_should_match?: number | string;
    };
    const list = (v: unknown) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
    const required = [...list(b.filter), ...list(b.must)];
    if (!required.every((sub) => matches(read, sub))) return false;
    if (list(b.must_not).some((sub) => matches(read, sub))) return false;
    const should = list(b.should);
    const minimum =
      b.minimum_should_match !== undefined
        ? Number(b.minimum_should_match)
        : required.length === 0 && should.length > 0
          ? 1
          : 0;
    return should.filter((sub) => matches(read, sub)).length >= minimum;
  }
  throw esError(400, "parsing_exception", `unknown query [${Object.keys(q)[0]}]`);
}

interface SortSpec {
  field: string;
  desc: boolean;
  missing: unknown;
}

function parseSort(s: unknown): SortSpec {
  if (typeof s === "string") return { field: s, desc: false, missing: "_last" };
  const [field, spec] = Object.entries(s as Record<string, unknown>)[0] as [string, unknown];
  if (typeof spec === "string") return { field, desc: spec === "desc", missing: "_last" };
  const o = spec as { order?: string; missing?: unknown };
  return { field, desc: o.order === "desc", missing: o.missing ?? "_last" };
}

function sortValue(d: StoredDoc, s: SortSpec, position: number): unknown {
  if (s.field === "_shard_doc" || s.field === "_doc") return position;
  if (s.field === "_index") return d.index;
  let v = valueAt(d.source, s.field);
  if (Array.isArray(v)) v = v[0];
  if (v === undefined || v === null)
    return s.missing === "_last" || s.missing === "_first" ? null : s.missing;
  return v;
}

function compareKeys(a: unknown[], b: unknown[], sort: SortSpec[]): number {
  for (let i = 0; i < sort.length; i++) {
    const s = sort[i] as SortSpec;
    const x = a[i];
    const y = b[i];
    let c: number;
    if (x === null || y === null) {
      const nullsFirst = s.missing === "_first";
      c = x === y ? 0 : x === null ? (nullsFirst ? -1 : 1) : nullsFirst ? 1 : -1;
      if (c !== 0) return c; // missing placement ignores the order direction
      continue;
    }
    c =
      typeof x === "number" && typeof y === "number"
        ? x - y
        : String(x) < String(y)
          ? -1
          : String(x) > String(y)
            ? 1
            : 0;
    if (c !== 0) return s.desc ? -c : c;
  }
  return 0;
}

/** Checks a document against a mapping the way Elasticsearch rejects it: mapper_parsing_exception. */
function checkMapping(
  mapping: Mapping,
  source: Record<string, unknown>,
  id: string,
): ItemError | null {
  const fail = (field: string, type: string, why: string): ItemError => ({
    status: 400,
    type: "document_parsing_exception",
    reason: `[1:1] failed to parse field [${field}] of type [${type}] in document with id '${id}'. Preview of field's value: '${JSON.stringify(why).slice(1, 60)}'`,
  });
  const walk = (m: Mapping, value: Record<string, unknown>, prefix: string): ItemError | null => {
    for (const [key, v] of Object.entries(value)) {
      const path = `${prefix}${key}`;
      const field = m.properties?.[key];
      if (!field) {
        if (m.dynamic === "strict")
          return {
            status: 400,
            type: "strict_dynamic_mapping_exception",
            reason: `[1:1] mapping set to strict, dynamic introduction of [${key}] within [${prefix.replace(/\.$/, "") || "_doc"}] is not allowed`,
          };
        continue;
      }
      if (v === null) continue;
      const type = field.type ?? "object";
      if (type === "object") {
        if (typeof v !== "object" || Array.isArray(v))
          return {
            status: 400,
            type: "document_parsing_exception",
            reason: `[1:1] object mapping for [${path}] tried to parse field [${path}] as object, but found a concrete value`,
          };
        const inner = walk(field, v as Record<string, unknown>, `${path}.`);
        if (inner) return inner;
        continue;
      }
      const values = Array.isArray(v) ? v : [v];
      for (const x of values) {
        if (type === "long" || type === "integer") {
          if (
            !(typeof x === "number" && Number.isInteger(x)) &&
            !(typeof x === "string" && /^-?\d+$/.test(x))
          )
            return fail(path, type, String(x));
        } else if (type === "date" || type === "date_nanos") {
          if (typeof x !== "number" && (typeof x !== "string" || Number.isNaN(Date.parse(x))))
            return fail(path, type, String(x));
        } else if (type === "keyword" || type === "text") {
          if (typeof x === "object" && x !== null) return fail(path, type, JSON.stringify(x));
          if (type === "keyword" && field.index !== false) {
            const immense = immenseTerm(path, [x], field.ignore_above as number | undefined);
            if (immense) return immense;
          }
        } else if (type === "flattened") {
          const limit = field.depth_limit ?? 20;
          if (depthOf(x) > limit)
            return {
              status: 400,
              type: "document_parsing_exception",
              reason: `[1:1] failed to parse field [${path}] of type [flattened]: the provided [flattened] field [${path}] exceeds the maximum depth limit of [${limit}]`,
            };
          const immense = immenseTerm(path, leavesOf(x), field.ignore_above as number | undefined);
          if (immense) return immense;
        }
      }
    }
    return null;
  };
  return walk(mapping, source, "");
}

/** Lucene refuses a term longer than 32766 bytes, unless ignore_above keeps it out of the index. */
function immenseTerm(
  path: string,
  values: unknown[],
  ignoreAbove: number | undefined,
): ItemError | null {
  for (const v of values) {
    if (v === null || typeof v === "object") continue;
    const text = String(v);
    if (ignoreAbove !== undefined && text.length > ignoreAbove) continue;
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > 32766)
      return {
        status: 400,
        type: "illegal_argument_exception",
        reason: `Document contains at least one immense term in field="${path}" (whose UTF8 encoding is longer than the max length 32766), all of which were skipped. Please correct the analyzer to not produce such terms. The prefix of the first immense term is: '${text.slice(0, 30)}...', original message: bytes can be at most 32766 in length; got ${bytes}`,
      };
  }
  return null;
}

function leavesOf(v: unknown): unknown[] {
  if (Array.isArray(v)) return v.flatMap(leavesOf);
  if (typeof v === "object" && v !== null) return Object.values(v).flatMap(leavesOf);
  return [v];
}

function depthOf(v: unknown): number {
  if (Array.isArray(v)) return Math.max(0, ...v.map(depthOf));
  if (typeof v === "object" && v !== null) return 1 + Math.max(0, ...Object.values(v).map(depthOf));
  return 0;
}

/** Elasticsearch's filter_path: comma-separated dotted paths, `*` for any one key; arrays pass through. */
export function filterPath(value: unknown, filter: string): unknown {
  const patterns = filter.split(",").map((p) => p.trim().split("."));
  const apply = (v: unknown, pats: string[][]): unknown => {
    if (Array.isArray(v)) {
      const out = v.map((e) => apply(e, pats)).filter((e) => e !== undefined);
      return out.length ? out : undefined;
    }
    if (typeof v !== "object" || v === null) return undefined;
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) {
      const here = pats.filter((p) => p[0] === "*" || p[0] === k);
      if (here.length === 0) continue;
      if (here.some((p) => p.length === 1)) {
        out[k] = val;
        continue;
      }
      const inner = apply(
        val,
        here.map((p) => p.slice(1)),
      );
      if (inner !== undefined) out[k] = inner;
    }
    return Object.keys(out).length ? out : undefined;
  };
  return apply(value, patterns) ?? {};
}

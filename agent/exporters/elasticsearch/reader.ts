import { CHAIN_ID_PATTERN, leafHash } from "../../integrity/format.js";
import { canonicalize, type JsonValue } from "../../integrity/jcs.js";
import { AgentError } from "../../common/errors.js";
import type {
  AuditSource,
  ChainReader,
  Finding,
  ReadProblems,
  StoredManifest,
  StoredText,
} from "../source.js";
import type { HttpClient } from "../http/client.js";
import { createEsClient, esErrorOf, failForEs, jsonOf, sourceError } from "./client.js";
import type { ElasticsearchExporterConfig } from "./config.js";
import { manifestDocument, manifestId, RECORD_FIELDS, recordDocument } from "./documents.js";

/**
 * Reads back what the Elasticsearch exporter wrote, as a stream: nothing is held but a
 * page of hits, a reorder buffer of at most a page, and one entry per chain.
 *
 * - `chains()` refreshes both indices (POST /<index>/_refresh) and lists the chain ids
 *   with a composite terms aggregation on `audit.chain_id` over each, `read.page_size`
 *   buckets a page. Documents without an indexed chain id (none, from the agent's own
 *   sink) are scanned once to learn which chain they claim.
 * - Per chain, `manifests()` reads the manifests index, and `records()` (after refreshing
 *   the records index again, so that every manifest read has its records in this read:
 *   the sink writes a batch's records before its manifest) the records data stream or
 *   index, each through a point in time (POST /<index>/_pit, then POST /_search with
 *   `pit`, `sort` and `search_after`, `size` = `read.page_size`), or with plain
 *   `search_after` where the cluster has no point in time (a note says so). The query
 *   keeps the chain's documents (`term` on `audit.chain_id`) and, with `fromSeq`, those
 *   from that seq on (`range` on `audit.seq`).
 *
 * Storage order has no meaning in an index: documents are handed on in the order of the
 * seq their canonical text gives (the search sorts by `audit.seq`; a reorder buffer of a
 * page puts a document whose fields disagree with its text back in its place; one moved
 * further than that is handed on where the search put it, and the verifier says so).
 *
 * Memory: a page of hits, the reorder buffer (at most `read.page_size` documents), the
 * _ids of the current seq (for copies), and one entry per chain in the survey.
 *
 * What only the reader can see is judged here:
 * - identical copies of a document under the same `_id` (a batch re-sent across a data
 *   stream rollover lands in a new backing index) are one record: a note, not a finding;
 * - a document without canonical text is `malformed`;
 * - a document whose searchable fields no longer match its canonical text was edited in
 *   place: `modified` (its canonical text is still verified as usual).
 * Everything else (altered or missing records, a different document claiming a seq) is
 * left to the verifier. A document is read with the chain its `audit.chain_id` names
 * (else the chain its text names); one whose text names another chain is handed on with
 * it, and the verifier reports it as stored with the wrong chain.
 */

type Source = ElasticsearchExporterConfig;
type Kind = "records" | "manifests";

interface Hit {
  _index: string;
  _id: string;
  _source?: Record<string, unknown>;
  sort?: unknown[];
}

/** What the survey learned of one index. */
interface IndexInfo {
  name: string;
  kind: Kind;
  /** The index or data stream does not exist. */
  missing: boolean;
  /** The keyword field chain ids are aggregated and filtered on. */
  field: string;
  /** Some documents have no indexed chain id: each chain's query also takes those, and keeps its own. */
  unlabelled: boolean;
}

interface Survey {
  /** Chain ids in chain id order: one entry per chain. */
  chains: string[];
  manifests: IndexInfo;
  records: IndexInfo;
  /** Notes every chain gets: refreshes refused (per index), indices missing. */
  notes: { manifests: string[]; records: string[]; missing: string[] };
}

const UNKNOWN_CHAIN = "(unknown)";
const CHAIN_FIELD = "audit.chain_id";
const SEQ_FIELD = "audit.seq";

export class ElasticsearchSource implements AuditSource {
  readonly description: string;

  constructor(private readonly config: Source) {
    const endpoint = new URL(config.endpoint);
    endpoint.username = "";
    endpoint.password = "";
    this.description = `es:${endpoint.origin}${endpoint.pathname.replace(/\/$/, "")}/${config.index}`;
  }

  /** The chains both indices hold, in chain id order, each read when its streams are. */
  async *chains(): AsyncIterable<ChainReader> {
    const indices = new IndexReader(this.config, this.description);
    indices.session.acquire();
    try {
      const survey = await indices.survey();
      for (const chainId of survey.chains) yield new EsChain(indices, chainId, survey);
    } finally {
      await indices.session.release();
    }
  }
}

/**
 * The HTTP client shared by a source's survey and its chains' streams: made on first use,
 * closed when nothing uses it any more (a stream read after chains() ended makes a new one).
 */
class EsSession {
  private client: HttpClient | null = null;
  private users = 0;

  constructor(private readonly config: Source) {}

  acquire(): HttpClient {
    this.users++;
    this.client ??= createEsClient(this.config);
    return this.client;
  }

  async release(): Promise<void> {
    if (--this.users > 0 || this.client === null) return;
    const client = this.client;
    this.client = null;
    await client.close();
  }
}

/** Searches of the two indices, page by page. */
class IndexReader {
  readonly session: EsSession;

  constructor(
    readonly config: Source,
    readonly description: string,
  ) {
    this.session = new EsSession(config);
  }

  get pageSize(): number {
    return this.config.read.page_size;
  }

  /** Runs `fn` with the session's client; any failure becomes a "cannot read" error. */
  async using<T>(fn: (client: HttpClient) => Promise<T>): Promise<T> {
    const client = this.session.acquire();
    try {
      return await fn(client);
    } catch (err) {
      throw unreadableError(this.description, err);
    } finally {
      await this.session.release();
    }
  }

  /** Refreshes both indices and lists the chains they hold. */
  async survey(): Promise<Survey> {
    return this.using(async (client) => {
      const { index, manifests_index: manifestsIndex } = this.config;
      const notes: Survey["notes"] = { manifests: [], records: [], missing: [] };
      const chains = new Set<string>();
      await this.refresh(client, manifestsIndex, (n) => notes.manifests.push(n));
      const manifests = await this.listChains(client, manifestsIndex, "manifests", chains, notes);
      await this.refresh(client, index, (n) => notes.records.push(n));
      const records = await this.listChains(client, index, "records", chains, notes);
      if (manifests.missing && !records.missing)
        notes.missing.push(`the manifests index "${manifestsIndex}" does not exist`);
      if (records.missing && !manifests.missing)
        notes.missing.push(
          `the records ${this.config.mode === "data_stream" ? "data stream" : "index"} "${index}" does not exist`,
        );
      return {
        chains: [...chains].sort((a, b) => (a < b ? -1 : 1)),
        manifests,
        records,
        notes,
      };
    });
  }

  /**
   * The chain ids of one index, added to `chains`: a composite aggregation on the chain id
   * field (its `.keyword` sub-field where a dynamic mapping made it text), then, if some
   * documents have no indexed chain id, a scan of those for the chain they claim.
   */
  private async listChains(
    client: HttpClient,
    index: string,
    kind: Kind,
    chains: Set<string>,
    notes: Survey["notes"],
  ): Promise<IndexInfo> {
    let field = CHAIN_FIELD;
    let listed = await this.aggregate(client, index, field, chains);
    // Once: the sub-field is never "not aggregatable" (its failures throw).
    while (listed === "not aggregatable") {
      field = `${CHAIN_FIELD}.keyword`;
      listed = await this.aggregate(client, index, field, chains);
    }
    const info: IndexInfo = { name: index, kind, field, ...listed };
    if (info.unlabelled) {
      const note = (n: string) => {
        if (!notes[kind].includes(n)) notes[kind].push(n);
      };
      const query = { bool: { must_not: [{ exists: { field } }] } };
      for await (const hits of this.search(client, info, query, note))
        for (const hit of hits) chains.add(routeOf(hit, kind));
    }
    return info;
  }

  /** Pages of a composite terms aggregation: the chain ids, and whether some documents have none. */
  private async aggregate(
    client: HttpClient,
    index: string,
    field: string,
    chains: Set<string>,
  ): Promise<{ missing: boolean; unlabelled: boolean } | "not aggregatable"> {
    const path = `/${index}/_search?allow_partial_search_results=false`;
    const what = `POST ${client.url(path)}`;
    let after: unknown;
    let unlabelled = false;
    for (;;) {
      const composite = {
        size: this.pageSize,
        sources: [{ chain: { terms: { field, missing_bucket: true } } }],
        ...(after !== undefined ? { after } : {}),
      };
      const res = await client.send({
        method: "POST",
        path,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ size: 0, track_total_hits: false, aggs: { chains: { composite } } }),
      });
      if (res.status === 404 && esErrorOf(res.body).type === "index_not_found_exception")
        return { missing: true, unlabelled: false };
      // A text field (a mapping made without the agent's template) cannot be aggregated.
      if (res.status === 400 && field === CHAIN_FIELD) return "not aggregatable";
      if (res.status !== 200) failForEs(res, what, this.config, readPrivilege(index));
      const page = jsonOf<SearchPage>(res, what, client.url(path));
      this.checkComplete(page, index);
      const agg = page.aggregations?.chains;
      const buckets = agg?.buckets ?? [];
      for (const b of buckets) {
        const key = b.key?.chain;
        if (key === null || key === undefined) unlabelled = true;
        else chains.add(String(key));
      }
      if (buckets.length < this.pageSize) return { missing: false, unlabelled };
      after = agg?.after_key ?? buckets[buckets.length - 1]?.key;
    }
  }

  /** POST /<index>/_refresh, so that everything acknowledged so far is searched. */
  async refresh(client: HttpClient, index: string, note: (n: string) => void): Promise<void> {
    const res = await client.send({
      method: "POST",
      path: `/${index}/_refresh?ignore_unavailable=true&allow_no_indices=true`,
    });
    if (res.status === 200 || res.status === 404) return;
    if (res.status === 401)
      failForEs(res, `POST ${client.url(`/${index}/_refresh`)}`, this.config, "");
    note(
      `could not refresh "${index}" before reading (HTTP ${res.status}${esErrorOf(res.body).type ? ` ${esErrorOf(res.body).type}` : ""}): documents written within the last refresh interval may not be seen (grant the index privilege maintenance to refresh)`,
    );
  }

  /**
   * The documents of `info` that `query` matches, a page at a time, sorted by seq (manifest
   * index) and a tiebreaker; through a point in time where the cluster has one.
   */
  async *search(
    client: HttpClient,
    info: IndexInfo,
    query: object,
    note: (n: string) => void,
  ): AsyncGenerator<Hit[]> {
    const keepAlive = `${Math.max(1, Math.round(this.config.read.keep_alive))}ms`;
    const pit = await this.openPit(client, info.name, keepAlive, note);
    if (pit === "missing") return;
    const state = { pit };
    try {
      let after: unknown[] | undefined;
      for (;;) {
        const got = await this.searchPage(client, info, query, state, keepAlive, after);
        if (got.length > 0) yield got;
        if (got.length < this.pageSize) break;
        after = got[got.length - 1]?.sort;
        if (!after) break;
      }
    } finally {
      if (state.pit)
        await client
          .send({
            method: "DELETE",
            path: "/_pit",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ id: state.pit }),
          })
          .catch(() => undefined); // it expires with its keep-alive anyway
    }
  }

  /** A point in time on `index`: its id, null to read without one (noted), or "missing". */
  private async openPit(
    client: HttpClient,
    index: string,
    keepAlive: string,
    note: (n: string) => void,
  ): Promise<string | null | "missing"> {
    if (!this.config.read.point_in_time) return null;
    const path = `/${index}/_pit?keep_alive=${keepAlive}`;
    const res = await client.send({ method: "POST", path });
    const type = esErrorOf(res.body).type;
    if (res.status === 200)
      return jsonOf<{ id?: string }>(res, `POST ${client.url(path)}`, client.url(path)).id ?? null;
    if (res.status === 404 && type === "index_not_found_exception") return "missing";
    if (res.status === 401 || res.status === 429 || res.status >= 500)
      failForEs(res, `POST ${client.url(path)}`, this.config, readPrivilege(index));
    note(
      `point in time is not available for "${index}" (POST /${index}/_pit answered HTTP ${res.status}${type ? ` ${type}` : ""}); read with plain search_after instead, so documents written during the read may or may not be seen`,
    );
    return null;
  }

  /** One page of hits after `after`. */
  private async searchPage(
    client: HttpClient,
    info: IndexInfo,
    query: object,
    state: { pit: string | null },
    keepAlive: string,
    after: unknown[] | undefined,
  ): Promise<Hit[]> {
    const { name: index, kind } = info;
    const body: Record<string, unknown> = {
      size: this.pageSize,
      sort: sortFor(kind, state.pit !== null),
      track_total_hits: false,
      query,
    };
    if (after) body.search_after = after;
    if (state.pit) body.pit = { id: state.pit, keep_alive: keepAlive };
    const path = `${state.pit ? "" : `/${index}`}/_search?allow_partial_search_results=false`;
    const res = await client.send({
      method: "POST",
      path,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (
      !state.pit &&
      res.status === 404 &&
      esErrorOf(res.body).type === "index_not_found_exception"
    )
      return [];
    if (res.status !== 200)
      failForEs(res, `POST ${client.url(path)}`, this.config, readPrivilege(index));
    const page = jsonOf<SearchPage>(res, `POST ${client.url(path)}`, client.url(path));
    this.checkComplete(page, index);
    if (page.pit_id) state.pit = page.pit_id;
    return page.hits?.hits ?? [];
  }

  /** A search that timed out or lost shards would look like missing records: an error. */
  private checkComplete(page: SearchPage, index: string): void {
    if (page.timed_out || (page._shards?.failed ?? 0) > 0)
      throw new AgentError(
        "SOURCE_UNREADABLE",
        `cannot read ${this.description}: the search of "${index}" was incomplete (${page.timed_out ? "timed out" : `${page._shards?.failed} of ${page._shards?.total} shards failed`}): a partial read would look like missing records; try again when the cluster is healthy`,
      );
  }
}

interface SearchPage {
  pit_id?: string;
  timed_out?: boolean;
  _shards?: { total?: number; failed?: number };
  hits?: { hits?: Hit[] };
  aggregations?: {
    chains?: { after_key?: unknown; buckets?: { key?: { chain?: unknown }; doc_count?: number }[] };
  };
}

function readPrivilege(index: string): string {
  return `reading needs the index privilege read on "${index}"`;
}

function unreadableError(description: string, err: unknown): AgentError {
  if (err instanceof AgentError && err.code === "SOURCE_UNREADABLE") return err;
  return sourceError(description, err);
}

/** Sorted by seq (manifest index), then by shard order in a point in time, else by fields. */
function sortFor(kind: Kind, pit: boolean): unknown[] {
  const primary =
    kind === "records"
      ? { [SEQ_FIELD]: { order: "asc", missing: -1, unmapped_type: "long" } }
      : { "audit.manifest_index": { order: "asc", missing: -1, unmapped_type: "long" } };
  if (pit) return [primary, { _shard_doc: "asc" }];
  return kind === "records"
    ? [
        primary,
        { "audit.leaf_hash": { order: "asc", unmapped_type: "keyword" } },
        { _index: "asc" },
      ]
    : [primary, { [CHAIN_FIELD]: { order: "asc", unmapped_type: "keyword" } }, { _index: "asc" }];
}

/**
 * The query for one chain's documents: its chain id (and, where some documents have none
 * indexed, those too: the chain keeps its own), from `fromSeq` on when given (documents
 * without an indexed seq are kept: the verifier places them).
 */
function chainQuery(info: IndexInfo, chainId: string, fromSeq: number): object {
  const term = { term: { [info.field]: chainId } };
  const chain = info.unlabelled
    ? { bool: { should: [term, lacks(info.field)], minimum_should_match: 1 } }
    : term;
  if (fromSeq <= 0) return { bool: { filter: [chain] } };
  const from = {
    bool: {
      should: [{ range: { [SEQ_FIELD]: { gte: fromSeq } } }, lacks(SEQ_FIELD)],
      minimum_should_match: 1,
    },
  };
  return { bool: { filter: [chain, from] } };
}

function lacks(field: string): object {
  return { bool: { must_not: [{ exists: { field } }] } };
}

function auditOf(hit: Hit): Record<string, unknown> {
  return ((hit._source ?? {}).audit ?? {}) as Record<string, unknown>;
}

/**
 * The chain a document is read with: the chain id it is indexed under, else the one its
 * text names, else "(unknown)".
 */
function routeOf(hit: Hit, kind: Kind): string {
  const audit = auditOf(hit);
  if (typeof audit.chain_id === "string") return audit.chain_id;
  const text = kind === "records" ? audit.canonical : audit.manifest;
  const parsed = typeof text === "string" ? parseJson(text) : null;
  return typeof parsed?.chainId === "string" && CHAIN_ID_PATTERN.test(parsed.chainId)
    ? parsed.chainId
    : UNKNOWN_CHAIN;
}

/** One chain of the two indices, read as two streams of documents. */
class EsChain implements ChainReader {
  constructor(
    private readonly indices: IndexReader,
    readonly chainId: string,
    private readonly survey: Survey,
  ) {}

  async *manifests(problems: ReadProblems): AsyncIterable<StoredManifest> {
    const note = onceEach(problems);
    for (const n of this.survey.notes.manifests) note(n);
    const info = this.survey.manifests;
    if (info.missing) return;
    const docs = new ManifestDocs(this.chainId, problems);
    const query = chainQuery(info, this.chainId, 0);
    for await (const page of this.inOrder(info, query, note, (h) => docs.prepare(h)))
      for (const doc of page) {
        const stored = docs.add(doc);
        if (stored) yield stored;
      }
  }

  async *records(problems: ReadProblems, fromSeq = 0): AsyncIterable<readonly StoredText[]> {
    const note = onceEach(problems);
    const info = this.survey.records;
    for (const n of this.survey.notes.records) note(n);
    const docs = new RecordDocs(this.chainId, problems);
    if (!info.missing) {
      // After the manifests were read: every manifest read has its records in this read.
      await this.indices.using((client) => this.indices.refresh(client, info.name, note));
      const query = chainQuery(info, this.chainId, fromSeq);
      for await (const page of this.inOrder(info, query, note, (h) => docs.prepare(h))) {
        const stored = page.flatMap((doc) => docs.add(doc) ?? []);
        if (stored.length > 0) yield stored;
      }
    }
    for (const n of this.survey.notes.missing) note(n);
    docs.finish(note);
  }

  /**
   * The chain's documents of one index in the order of the seq (manifest index) their text
   * gives, ties in search order: a reorder buffer of a page on top of the search's order.
   */
  private async *inOrder<D extends { key: number }>(
    info: IndexInfo,
    query: object,
    note: (n: string) => void,
    prepare: (hit: Hit) => D,
  ): AsyncGenerator<D[]> {
    const { indices, chainId } = this;
    const buffer = new ReorderBuffer<D>();
    const client = indices.session.acquire();
    try {
      for await (const hits of indices.search(client, info, query, note)) {
        const out: D[] = [];
        for (const hit of hits) {
          if (routeOf(hit, info.kind) !== chainId) continue; // another chain's, unlabelled
          buffer.push(prepare(hit));
          if (buffer.size > indices.pageSize) out.push(buffer.pop());
        }
        if (out.length > 0) yield out;
      }
      const rest: D[] = [];
      while (buffer.size > 0) rest.push(buffer.pop());
      if (rest.length > 0) yield rest;
    } catch (err) {
      throw unreadableError(indices.description, err);
    } finally {
      await indices.session.release();
    }
  }
}

/** A stream's `note`, saying each text once (refreshes and points in time repeat). */
function onceEach(problems: ReadProblems): (text: string) => void {
  const said = new Set<string>();
  return (text) => {
    if (said.has(text)) return;
    said.add(text);
    problems.note(text);
  };
}

/**
 * Documents held back until no document still to come can sort before them: a min-heap by
 * (key, arrival).
 */
class ReorderBuffer<D extends { key: number }> {
  private readonly heap: { doc: D; at: number }[] = [];
  private arrivals = 0;

  get size(): number {
    return this.heap.length;
  }

  push(doc: D): void {
    const heap = this.heap;
    heap.push({ doc, at: this.arrivals++ });
    for (let i = heap.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): D {
    const heap = this.heap;
    const top = heap[0] as { doc: D };
    const last = heap.pop() as { doc: D; at: number };
    if (heap.length > 0) {
      heap[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.less(l, m)) m = l;
        if (r < heap.length && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top.doc;
  }

  private less(a: number, b: number): boolean {
    const x = this.heap[a] as { doc: D; at: number };
    const y = this.heap[b] as { doc: D; at: number };
    return x.doc.key < y.doc.key || (x.doc.key === y.doc.key && x.at < y.at);
  }

  private swap(a: number, b: number): void {
    const t = this.heap[a] as { doc: D; at: number };
    this.heap[a] = this.heap[b] as { doc: D; at: number };
    this.heap[b] = t;
  }
}

/** A record hit, parsed once: its place in the chain is the seq its text gives. */
interface RecordDoc {
  hit: Hit;
  key: number;
  text: unknown;
  env: Record<string, unknown> | null;
}

/**
 * A chain's record documents, judged one by one in seq order. Identical copies under one
 * _id are counted once; they share a seq, so only the current seq's _ids are remembered.
 */
class RecordDocs {
  private seq = Number.NaN;
  private readonly seen: Seen = new Map();
  private dups = 0;
  private readonly shown: string[] = [];

  constructor(
    private readonly chainId: string,
    private readonly problems: ReadProblems,
  ) {}

  prepare(hit: Hit): RecordDoc {
    const audit = auditOf(hit);
    const text = audit.canonical;
    const env = typeof text === "string" ? parseJson(text) : null;
    const key =
      typeof env?.seq === "string" && /^\d+$/.test(env.seq)
        ? Number(env.seq)
        : typeof audit.seq === "number"
          ? audit.seq
          : -1;
    return { hit, key, text, env };
  }

  add({ hit, key: seq, text, env }: RecordDoc): StoredText | null {
    const location = `${hit._index}/_doc/${hit._id}`;
    const src = hit._source ?? {};
    const audit = auditOf(hit);
    if (typeof text !== "string") {
      const chainId = typeof audit.chain_id === "string" ? audit.chain_id : UNKNOWN_CHAIN;
      this.problems.finding({
        category: "malformed",
        chainId,
        location,
        detail:
          "the document has no audit.canonical text: the agent did not write it, or its _source was changed (synthetic _source or source filtering would drop the text)",
        ...(typeof audit.seq === "number" ? { seq: audit.seq } : {}),
      });
      return null;
    }
    const chainId =
      typeof env?.chainId === "string" && CHAIN_ID_PATTERN.test(env.chainId)
        ? env.chainId
        : typeof audit.chain_id === "string"
          ? audit.chain_id
          : UNKNOWN_CHAIN;
    if (seq !== this.seq) {
      this.seq = seq;
      this.seen.clear();
    }
    if (firstCopy(this.seen, `r\u0000${chainId}\u0000${hit._id}`, text)) {
      if (++this.dups <= 5) this.shown.push(`seq ${seq} (_id ${hit._id}) again in ${hit._index}`);
      return null;
    }
    // The searchable fields, for a document whose text is the one its _id commits to.
    if (env !== null && leafHash(Buffer.from(text, "utf8")).toString("hex") === hit._id) {
      let expected: Record<string, unknown> | null;
      try {
        expected = recordDocument(text, hit._id);
      } catch {
        expected = null; // not an envelope: the verifier reports the text
      }
      const differing = expected ? RECORD_FIELDS.filter((f) => !sameJson(expected[f], src[f])) : [];
      if (differing.length > 0)
        this.problems.finding(editedFinding(chainId, location, differing, seq >= 0 ? { seq } : {}));
    }
    return { text, location };
  }

  /** The note on collapsed copies, once the stream has ended. */
  finish(note: (n: string) => void): void {
    if (this.dups > 0)
      note(
        `${this.dups} record(s) are stored twice under the same _id with identical text, counted once (a batch re-sent across a rollover of the data stream; harmless): ${this.shown.join("; ")}${this.dups > 5 ? "; …" : ""}`,
      );
  }
}

/** A manifest hit, parsed once: its place is the index its text gives. */
interface ManifestDoc {
  hit: Hit;
  key: number;
  parsed: Record<string, unknown> | null;
}

/** A chain's manifest documents, judged one by one in index order. */
class ManifestDocs {
  private index = Number.NaN;
  private readonly seen: Seen = new Map();

  constructor(
    private readonly chainId: string,
    private readonly problems: ReadProblems,
  ) {}

  prepare(hit: Hit): ManifestDoc {
    const audit = auditOf(hit);
    const parsed = typeof audit.manifest === "string" ? parseJson(audit.manifest) : null;
    const key =
      parsed !== null
        ? typeof parsed.index === "string" && /^\d+$/.test(parsed.index)
          ? Number(parsed.index)
          : -1
        : typeof audit.manifest_index === "number"
          ? audit.manifest_index
          : -1;
    return { hit, key, parsed };
  }

  add({ hit, key: index, parsed }: ManifestDoc): StoredManifest | null {
    const location = `${hit._index}/_doc/${hit._id}`;
    const src = hit._source ?? {};
    const audit = auditOf(hit);
    const fieldChain = typeof audit.chain_id === "string" ? audit.chain_id : UNKNOWN_CHAIN;
    const text = audit.manifest;
    const checkpoint = audit.checkpoint ?? null;
    if (parsed === null || (checkpoint !== null && typeof checkpoint !== "string")) {
      this.problems.finding({
        category: "malformed",
        chainId: fieldChain,
        location,
        detail:
          typeof text !== "string"
            ? "the manifest document has no audit.manifest text"
            : parsed === null
              ? "audit.manifest is not JSON"
              : "audit.checkpoint is not a signed note (text)",
        ...(typeof audit.manifest_index === "number" ? { manifest: audit.manifest_index } : {}),
      });
      return null;
    }
    const chainId =
      typeof parsed.chainId === "string" && CHAIN_ID_PATTERN.test(parsed.chainId)
        ? parsed.chainId
        : fieldChain;
    if (index !== this.index) {
      this.index = index;
      this.seen.clear();
    }
    const content = `${text as string}\u0000${checkpoint ?? ""}`;
    if (firstCopy(this.seen, `m\u0000${chainId}\u0000${hit._id}`, content)) {
      this.problems.note(
        `manifest ${String(parsed.index)} is stored twice under _id ${hit._id} with identical content (again in ${hit._index}), counted once`,
      );
      return null;
    }
    const stored = {
      manifest: parsed as unknown,
      checkpoint: checkpoint as string | null,
      location,
    };
    if (hit._id !== manifestId(chainId, String(parsed.index))) return stored; // the verifier judges the manifest
    let expected: Record<string, unknown>;
    try {
      expected = manifestDocument(text as string, checkpoint as string | null).doc;
    } catch {
      return stored;
    }
    const differing = ["@timestamp", "audit"].filter((f) => !sameJson(expected[f], src[f]));
    if (differing.length > 0)
      this.problems.finding(
        editedFinding(chainId, location, differing, index >= 0 ? { manifest: index } : {}),
      );
    return stored;
  }
}

/** Contents seen per chain and _id (for the current seq or manifest index only). */
type Seen = Map<string, string[]>;

/**
 * True when a copy with this key (chain and _id) and exactly this content was seen before:
 * a harmless duplicate. Otherwise remembers the content and returns false.
 */
function firstCopy(seen: Seen, key: string, content: string): boolean {
  const known = seen.get(key);
  if (known?.includes(content)) return true;
  if (known) known.push(content);
  else seen.set(key, [content]);
  return false;
}

function parseJson(text: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === undefined || b === undefined) return a === b;
  try {
    return canonicalize(a as JsonValue) === canonicalize(b as JsonValue);
  } catch {
    return false;
  }
}

function editedFinding(
  chainId: string,
  location: string,
  fields: string[],
  at: { seq?: number; manifest?: number },
): Finding {
  return {
    category: "modified",
    chainId,
    location,
    detail: `the document's searchable fields (${fields.join(", ")}) no longer match its canonical text: it was edited in Elasticsearch, so searches show altered data (the canonical text itself is verified separately)`,
    ...at,
  };
}

/**
 * `verify --source es:URL/INDEX`: the last path segment of the URL is the data stream or
 * index, the rest the cluster's URL; `?manifests_index=NAME` overrides `<index>-manifests`,
 * `?page_size=N` sets `read.page_size` (hits per search page, 1 to 10000).
 * Credentials: user:password in the URL, or ES_API_KEY (the base64 "encoded" key), or
 * ES_USERNAME and ES_PASSWORD; a CA file from ES_CA_FILE.
 */
export function parseElasticsearchSpec(
  spec: string,
  env: Record<string, string | undefined> = process.env,
): Record<string, unknown> {
  const usage = `"es:${spec}" is not an Elasticsearch source: write es:URL/INDEX, for example es:http://localhost:9200/audit-logs (credentials from the URL, ES_API_KEY or ES_USERNAME/ES_PASSWORD)`;
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new AgentError("VERIFY_BAD_SOURCE", usage);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new AgentError("VERIFY_BAD_SOURCE", usage);
  const segments = url.pathname.split("/").filter(Boolean);
  const index = segments.pop();
  if (!index) throw new AgentError("VERIFY_BAD_SOURCE", usage);
  const raw: Record<string, unknown> = {
    endpoint: `${url.protocol}//${url.host}${segments.length ? `/${segments.join("/")}` : ""}`,
    index: decodeURIComponent(index),
  };
  const manifests = url.searchParams.get("manifests_index");
  if (manifests) raw.manifests_index = manifests;
  const pageSize = url.searchParams.get("page_size");
  if (pageSize !== null) {
    if (!/^\d+$/.test(pageSize))
      throw new AgentError(
        "VERIFY_BAD_SOURCE",
        `"es:${spec}": page_size must be a whole number of hits per search page, 1 to 10000`,
      );
    raw.read = { page_size: Number(pageSize) };
  }
  if (url.username)
    raw.auth = {
      basic: {
        username: decodeURIComponent(url.username),
        password: decodeURIComponent(url.password),
      },
    };
  else if (env.ES_API_KEY) raw.auth = { api_key: env.ES_API_KEY };
  else if (env.ES_USERNAME)
    raw.auth = { basic: { username: env.ES_USERNAME, password: env.ES_PASSWORD ?? "" } };
  if (env.ES_CA_FILE) raw.tls = { ca_file: env.ES_CA_FILE };
  return raw;
}

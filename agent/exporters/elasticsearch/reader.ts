import { CHAIN_ID_PATTERN, leafHash } from "../../integrity/format.js";
import { canonicalize, type JsonValue } from "../../integrity/jcs.js";
import { AgentError } from "../../common/errors.js";
import {
  type AuditSource,
  type ChainData,
  type Finding,
  type ChainReader,
  chainReaderOf,
} from "../source.js";
import type { HttpClient } from "../http/client.js";
import { createEsClient, esErrorOf, failForEs, jsonOf, sourceError } from "./client.js";
import type { ElasticsearchExporterConfig } from "./config.js";
import { manifestDocument, manifestId, RECORD_FIELDS, recordDocument } from "./documents.js";

/**
 * Reads back what the Elasticsearch exporter wrote: every document of the manifests index,
 * then every document of the records data stream or index, each through a point in time
 * (POST /<index>/_pit, then POST /_search with `pit`, `sort` and `search_after`), or with
 * plain `search_after` where the cluster has no point in time (a note says so).
 *
 * What only the reader can see is judged here:
 * - identical copies of a document under the same `_id` (a batch re-sent across a data
 *   stream rollover lands in a new backing index) are one record: a note, not a finding;
 * - a document without canonical text is `malformed`;
 * - a document whose searchable fields no longer match its canonical text was edited in
 *   place: `modified` (its canonical text is still verified as usual).
 * Everything else (altered or missing records, a different document claiming a seq) is
 * left to the verifier.
 */

type Source = ElasticsearchExporterConfig;

interface Hit {
  _index: string;
  _id: string;
  _source?: Record<string, unknown>;
  sort?: unknown[];
}

interface Scan {
  hits: Hit[];
  /** The index or data stream does not exist. */
  missing: boolean;
}

const UNKNOWN_CHAIN = "(unknown)";

export class ElasticsearchSource implements AuditSource {
  readonly description: string;

  constructor(private readonly config: Source) {
    const endpoint = new URL(config.endpoint);
    endpoint.username = "";
    endpoint.password = "";
    this.description = `es:${endpoint.origin}${endpoint.pathname.replace(/\/$/, "")}/${config.index}`;
  }

  /** Each chain is read whole, then handed on as one page (see chainReaderOf). */
  async *chains(): AsyncIterable<ChainReader> {
    for (const data of await this.loadChains()) yield chainReaderOf(data);
  }

  private async loadChains(): Promise<ChainData[]> {
    const client = createEsClient(this.config);
    try {
      return await this.read(client);
    } catch (err) {
      if (err instanceof AgentError && err.code === "SOURCE_UNREADABLE") throw err;
      throw sourceError(this.description, err);
    } finally {
      await client.close();
    }
  }

  private async read(client: HttpClient): Promise<ChainData[]> {
    const notes: string[] = [];
    const { index, manifests_index: manifestsIndex } = this.config;
    // Manifests first, records after: the sink writes a batch's records before its
    // manifest, so every manifest read has its records in the later read.
    await this.refresh(client, manifestsIndex, notes);
    const manifests = await this.scan(client, manifestsIndex, "manifests", notes);
    await this.refresh(client, index, notes);
    const records = await this.scan(client, index, "records", notes);
    if (manifests.missing && !records.missing)
      notes.push(`the manifests index "${manifestsIndex}" does not exist`);
    if (records.missing && !manifests.missing)
      notes.push(
        `the records ${this.config.mode === "data_stream" ? "data stream" : "index"} "${index}" does not exist`,
      );

    const chains = new Map<string, ChainRef>();
    const chain = (chainId: string) => {
      let c = chains.get(chainId);
      if (!c) {
        c = {
          chainId,
          records: [],
          manifests: [],
          findings: [],
          notes: [],
          dups: [],
          seqOf: new Map(),
        };
        chains.set(chainId, c);
      }
      return c;
    };

    const seen: Seen = new Map();
    for (const hit of manifests.hits) this.addManifest(hit, chain, seen);
    for (const hit of records.hits) this.addRecord(hit, chain, seen);

    const out: ChainData[] = [];
    for (const c of [...chains.values()].sort((a, b) => (a.chainId < b.chainId ? -1 : 1))) {
      // Storage order in an index is the order of seq; a copy without one goes first.
      const order = (o: object) => c.seqOf.get(o) ?? -1;
      c.records.sort((a, b) => order(a) - order(b));
      c.manifests.sort((a, b) => order(a) - order(b));
      if (c.dups.length > 0)
        c.notes.push(
          `${c.dups.length} record(s) are stored twice under the same _id with identical text, counted once (a batch re-sent across a rollover of the data stream; harmless): ${c.dups.slice(0, 5).join("; ")}${c.dups.length > 5 ? "; …" : ""}`,
        );
      out.push({
        chainId: c.chainId,
        records: c.records,
        manifests: c.manifests,
        findings: c.findings,
        notes: [...notes, ...c.notes],
      });
    }
    return out;
  }

  private addRecord(hit: Hit, chain: (id: string) => ChainRef, seen: Seen): void {
    const location = `${hit._index}/_doc/${hit._id}`;
    const src = hit._source ?? {};
    const audit = (src.audit ?? {}) as Record<string, unknown>;
    const text = audit.canonical;
    if (typeof text !== "string") {
      const chainId = typeof audit.chain_id === "string" ? audit.chain_id : UNKNOWN_CHAIN;
      chain(chainId).findings.push({
        category: "malformed",
        chainId,
        location,
        detail:
          "the document has no audit.canonical text: the agent did not write it, or its _source was changed (synthetic _source or source filtering would drop the text)",
        ...(typeof audit.seq === "number" ? { seq: audit.seq } : {}),
      });
      return;
    }
    const env = parseJson(text);
    const chainId =
      typeof env?.chainId === "string" && CHAIN_ID_PATTERN.test(env.chainId)
        ? env.chainId
        : typeof audit.chain_id === "string"
          ? audit.chain_id
          : UNKNOWN_CHAIN;
    const c = chain(chainId);
    const seq =
      typeof env?.seq === "string" && /^\d+$/.test(env.seq)
        ? Number(env.seq)
        : typeof audit.seq === "number"
          ? audit.seq
          : -1;
    if (firstCopy(seen, `r\u0000${chainId}\u0000${hit._id}`, text)) {
      c.dups.push(`seq ${seq} (_id ${hit._id}) again in ${hit._index}`);
      return;
    }
    const stored = { text, location };
    c.records.push(stored);
    c.seqOf.set(stored, seq);
    // The searchable fields, for a document whose text is the one its _id commits to.
    if (env === null || leafHash(Buffer.from(text, "utf8")).toString("hex") !== hit._id) return;
    let expected: Record<string, unknown>;
    try {
      expected = recordDocument(text, hit._id);
    } catch {
      return; // not an envelope: the verifier reports the text
    }
    const differing = RECORD_FIELDS.filter((f) => !sameJson(expected[f], src[f]));
    if (differing.length > 0)
      c.findings.push(editedFinding(chainId, location, differing, seq >= 0 ? { seq } : {}));
  }

  private addManifest(hit: Hit, chain: (id: string) => ChainRef, seen: Seen): void {
    const location = `${hit._index}/_doc/${hit._id}`;
    const src = hit._source ?? {};
    const audit = (src.audit ?? {}) as Record<string, unknown>;
    const fieldChain = typeof audit.chain_id === "string" ? audit.chain_id : UNKNOWN_CHAIN;
    const text = audit.manifest;
    const checkpoint = audit.checkpoint ?? null;
    const parsed = typeof text === "string" ? parseJson(text) : null;
    if (parsed === null || (checkpoint !== null && typeof checkpoint !== "string")) {
      chain(fieldChain).findings.push({
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
      return;
    }
    const chainId =
      typeof parsed.chainId === "string" && CHAIN_ID_PATTERN.test(parsed.chainId)
        ? parsed.chainId
        : fieldChain;
    const c = chain(chainId);
    const content = `${text as string}\u0000${checkpoint ?? ""}`;
    if (firstCopy(seen, `m\u0000${chainId}\u0000${hit._id}`, content)) {
      c.notes.push(
        `manifest ${String(parsed.index)} is stored twice under _id ${hit._id} with identical content (again in ${hit._index}), counted once`,
      );
      return;
    }
    const stored = {
      manifest: parsed as unknown,
      checkpoint: checkpoint as string | null,
      location,
    };
    c.manifests.push(stored);
    const index =
      typeof parsed.index === "string" && /^\d+$/.test(parsed.index) ? Number(parsed.index) : -1;
    c.seqOf.set(stored, index);
    if (hit._id !== manifestId(chainId, String(parsed.index))) return; // the verifier judges the manifest
    let expected: Record<string, unknown>;
    try {
      expected = manifestDocument(text as string, checkpoint as string | null).doc;
    } catch {
      return;
    }
    const differing = ["@timestamp", "audit"].filter((f) => !sameJson(expected[f], src[f]));
    if (differing.length > 0)
      c.findings.push(
        editedFinding(chainId, location, differing, index >= 0 ? { manifest: index } : {}),
      );
  }

  /** POST /<index>/_refresh, so that everything acknowledged so far is searched. */
  private async refresh(client: HttpClient, index: string, notes: string[]): Promise<void> {
    const res = await client.send({
      method: "POST",
      path: `/${index}/_refresh?ignore_unavailable=true&allow_no_indices=true`,
    });
    if (res.status === 200 || res.status === 404) return;
    if (res.status === 401)
      failForEs(res, `POST ${client.url(`/${index}/_refresh`)}`, this.config, "");
    notes.push(
      `could not refresh "${index}" before reading (HTTP ${res.status}${esErrorOf(res.body).type ? ` ${esErrorOf(res.body).type}` : ""}): documents written within the last refresh interval may not be seen (grant the index privilege maintenance to refresh)`,
    );
  }

  /** Every document of `index`, sorted by seq (manifest index) and a tiebreaker. */
  private async scan(
    client: HttpClient,
    index: string,
    kind: "records" | "manifests",
    notes: string[],
  ): Promise<Scan> {
    const read = this.config.read;
    const keepAlive = `${Math.max(1, Math.round(read.keep_alive))}ms`;
    const primary =
      kind === "records"
        ? { "audit.seq": { order: "asc", missing: -1, unmapped_type: "long" } }
        : { "audit.manifest_index": { order: "asc", missing: -1, unmapped_type: "long" } };
    const privilege = `reading needs the index privilege read on "${index}"`;
    let pit: string | null = null;
    if (read.point_in_time) {
      const path = `/${index}/_pit?keep_alive=${keepAlive}`;
      const res = await client.send({ method: "POST", path });
      const type = esErrorOf(res.body).type;
      if (res.status === 200) {
        pit = jsonOf<{ id?: string }>(res, `POST ${client.url(path)}`, client.url(path)).id ?? null;
      } else if (res.status === 404 && type === "index_not_found_exception") {
        return { hits: [], missing: true };
      } else if (res.status === 401 || res.status === 429 || res.status >= 500) {
        failForEs(res, `POST ${client.url(path)}`, this.config, privilege);
      } else {
        const note = `point in time is not available for "${index}" (POST /${index}/_pit answered HTTP ${res.status}${type ? ` ${type}` : ""}); read with plain search_after instead, so documents written during the read may or may not be seen`;
        if (!notes.includes(note)) notes.push(note);
      }
    }
    const sort = pit
      ? [primary, { _shard_doc: "asc" }]
      : kind === "records"
        ? [
            primary,
            { "audit.leaf_hash": { order: "asc", unmapped_type: "keyword" } },
            { _index: "asc" },
          ]
        : [
            primary,
            { "audit.chain_id": { order: "asc", unmapped_type: "keyword" } },
            { _index: "asc" },
          ];
    const hits: Hit[] = [];
    try {
      let after: unknown[] | undefined;
      for (;;) {
        const body: Record<string, unknown> = {
          size: read.page_size,
          sort,
          track_total_hits: false,
          query: { match_all: {} },
        };
        if (after) body.search_after = after;
        if (pit) body.pit = { id: pit, keep_alive: keepAlive };
        const path = `${pit ? "" : `/${index}`}/_search?allow_partial_search_results=false`;
        const res = await client.send({
          method: "POST",
          path,
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        if (!pit && res.status === 404 && esErrorOf(res.body).type === "index_not_found_exception")
          return { hits: [], missing: true };
        if (res.status !== 200) failForEs(res, `POST ${client.url(path)}`, this.config, privilege);
        const page = jsonOf<{
          pit_id?: string;
          timed_out?: boolean;
          _shards?: { total?: number; failed?: number };
          hits?: { hits?: Hit[] };
        }>(res, `POST ${client.url(path)}`, client.url(path));
        if (page.timed_out || (page._shards?.failed ?? 0) > 0)
          throw new AgentError(
            "SOURCE_UNREADABLE",
            `cannot read ${this.description}: the search of "${index}" was incomplete (${page.timed_out ? "timed out" : `${page._shards?.failed} of ${page._shards?.total} shards failed`}): a partial read would look like missing records; try again when the cluster is healthy`,
          );
        if (page.pit_id) pit = page.pit_id;
        const got = page.hits?.hits ?? [];
        hits.push(...got);
        if (got.length < read.page_size) break;
        after = got[got.length - 1]?.sort;
        if (!after) break;
      }
    } finally {
      if (pit)
        await client
          .send({
            method: "DELETE",
            path: "/_pit",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ id: pit }),
          })
          .catch(() => undefined); // it expires with its keep-alive anyway
    }
    return { hits, missing: false };
  }
}

type ChainRef = ChainData & { dups: string[]; seqOf: Map<object, number> };
/** Contents seen per chain and _id. */
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
 * index, the rest the cluster's URL; `?manifests_index=NAME` overrides `<index>-manifests`.
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

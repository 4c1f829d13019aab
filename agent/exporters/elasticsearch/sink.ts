import type { Logger } from "../../telemetry/logger.js";
import type { HttpClient } from "../http/client.js";
import {
  PermanentExportError,
  type RecordSink,
  RetryableExportError,
  type SealedBatch,
  type SealedRecord,
} from "../api.js";
import {
  createEsClient,
  describeError,
  type EsErrorInfo,
  errorInfo,
  failForEs,
  jsonOf,
} from "./client.js";
import type { ElasticsearchExporterConfig } from "./config.js";
import { indexTemplates, manifestDocument, recordDocument } from "./documents.js";

/**
 * Writes each sealed batch with `_bulk`: its records as `create` actions with
 * `_id` = leaf hash (hex) into the data stream or index, then its signed manifest and
 * checkpoint as one `create` with `_id` = `<chain id>:<manifest index>` into the
 * manifests index. `create` never overwrites: an item answered 409
 * (version_conflict_engine_exception) is already stored, so a re-sent batch adds nothing.
 *
 * Per item: 201 and 409 count as stored; 429, es_rejected_execution_exception and 5xx are
 * retried (only the items not yet stored are sent again); anything else (a mapping or
 * parse error, a missing privilege) stops the exporter with the item named, its records
 * kept in the WAL. The manifest goes last, only once every record of the batch is stored;
 * a 409 on it is accepted only when the stored manifest is this one.
 */

const BULK_FILTER = "filter_path=errors,items.*._id,items.*.status,items.*.error";
const JSON_HEADERS = { "content-type": "application/json" };
const NDJSON_HEADERS = { "content-type": "application/x-ndjson" };

interface BulkItem {
  id: string;
  /** Action and document lines, each ending in "\n". */
  lines: string;
  /** For messages: "record seq 12" or "manifest 3". */
  what: string;
}

interface ItemResult {
  status: number;
  _id?: unknown;
  error?: unknown;
}

interface ItemFailure {
  item: BulkItem;
  status: number;
  info: EsErrorInfo;
}

export class ElasticsearchSink implements RecordSink {
  private client: HttpClient | null = null;
  private chainId = "";
  /** Records of the batch being written that Elasticsearch confirmed (201 or 409), by _id. */
  private confirmed: { index: number; ids: Set<string> } | null = null;

  constructor(
    private readonly config: ElasticsearchExporterConfig,
    private readonly logger: Logger,
  ) {}

  async open(chainId: string): Promise<number | null> {
    this.chainId = chainId;
    this.confirmed = null;
    this.client ??= createEsClient(this.config);
    if (this.config.template.install) await this.installTemplates();
    this.logger.info(
      {
        endpoint: this.config.endpoint,
        index: this.config.index,
        mode: this.config.mode,
        manifestsIndex: this.config.manifests_index,
        templates: this.config.template.install,
        chainId,
      },
      "elasticsearch exporter ready",
    );
    // Delivery resumes from its own cursor. A batch re-sent after a crash is answered 409
    // item by item and adds nothing (see docs/exporter-elasticsearch.md for why the held
    // batch is not looked up here).
    return null;
  }

  private async installTemplates(): Promise<void> {
    const client = this.client as HttpClient;
    for (const t of indexTemplates(this.config)) {
      const path = `/_index_template/${encodeURIComponent(t.name)}`;
      const res = await client.send({
        method: "PUT",
        path,
        headers: JSON_HEADERS,
        body: JSON.stringify(t.body),
      });
      if (res.status >= 200 && res.status < 300) continue;
      failForEs(
        res,
        `installing index template "${t.name}" (PUT ${client.url(path)})`,
        this.config,
        "installing index templates needs the cluster privilege manage_index_templates: grant it to this user or API key, or install the templates yourself (docs/exporter-elasticsearch.md, Index templates) and set template.install: false",
      );
    }
  }

  async write(batch: SealedBatch): Promise<void> {
    if (this.client === null)
      throw new RetryableExportError("the elasticsearch exporter is not open");
    if (this.confirmed?.index !== batch.index)
      this.confirmed = { index: batch.index, ids: new Set() };
    const confirmed = this.confirmed.ids;

    const items: BulkItem[] = [];
    for (const r of batch.records) {
      const item = recordItem(r);
      if (!confirmed.has(item.id)) items.push(item);
    }
    const retry: ItemFailure[] = [];
    let created = 0;
    let existing = 0;
    for (const chunk of chunksOf(items, this.config.max_request_size_kib * 1024)) {
      const results = await this.bulk(this.config.index, chunk, `records of batch ${batch.index}`);
      const permanent: ItemFailure[] = [];
      chunk.forEach((item, i) => {
        const r = results[i] as ItemResult;
        if (r.status === 201 || r.status === 200) created++;
        else if (r.status === 409) existing++;
        else {
          const failure = { item, status: r.status, info: errorInfo(r.error) };
          (isRetryableItem(failure) ? retry : permanent).push(failure);
          return;
        }
        confirmed.add(item.id);
      });
      if (permanent.length > 0) throw this.itemError(permanent, batch, this.config.index);
    }
    if (existing > 0 || retry.length > 0)
      this.logger.debug(
        { batch: batch.index, created, existing, retry: retry.length },
        "bulk item results",
      );
    if (retry.length > 0) {
      const first = retry[0] as ItemFailure;
      throw new RetryableExportError(
        `${retry.length} of ${batch.records.length} records of batch ${batch.index} were not accepted yet (${first.item.what}: HTTP ${first.status} ${describeError(first.info)}); the ${retry.length} are sent again`,
      );
    }

    const { id, doc } = manifestDocument(batch.manifest, batch.checkpoint);
    const item: BulkItem = {
      id,
      lines: `${JSON.stringify({ create: { _id: id } })}\n${JSON.stringify(doc)}\n`,
      what: `manifest ${batch.index}`,
    };
    const [r] = await this.bulk(
      this.config.manifests_index,
      [item],
      `manifest of batch ${batch.index}`,
    );
    const result = r as ItemResult;
    if (result.status === 409) {
      await this.confirmManifest(id, batch);
      return;
    }
    if (result.status === 201 || result.status === 200) return;
    const failure = { item, status: result.status, info: errorInfo(result.error) };
    if (isRetryableItem(failure))
      throw new RetryableExportError(
        `the manifest of batch ${batch.index} was not accepted yet: HTTP ${failure.status} ${describeError(failure.info)}`,
      );
    throw this.itemError([failure], batch, this.config.manifests_index);
  }

  /** POST /<index>/_bulk; returns one result per item, in order. */
  private async bulk(index: string, items: BulkItem[], what: string): Promise<ItemResult[]> {
    const client = this.client as HttpClient;
    const path = `/${index}/_bulk?${BULK_FILTER}`;
    const url = client.url(`/${index}/_bulk`);
    const res = await client.send({
      method: "POST",
      path,
      headers: NDJSON_HEADERS,
      body: items.map((i) => i.lines).join(""),
    });
    if (res.status !== 200)
      failForEs(
        res,
        `POST ${url} (${what})`,
        this.config,
        `writing needs the index privilege create_doc on "${this.config.index}" and "${this.config.manifests_index}" (and auto_configure, or create_index, to create them on first write)`,
      );
    const parsed = jsonOf<{ errors?: boolean; items?: Record<string, ItemResult>[] }>(
      res,
      `POST ${url} (${what})`,
      url,
    );
    const results = Array.isArray(parsed.items)
      ? parsed.items.map((it) => Object.values(it ?? {})[0])
      : [];
    if (results.length !== items.length || results.some((r) => typeof r?.status !== "number"))
      throw new RetryableExportError(
        `POST ${url} (${what}): the response holds ${results.length} item results for ${items.length} documents`,
      );
    // `create` with our `_id` is what makes a re-sent batch add nothing: a server that stores
    // a document under another id would store every re-send again, unseen until a verify.
    const moved = (results as ItemResult[]).findIndex(
      (r, i) => r.status < 300 && r._id !== (items[i] as BulkItem).id,
    );
    if (moved >= 0)
      throw new PermanentExportError(
        `POST ${url} (${what}): ${(items[moved] as BulkItem).what} was sent with _id ${(items[moved] as BulkItem).id} and stored as ${JSON.stringify((results[moved] as ItemResult)._id ?? null)}: this server does not keep the _id of a create, so a re-sent batch would be stored twice. Use Elasticsearch 7.10 or later, or OpenSearch 1.x or 2.x (docs/exporter-elasticsearch.md, Supported servers)`,
      );
    return results as ItemResult[];
  }

  /** A 409 on a manifest: fine when the stored one is this very manifest. */
  private async confirmManifest(id: string, batch: SealedBatch): Promise<void> {
    const client = this.client as HttpClient;
    const path = `/${this.config.manifests_index}/_doc/${encodeURIComponent(id)}`;
    const url = client.url(path);
    const res = await client.send({ method: "GET", path });
    if (res.status === 404)
      throw new RetryableExportError(
        `manifest ${batch.index}: the create was answered 409 (already exists), but GET ${url} finds no document`,
      );
    if (res.status !== 200)
      failForEs(
        res,
        `GET ${url}`,
        this.config,
        `confirming an existing manifest needs the index privilege read on "${this.config.manifests_index}"`,
      );
    const stored = jsonOf<{ _source?: { audit?: { manifest?: unknown; checkpoint?: unknown } } }>(
      res,
      `GET ${url}`,
      url,
    );
    const audit = stored._source?.audit;
    if (audit?.manifest === batch.manifest && (audit.checkpoint ?? null) === batch.checkpoint)
      return;
    throw new PermanentExportError(
      `${url} already holds a different manifest ${batch.index} for chain ${this.chainId}: something other than this agent wrote it (another agent with the same chain_id, or tampering). The agent never overwrites; keep that document as evidence, and point this exporter at another index (index / manifests_index)`,
    );
  }

  private itemError(
    failures: ItemFailure[],
    batch: SealedBatch,
    index: string,
  ): PermanentExportError {
    const f = failures[0] as ItemFailure;
    const more =
      failures.length > 1 ? ` (and ${failures.length - 1} more items of this batch)` : "";
    return new PermanentExportError(
      `Elasticsearch refused ${f.item.what} of batch ${batch.index} (_id ${f.item.id}) in "${index}": HTTP ${f.status} ${describeError(f.info)}${more}: ${itemHint(f, index)}. Nothing was skipped: the batch stays in the write-ahead log and is sent again when the agent restarts`,
    );
  }

  async close(): Promise<void> {
    await this.client?.close();
    this.client = null;
  }
}

function recordItem(r: SealedRecord): BulkItem {
  const id = r.leafHashHex();
  const text = r.canonicalText();
  return {
    id,
    lines: `{"create":{"_id":"${id}"}}\n${JSON.stringify(recordDocument(text, id))}\n`,
    what: `record seq ${r.seq}`,
  };
}

/** Items in order, in groups whose bodies stay under `limit` bytes (one item at least). */
function chunksOf(items: BulkItem[], limit: number): BulkItem[][] {
  const chunks: BulkItem[][] = [];
  let chunk: BulkItem[] = [];
  let size = 0;
  for (const item of items) {
    const bytes = Buffer.byteLength(item.lines);
    if (chunk.length > 0 && size + bytes > limit) {
      chunks.push(chunk);
      chunk = [];
      size = 0;
    }
    chunk.push(item);
    size += bytes;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

const RETRYABLE_TYPES = new Set([
  "es_rejected_execution_exception",
  "circuit_breaking_exception",
  "unavailable_shards_exception",
  "cluster_block_exception", // e.g. a read-only block while the disk watermark is exceeded
]);

function isRetryableItem(f: ItemFailure): boolean {
  return (
    f.status === 429 ||
    f.status === 408 ||
    f.status >= 500 ||
    (f.info.type !== undefined && RETRYABLE_TYPES.has(f.info.type))
  );
}

function itemHint(f: ItemFailure, index: string): string {
  const type = f.info.type ?? "";
  if (f.status === 401 || f.status === 403 || type === "security_exception")
    return `grant this user or API key the index privilege create_doc on "${index}"`;
  if (f.status === 404 || type === "index_not_found_exception")
    return `"${index}" does not exist and cannot be created automatically: set template.install: true (or install the templates yourself) and allow auto-creation of "${index}" (action.auto_create_index), or create it`;
  if (f.status === 400 || /mapper|parsing|mapping|illegal_argument/.test(type))
    return `the mapping of "${index}" does not accept the document: install the exporter's index template (template.install: true) before the index or data stream is created, and make sure no other template, default pipeline or ingest pipeline changes its fields (docs/exporter-elasticsearch.md, Mapping)`;
  return "see the Elasticsearch error above";
}

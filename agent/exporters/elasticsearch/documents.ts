import type { ElasticsearchExporterConfig } from "./config.js";

/**
 * What the Elasticsearch exporter stores: the record and manifest documents and the index
 * templates that map them. Every searchable field of a record document is a pure function
 * of its canonical text (recordDocument), so the reader can recompute them and tell when a
 * document was edited in place. docs/exporter-elasticsearch.md describes the fields.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** OTLP/JSON AnyValue as it appears in canonical records. */
interface AnyValueJson {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string;
  doubleValue?: number | string;
  bytesValue?: string;
  arrayValue?: { values?: AnyValueJson[] };
  kvlistValue?: { values?: KeyValueJson[] };
}
interface KeyValueJson {
  key: string;
  value?: AnyValueJson;
}

interface CanonicalRecord {
  chainId: string;
  prev: string;
  seq: string;
  timeReceivedUnixNano: string;
  /** What the agent knew of the sender (integrity-format §2.4), on version-2 lines. */
  source?: Record<string, string>;
  record: {
    logRecord?: {
      attributes?: KeyValueJson[];
      body?: AnyValueJson;
      eventName?: string;
      severityNumber?: number;
      severityText?: string;
      spanId?: string;
      traceId?: string;
      timeUnixNano?: string;
      observedTimeUnixNano?: string;
    };
    resource?: { attributes?: KeyValueJson[] };
    scope?: { name?: string; version?: string };
  };
}

/** Longest keyword value indexed (Lucene's term limit is 32766 bytes; 8191 chars fit it in UTF-8). */
const KEYWORD_IGNORE_ABOVE = 8191;
/** Nested key/value lists deeper than this become one JSON string value. */
const MAX_KV_DEPTH = 8;
/** date_nanos covers 1970-01-01 to 2262-04-11T23:47:16.854775807Z. */
const MAX_DATE_NANOS = 9223372036854775807n;

/**
 * The record document for canonical `text` with leaf hash `leafHashHex`. Throws when the
 * text is not a record envelope (the agent's own records always are).
 */
export function recordDocument(text: string, leafHashHex: string): JsonObject {
  const env = JSON.parse(text) as CanonicalRecord;
  if (typeof env !== "object" || env === null || typeof env.record !== "object")
    throw new Error("not a record envelope");
  const log = env.record.logRecord ?? {};
  const received = isoNanos(env.timeReceivedUnixNano);
  const audit: JsonObject = {
    chain_id: env.chainId,
    seq: Number(env.seq),
    leaf_hash: leafHashHex,
    prev: env.prev,
  };
  if (received !== null) audit.received = received;
  // Flat already (names to strings): searchable as audit.source.k8s.pod.name, apart from the
  // resource attributes the application claims.
  if (isStringMap(env.source)) audit.source = env.source;
  audit.canonical = text;
  const doc: JsonObject = {
    "@timestamp":
      isoNanos(log.timeUnixNano) ??
      isoNanos(log.observedTimeUnixNano) ??
      received ??
      "1970-01-01T00:00:00.000000000Z",
    audit,
  };
  const serviceName = env.record.resource?.attributes?.find((a) => a.key === "service.name")?.value
    ?.stringValue;
  if (serviceName !== undefined) doc.service = { name: serviceName };
  if (log.severityText !== undefined || log.severityNumber !== undefined) {
    const severity: JsonObject = {};
    if (log.severityText !== undefined) severity.text = log.severityText;
    if (log.severityNumber !== undefined) severity.number = log.severityNumber;
    doc.severity = severity;
  }
  if (log.eventName !== undefined) doc.event = { name: log.eventName };
  if (log.body !== undefined) {
    const body = plain(log.body, 0);
    if (body !== null) doc.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  if (log.attributes?.length) doc.attributes = flattenAttributes(log.attributes);
  const resourceAttributes = env.record.resource?.attributes;
  if (resourceAttributes?.length)
    doc.resource = { attributes: flattenAttributes(resourceAttributes) };
  const scope = env.record.scope;
  if (scope?.name !== undefined || scope?.version !== undefined) {
    const s: JsonObject = {};
    if (scope.name !== undefined) s.name = scope.name;
    if (scope.version !== undefined) s.version = scope.version;
    doc.scope = s;
  }
  if (log.traceId !== undefined) doc.trace_id = log.traceId;
  if (log.spanId !== undefined) doc.span_id = log.spanId;
  return doc;
}

function isStringMap(v: unknown): v is Record<string, string> {
  return (
    typeof v === "object" &&
    v !== null &&
    !Array.isArray(v) &&
    Object.values(v).every((s) => typeof s === "string")
  );
}

/** The top-level members recordDocument writes, the ones the reader compares. */
export const RECORD_FIELDS = [
  "@timestamp",
  "audit",
  "service",
  "severity",
  "event",
  "body",
  "attributes",
  "resource",
  "scope",
  "trace_id",
  "span_id",
] as const;

/**
 * Attributes as one flat object for a `flattened` field: nested key/value lists become
 * dotted keys ("http.request.id"), arrays keep their scalar elements, anything deeper is a
 * JSON string. Depth is always 1, so the mapping's depth_limit cannot be hit; a repeated
 * key keeps its last value (the canonical text keeps them all).
 */
export function flattenAttributes(list: readonly KeyValueJson[]): JsonObject {
  const out = new Map<string, Json>();
  flattenInto(out, "", list, 0);
  return Object.fromEntries(out) as JsonObject;
}

function flattenInto(
  out: Map<string, Json>,
  prefix: string,
  list: readonly KeyValueJson[],
  depth: number,
) {
  for (const kv of list) {
    const key = `${prefix}${kv.key === "" ? "_empty_" : kv.key}`;
    const v = kv.value;
    if (v === undefined) continue;
    if (v.kvlistValue !== undefined && depth < MAX_KV_DEPTH) {
      flattenInto(out, `${key}.`, v.kvlistValue.values ?? [], depth + 1);
      continue;
    }
    if (v.arrayValue !== undefined) {
      const values = (v.arrayValue.values ?? [])
        .map((e) => {
          const p = plain(e, depth + 1);
          return p !== null && typeof p === "object" ? JSON.stringify(p) : p;
        })
        .filter((e) => e !== null);
      if (values.length > 0) out.set(key, values);
      continue;
    }
    const p = plain(v, depth);
    if (p === null) continue;
    out.set(key, typeof p === "object" ? JSON.stringify(p) : p);
  }
}

/** An AnyValue as plain JSON: strings, booleans, numbers, arrays and objects; null when unset. */
function plain(v: AnyValueJson, depth: number): Json {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return v.intValue; // int64 as its decimal text: exact
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.bytesValue !== undefined) return v.bytesValue;
  if (v.arrayValue !== undefined)
    return (v.arrayValue.values ?? []).map((e) => plain(e, depth + 1));
  if (v.kvlistValue !== undefined) {
    const o = new Map<string, Json>();
    for (const kv of v.kvlistValue.values ?? [])
      o.set(kv.key, kv.value ? plain(kv.value, depth + 1) : null);
    return Object.fromEntries(o) as JsonObject;
  }
  return null;
}

/** Unix nanoseconds (decimal text) as an RFC 3339 time with 9 fraction digits; null when unset or outside date_nanos. */
export function isoNanos(value: string | undefined): string | null {
  if (value === undefined || !/^\d{1,19}$/.test(value)) return null;
  const n = BigInt(value);
  if (n <= 0n || n > MAX_DATE_NANOS) return null;
  const seconds = n / 1_000_000_000n;
  const fraction = (n % 1_000_000_000n).toString().padStart(9, "0");
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}.${fraction}Z`;
}

/** `_id` of a manifest document: unique per chain and manifest index. */
export function manifestId(chainId: string, index: number | string): string {
  return `${chainId}:${index}`;
}

interface ManifestFields {
  chainId: string;
  index: string;
  type: string;
  firstSeq?: string;
  lastSeq?: string;
  count?: number;
  keyId: string;
  treeSize: string;
  createdAt: string;
}

/** The manifest document: the signed manifest text and its checkpoint note, both verbatim. */
export function manifestDocument(
  manifest: string,
  checkpoint: string | null,
): { id: string; doc: JsonObject } {
  const m = JSON.parse(manifest) as ManifestFields;
  const audit: JsonObject = {
    chain_id: m.chainId,
    manifest_index: Number(m.index),
    type: m.type,
  };
  if (m.firstSeq !== undefined) audit.first_seq = Number(m.firstSeq);
  if (m.lastSeq !== undefined) audit.last_seq = Number(m.lastSeq);
  if (m.count !== undefined) audit.count = m.count;
  audit.key_id = m.keyId;
  audit.tree_size = Number(m.treeSize);
  audit.manifest = manifest;
  audit.checkpoint = checkpoint;
  return { id: manifestId(m.chainId, m.index), doc: { "@timestamp": m.createdAt, audit } };
}

/** Stored but neither indexed nor in doc values: returned from _source exactly as sent. */
const STORED_ONLY = { type: "keyword", index: false, doc_values: false } as const;
const keyword = (ignoreAbove = 1024) => ({ type: "keyword", ignore_above: ignoreAbove });

export const RECORD_MAPPINGS = {
  dynamic: false,
  properties: {
    "@timestamp": { type: "date_nanos" },
    audit: {
      properties: {
        chain_id: keyword(),
        seq: { type: "long" },
        leaf_hash: keyword(),
        prev: keyword(),
        received: { type: "date_nanos" },
        source: { type: "flattened", ignore_above: 1024 },
        canonical: STORED_ONLY,
      },
    },
    service: { properties: { name: keyword() } },
    severity: {
      properties: { text: keyword(256), number: { type: "integer" } },
    },
    event: { properties: { name: keyword() } },
    body: { type: "text" },
    attributes: { type: "flattened", ignore_above: KEYWORD_IGNORE_ABOVE },
    resource: {
      properties: { attributes: { type: "flattened", ignore_above: KEYWORD_IGNORE_ABOVE } },
    },
    scope: { properties: { name: keyword(), version: keyword() } },
    trace_id: keyword(),
    span_id: keyword(),
  },
} as const;

export const MANIFEST_MAPPINGS = {
  dynamic: false,
  properties: {
    "@timestamp": { type: "date" },
    audit: {
      properties: {
        chain_id: keyword(),
        manifest_index: { type: "long" },
        type: keyword(),
        first_seq: { type: "long" },
        last_seq: { type: "long" },
        count: { type: "long" },
        key_id: keyword(),
        tree_size: { type: "long" },
        manifest: STORED_ONLY,
        checkpoint: STORED_ONLY,
      },
    },
  },
} as const;

export interface IndexTemplate {
  name: string;
  body: JsonObject;
}

/** The two composable index templates the exporter installs (PUT /_index_template/<name>). */
export function indexTemplates(config: ElasticsearchExporterConfig): IndexTemplate[] {
  const t = config.template;
  const withSettings = (settings: Record<string, string | number | boolean>): JsonObject =>
    Object.keys(settings).length > 0 ? { settings } : {};
  const meta = {
    managed_by: "otel-audit-agent",
    description: "audit records: see docs/exporter-elasticsearch.md",
  };
  return [
    {
      name: t.name ?? config.index,
      body: {
        index_patterns: [config.index],
        ...(config.mode === "data_stream" ? { data_stream: {} } : {}),
        priority: t.priority,
        template: {
          ...withSettings(t.settings),
          mappings: RECORD_MAPPINGS as unknown as JsonObject,
        },
        _meta: meta,
      },
    },
    {
      name: t.manifests_name ?? config.manifests_index,
      body: {
        index_patterns: [config.manifests_index],
        priority: t.priority,
        template: {
          ...withSettings(t.manifests_settings),
          mappings: MANIFEST_MAPPINGS as unknown as JsonObject,
        },
        _meta: {
          ...meta,
          description: "signed audit manifests: see docs/exporter-elasticsearch.md",
        },
      },
    },
  ];
}

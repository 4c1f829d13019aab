import type { StoredRecord } from "../../buffer/wal.js";
import { CANONICAL_OFFSET, HASH_BYTES } from "../../buffer/keys.js";
import type { SealedBatch } from "../sink.js";
import type { LokiExporterConfig } from "./config.js";

/**
 * Builds the JSON bodies of POST /loki/api/v1/push for one sealed batch (the Loki HTTP
 * API's JSON form: {"streams":[{"stream":{labels},"values":[["<ns>","<line>",{metadata}]]}]}).
 *
 * Entry i of batch k is stamped `base + i` ns and the manifest `base + records`, where
 * `base` is fixed when the batch is first stamped (sink.ts), so every body is a pure
 * function of the batch and its stamp: a re-send is byte-identical and Loki drops the
 * copies as duplicates of (stream, timestamp, line).
 */

export interface PushBody {
  body: string;
  entries: number;
  /** What the body holds, for messages: "records 10..19" or "manifest". */
  what: string;
}

/** Bytes a value adds to the body beyond its line (timestamp, metadata, JSON syntax). */
const ENTRY_OVERHEAD = 160;

export class PushBuilder {
  private readonly staticPairs: [string, string][];
  private readonly attributeLabels: [string, string][];

  constructor(
    private readonly config: Pick<
      LokiExporterConfig,
      "labels" | "structured_metadata" | "max_request_size_kib"
    >,
  ) {
    this.staticPairs = Object.entries(config.labels.static);
    this.attributeLabels = Object.entries(config.labels.resource_attributes);
  }

  /** The labels of the stream that manifests of `chainId` go to. */
  manifestLabels(chainId: string): Record<string, string> {
    return this.labels(chainId, "manifests", []);
  }

  /** The push bodies of `batch`: its records (split to fit), then its manifest alone. */
  build(chainId: string, batch: SealedBatch, base: bigint): PushBody[] {
    const limit = this.config.max_request_size_kib * 1024;
    const bodies: PushBody[] = [];
    let chunk: { record: StoredRecord; i: number }[] = [];
    let size = 0;
    batch.records.forEach((record, i) => {
      const bytes = record.value.length - CANONICAL_OFFSET + ENTRY_OVERHEAD;
      if (chunk.length > 0 && size + bytes > limit) {
        bodies.push(this.recordsBody(chainId, chunk, base));
        chunk = [];
        size = 0;
      }
      chunk.push({ record, i });
      size += bytes;
    });
    if (chunk.length > 0) bodies.push(this.recordsBody(chainId, chunk, base));
    const line = manifestLine(batch.manifest, batch.checkpoint);
    const ts = base + BigInt(batch.records.length);
    const metadata = this.config.structured_metadata ? `,{"batch":"${batch.index}"}` : "";
    bodies.push({
      body: `{"streams":[{"stream":${JSON.stringify(this.manifestLabels(chainId))},"values":[["${ts}",${JSON.stringify(line)}${metadata}]]}]}`,
      entries: 1,
      what: `manifest of batch ${batch.index}`,
    });
    return bodies;
  }

  private recordsBody(
    chainId: string,
    chunk: { record: StoredRecord; i: number }[],
    base: bigint,
  ): PushBody {
    // One stream per distinct label set, in first-seen order; values keep batch order.
    const streams = new Map<string, string[]>();
    for (const { record, i } of chunk) {
      const text = record.value.toString("utf8", CANONICAL_OFFSET);
      const labels = JSON.stringify(this.labels(chainId, "records", this.resourceLabels(text)));
      const metadata = this.config.structured_metadata
        ? `,{"seq":"${record.seq}","hash":"${record.value.toString("hex", 0, HASH_BYTES)}"}`
        : "";
      const value = `["${base + BigInt(i)}",${JSON.stringify(text)}${metadata}]`;
      const values = streams.get(labels);
      if (values) values.push(value);
      else streams.set(labels, [value]);
    }
    const parts = [...streams].map(
      ([labels, values]) => `{"stream":${labels},"values":[${values.join(",")}]}`,
    );
    const first = (chunk[0] as { record: StoredRecord }).record.seq;
    const last = (chunk[chunk.length - 1] as { record: StoredRecord }).record.seq;
    return {
      body: `{"streams":[${parts.join(",")}]}`,
      entries: chunk.length,
      what: `records ${first}..${last}`,
    };
  }

  private labels(
    chainId: string,
    stream: "records" | "manifests",
    extra: [string, string][],
  ): Record<string, string> {
    const out: Record<string, string> = { chain_id: chainId, audit_stream: stream };
    for (const [name, value] of this.staticPairs) out[name] = value;
    for (const [name, value] of extra) out[name] = value;
    return out;
  }

  /** Label pairs from the record's resource attributes named in `labels.resource_attributes`. */
  private resourceLabels(text: string): [string, string][] {
    if (this.attributeLabels.length === 0) return [];
    let attributes: { key?: unknown; value?: unknown }[] | undefined;
    try {
      const envelope = JSON.parse(text) as { record?: { resource?: { attributes?: unknown } } };
      const list = envelope.record?.resource?.attributes;
      attributes = Array.isArray(list) ? list : undefined;
    } catch {
      attributes = undefined;
    }
    if (!attributes) return [];
    const out: [string, string][] = [];
    for (const [attribute, label] of this.attributeLabels) {
      const found = attributes.find((a) => a.key === attribute);
      const value = found ? labelValue(found.value) : undefined;
      if (value !== undefined && value !== "") out.push([label, value]);
    }
    return out;
  }
}

/** The manifests-stream line, exactly as the file exporter writes its manifest lines. */
export function manifestLine(manifest: string, checkpoint: string | null): string {
  return `{"checkpoint":${checkpoint === null ? "null" : JSON.stringify(checkpoint)},"manifest":${manifest}}`;
}

/** A label value from an OTLP/JSON AnyValue: scalars as text, other kinds as their JSON. */
function labelValue(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.stringValue === "string") return v.stringValue;
  if (typeof v.intValue === "string" || typeof v.intValue === "number") return String(v.intValue);
  if (typeof v.doubleValue === "number" || typeof v.doubleValue === "string")
    return String(v.doubleValue);
  if (typeof v.boolValue === "boolean") return String(v.boolValue);
  if (typeof v.bytesValue === "string") return v.bytesValue;
  const keys = Object.keys(v);
  return keys.length > 0 ? JSON.stringify(v) : undefined;
}

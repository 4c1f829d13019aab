import { manifestLine, type SealedBatch } from "../api.js";
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

export class PushBuilder {
  private readonly staticPairs: [string, string][];
  private readonly attributeLabels: [string, string][];
  private readonly sourceLabels: [string, string][];

  constructor(
    private readonly config: Pick<
      LokiExporterConfig,
      "labels" | "structured_metadata" | "max_request_size_kib"
    >,
  ) {
    this.staticPairs = Object.entries(config.labels.static);
    this.attributeLabels = Object.entries(config.labels.resource_attributes);
    this.sourceLabels = Object.entries(config.labels.source);
  }

  /** The labels every stream of `chainId` carries (records and manifests, every shard). */
  chainLabels(chainId: string): Record<string, string> {
    const out: Record<string, string> = { chain_id: chainId };
    for (const [name, value] of this.staticPairs) out[name] = value;
    return out;
  }

  /** The labels of the stream that manifests of `chainId` go to. */
  manifestLabels(chainId: string): Record<string, string> {
    return this.labels(chainId, "manifests", []);
  }

  /**
   * The push bodies of `batch`: its records (split to fit), then its manifest alone. Entries
   * whose timestamp is in `stored` (Loki holds them already: stored.ts) are left out.
   */
  build(
    chainId: string,
    batch: SealedBatch,
    base: bigint,
    stored?: ReadonlySet<bigint>,
  ): PushBody[] {
    const limit = this.config.max_request_size_kib * 1024;
    const bodies: PushBody[] = [];
    let chunk = new Chunk();
    batch.records.forEach((record, i) => {
      if (stored?.has(base + BigInt(i))) return;
      const text = record.canonicalText();
      const labels = JSON.stringify(this.labels(chainId, "records", this.recordLabels(text)));
      const metadata = this.config.structured_metadata
        ? `,{"seq":"${record.seq}","hash":"${record.leafHashHex()}"}`
        : "";
      const value = `["${base + BigInt(i)}",${JSON.stringify(text)}${metadata}]`;
      if (chunk.count > 0 && chunk.sizeWith(labels, value) > limit) {
        bodies.push(chunk.body());
        chunk = new Chunk();
      }
      chunk.add(labels, value, record.seq);
    });
    if (chunk.count > 0) bodies.push(chunk.body());
    const line = manifestLine(batch.manifest, batch.checkpoint);
    const ts = base + BigInt(batch.records.length);
    if (stored?.has(ts)) return bodies;
    const metadata = this.config.structured_metadata ? `,{"batch":"${batch.index}"}` : "";
    bodies.push({
      body: `{"streams":[{"stream":${JSON.stringify(this.manifestLabels(chainId))},"values":[["${ts}",${JSON.stringify(line)}${metadata}]]}]}`,
      entries: 1,
      what: `manifest of batch ${batch.index}`,
    });
    return bodies;
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

  /**
   * Label pairs from the record's resource attributes named in `labels.resource_attributes`
   * and from its envelope's `source` members named in `labels.source`.
   */
  private recordLabels(text: string): [string, string][] {
    if (this.attributeLabels.length === 0 && this.sourceLabels.length === 0) return [];
    let envelope: { record?: { resource?: { attributes?: unknown } }; source?: unknown };
    try {
      envelope = JSON.parse(text) as typeof envelope;
    } catch {
      return [];
    }
    const out: [string, string][] = [];
    const source = envelope.source;
    if (typeof source === "object" && source !== null) {
      for (const [member, label] of this.sourceLabels) {
        const value = (source as Record<string, unknown>)[member];
        if (typeof value === "string" && value !== "") out.push([label, value]);
      }
    }
    const list = envelope.record?.resource?.attributes;
    const attributes = Array.isArray(list) ? (list as { key?: unknown; value?: unknown }[]) : [];
    for (const [attribute, label] of this.attributeLabels) {
      const found = attributes.find((a) => a.key === attribute);
      const value = found ? labelValue(found.value) : undefined;
      if (value !== undefined && value !== "") out.push([label, value]);
    }
    return out;
  }
}

/** Record entries of one push body: one stream per label set, values in batch order. */
class Chunk {
  private readonly streams = new Map<string, string[]>();
  /** Body bytes so far, exactly: {"streams":[ … ]} and every stream and value in it. */
  private bytes = '{"streams":[]}'.length;
  count = 0;
  private first = -1;
  private last = -1;

  sizeWith(labels: string, value: string): number {
    const valueBytes = Buffer.byteLength(value, "utf8");
    if (this.streams.has(labels)) return this.bytes + 1 + valueBytes;
    const header = Buffer.byteLength(labels, "utf8") + '{"stream":,"values":[]}'.length;
    return this.bytes + (this.streams.size > 0 ? 1 : 0) + header + valueBytes;
  }

  add(labels: string, value: string, seq: number): void {
    this.bytes = this.sizeWith(labels, value);
    const values = this.streams.get(labels);
    if (values) values.push(value);
    else this.streams.set(labels, [value]);
    if (this.count === 0) this.first = seq;
    this.last = seq;
    this.count++;
  }

  body(): PushBody {
    const parts = [...this.streams].map(
      ([labels, values]) => `{"stream":${labels},"values":[${values.join(",")}]}`,
    );
    return {
      body: `{"streams":[${parts.join(",")}]}`,
      entries: this.count,
      what: `records ${this.first}..${this.last}`,
    };
  }
}

/** The manifests-stream line, exactly as every backend stores a sealed-log entry. */
export { manifestLine };

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

import { decodeLogsRequestJson } from "../../otlp/json-codec.js";
import { otlpTypes } from "../../otlp/protobuf-codec.js";
import type { RecordSink, SealedBatch } from "../api.js";
import type { OtlpTransport } from "./transport.js";

/**
 * Forwards sealed audit batches upstream as ordinary OTLP logs. Each stored record's
 * `record` member is OTLP/JSON, so the request is rebuilt from it unchanged (records that
 * share resource and scope are grouped, in seq order). Delivery and retries are the
 * durable engine's; duplicates on retry follow the upstream's semantics.
 */
interface StoredRecordJson {
  logRecord: unknown;
  resource?: unknown;
  resourceSchemaUrl?: string;
  scope?: unknown;
  scopeSchemaUrl?: string;
}

export function batchToOtlpJson(batch: SealedBatch): string {
  const resourceLogs: Array<{
    resource?: unknown;
    schemaUrl?: string;
    scopeLogs: Array<{ scope?: unknown; schemaUrl?: string; logRecords: unknown[] }>;
  }> = [];
  let lastResource = "";
  let lastScope = "";
  for (const r of batch.records) {
    const record = (
      JSON.parse(r.canonicalText()) as {
        record: StoredRecordJson;
      }
    ).record;
    const resourceKey = JSON.stringify([record.resource ?? null, record.resourceSchemaUrl ?? ""]);
    const scopeKey = JSON.stringify([record.scope ?? null, record.scopeSchemaUrl ?? ""]);
    let rl = resourceLogs[resourceLogs.length - 1];
    if (!rl || resourceKey !== lastResource) {
      rl = { resource: record.resource, schemaUrl: record.resourceSchemaUrl, scopeLogs: [] };
      resourceLogs.push(rl);
      lastResource = resourceKey;
      lastScope = "";
    }
    let sl = rl.scopeLogs[rl.scopeLogs.length - 1];
    if (!sl || scopeKey !== lastScope) {
      sl = { scope: record.scope, schemaUrl: record.scopeSchemaUrl, logRecords: [] };
      rl.scopeLogs.push(sl);
      lastScope = scopeKey;
    }
    sl.logRecords.push(record.logRecord);
  }
  return JSON.stringify({ resourceLogs });
}

export class OtlpAuditSink implements RecordSink {
  constructor(private readonly transport: OtlpTransport) {}

  async open(): Promise<number | null> {
    return null;
  }

  async write(batch: SealedBatch): Promise<void> {
    if (batch.records.length === 0) return; // key rotations are ours, not the upstream's
    const json = batchToOtlpJson(batch);
    if (this.transport.encoding === "json") return this.transport.send(json);
    const request = decodeLogsRequestJson(Buffer.from(json, "utf8"));
    await this.transport.send(
      otlpTypes.RequestType.encode(request as unknown as Record<string, unknown>).finish(),
    );
  }

  async close(): Promise<void> {
    // The transport is shared with the sending queue, which closes it.
  }
}

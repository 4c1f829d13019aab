import { join } from "node:path";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";
import { expect } from "vitest";
import { leafHash } from "../../agent/integrity/format.js";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import { parseConfig } from "../../agent/config/load.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import type { AuditSource, VerifyReport } from "../../agent/verify/types.js";
import { verifySource } from "../../agent/verify/verify.js";
import { backendAgentYaml } from "./agent.js";
import type { FakeLoki } from "./fake-loki.js";

/** Shared by the Loki exporter's tests: agent configs, an SDK client, checks. */

export interface LokiYaml {
  dir: string;
  url: string;
  /** Extra YAML lines under exporters.loki (indented by four spaces). */
  extra?: string;
  /** Adds exporters.loki/held, a Loki that never answers, so the WAL keeps every record. */
  held?: boolean;
  maxRecords?: number;
}

export function lokiYaml(o: LokiYaml): string {
  return backendAgentYaml({
    dir: o.dir,
    exporters: `  loki:
    endpoint: ${o.url}
    labels:
      resource_attributes:
        service.name: service_name
        k8s.namespace.name: namespace
      static:
        env: prod
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
${o.extra ?? ""}
${o.held ? "  loki/held:\n    endpoint: http://127.0.0.1:1\n    retry_on_failure:\n      initial_interval: 50ms\n      max_interval: 200ms\n" : ""}`,
    exporterIds: o.held ? ["loki", "loki/held"] : ["loki"],
    batchMaxRecords: o.maxRecords,
  });
}

export async function startLokiAgent(o: LokiYaml): Promise<{ agent: RunningAgent; url: string }> {
  const config = parseConfig(lokiYaml(o), "test.yaml", {});
  const agent = await startAgent(config, createLogger("error"));
  return { agent, url: `http://${agent.addresses().otlp?.http}/v1/logs` };
}

export interface SendOptions {
  first?: number;
  body?: (i: number) => string;
  resource?: Record<string, string>;
}

/** Emits `count` audit records through the OTel SDK (OTLP/HTTP JSON) and flushes them. */
export async function sendRecords(url: string, count: number, o: SendOptions = {}): Promise<void> {
  const provider = new LoggerProvider({
    resource: resourceFromAttributes(
      o.resource ?? { "service.name": "billing", "k8s.namespace.name": "payments" },
    ),
    processors: [
      new BatchLogRecordProcessor({
        exporter: new OTLPLogExporter({ url }),
        maxQueueSize: 20_000,
        maxExportBatchSize: 500,
        scheduledDelayMillis: 5,
      }),
    ],
  });
  const logger = provider.getLogger("loki-test", "1.0.0");
  const first = o.first ?? 0;
  for (let i = first; i < first + count; i++) {
    logger.emit({
      severityNumber: SeverityNumber.INFO,
      severityText: "INFO",
      body: o.body ? o.body(i) : `audit event ${i}`,
      attributes: { audit: true, "rec.idx": i },
    });
  }
  await provider.forceFlush();
  await provider.shutdown();
}

export interface RecordLine {
  seq: string;
  chainId: string;
  record: { logRecord: { attributes?: Array<{ key: string; value: Record<string, unknown> }> } };
}

export function recIdx(line: string): number {
  const r = JSON.parse(line) as RecordLine;
  const v = r.record.logRecord.attributes?.find((a) => a.key === "rec.idx")?.value;
  return Number(v?.intValue);
}

export const RECORDS = { audit_stream: "records" };
export const MANIFESTS = { audit_stream: "manifests" };

export function trustedKeys(dir: string) {
  return readTrustedKeys([join(dir, "keys", "signing.pub")]);
}

export async function verifyLoki(source: AuditSource, dir: string): Promise<VerifyReport> {
  return verifySource(source, trustedKeys(dir));
}

/** Every (seq) stored once, contiguous from 0 — the "exactly once, in order" check. */
export function expectExactlyOnce(loki: FakeLoki, count: number, tenant = "fake"): void {
  const entries = loki.entries(RECORDS, tenant);
  const seqs = entries.map((e) => Number((JSON.parse(e.line) as RecordLine).seq));
  expect(seqs).toEqual(Array.from({ length: count }, (_, i) => i));
}

/** A record-shaped line (envelope members in RFC 8785 order) and its entry metadata. */
export function recordEntry(
  chainId: string,
  seq: number,
  body: string,
): { line: string; metadata: Record<string, string> } {
  const line = JSON.stringify({
    chainId,
    prev: "0".repeat(64),
    record: { logRecord: { body: { stringValue: body } } },
    seq: String(seq),
    v: 1,
  });
  return {
    line,
    metadata: { seq: String(seq), hash: leafHash(Buffer.from(line)).toString("hex") },
  };
}

export interface PushStream {
  labels: Record<string, string>;
  /** [timestamp ns, line, structured metadata] */
  values: Array<[bigint, string, Record<string, string>]>;
}

/** One POST /loki/api/v1/push of these streams, as the exporter sends it (JSON); 204 expected. */
export async function pushToLoki(url: string, streams: readonly PushStream[]): Promise<void> {
  const body = JSON.stringify({
    streams: streams.map((s) => ({
      stream: s.labels,
      values: s.values.map(([ts, line, md]) => [String(ts), line, md]),
    })),
  });
  const res = await fetch(`${url}/loki/api/v1/push`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  if (res.status !== 204) throw new Error(`push: HTTP ${res.status}: ${await res.text()}`);
}

import { ROOT_CONTEXT, TraceFlags, trace } from "@opentelemetry/api";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter as GrpcExporter } from "@opentelemetry/exporter-logs-otlp-grpc";
import { OTLPLogExporter as HttpJsonExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPLogExporter as HttpProtoExporter } from "@opentelemetry/exporter-logs-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchLogRecordProcessor,
  LoggerProvider,
  type LogRecordExporter,
} from "@opentelemetry/sdk-logs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  attr,
  type InProcessAgent,
  makeTempDir,
  readOutput,
  startInProcessAgent,
  waitFor,
} from "../helpers/agent.js";

/**
 * The real OpenTelemetry JS SDK, with each of its three OTLP log exporters, sends the same
 * mixed audit / non-audit records to a running agent. Exactly the audit records must land
 * in the file output, in order, chained, with every field intact, and the stored record
 * must be byte-identical whichever protocol carried it.
 */

const TRACE_ID = "5b8efff798038103d269b633813fc60c";
const SPAN_ID = "eee19b7ec3c1b174";

interface Emitted {
  idx: number;
  audit: boolean;
}

function emitAll(provider: LoggerProvider): Emitted[] {
  const logger = provider.getLogger("billing.audit", "2.3.1", {
    schemaUrl: "https://opentelemetry.io/schemas/1.26.0",
    attributes: { "scope.team": "payments" },
  });
  const ctx = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: TRACE_ID,
    spanId: SPAN_ID,
    traceFlags: TraceFlags.SAMPLED,
  });
  const out: Emitted[] = [];
  const base = {
    timestamp: [1700000000, 123456789] as [number, number],
    observedTimestamp: [1700000001, 5] as [number, number],
  };
  const bodies = [
    "user alice logged in",
    {
      action: "transfer",
      amount: 1250.5,
      cents: 125050,
      approved: true,
      tags: ["a", "b"],
      nested: { depth: 2 },
    },
    ["x", 1, 2.5, false],
    new Uint8Array([0, 1, 2, 250, 255]),
    42,
  ];
  for (let idx = 0; idx < 15; idx++) {
    const kind = idx % 5;
    const attributes: Record<string, unknown> = {
      "rec.idx": idx,
      "user.id": `u-${idx}`,
      "amount.double": 3.25,
      "flags.list": [true, false],
      "names.list": ["a", "é", "😀"],
    };
    let eventName: string | undefined;
    let audit = true;
    if (kind === 0) attributes.audit = true;
    else if (kind === 1) attributes.audit = "true";
    else if (kind === 2) eventName = "audit.user.login";
    else if (kind === 3) attributes.audit = false;
    else {
      audit = false;
      eventName = "app.request";
    }
    if (kind === 3) audit = false;
    logger.emit({
      ...base,
      context: ctx,
      severityNumber: SeverityNumber.WARN,
      severityText: "WARN",
      // Body shapes rotate independently of the audit kind so every shape meets an audit record.
      body: bodies[(idx + Math.floor(idx / 5)) % bodies.length] as string,
      attributes: attributes as Record<string, string>,
      ...(eventName ? { eventName } : {}),
    });
    out.push({ idx, audit });
  }
  return out;
}

async function sendWith(exporter: LogRecordExporter): Promise<Emitted[]> {
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({
      "service.name": "billing",
      "service.version": "9.1",
      "k8s.pod.name": "billing-0",
    }),
    processors: [
      new BatchLogRecordProcessor({ exporter, maxExportBatchSize: 4, scheduledDelayMillis: 10 }),
    ],
  });
  const emitted = emitAll(provider);
  await provider.forceFlush();
  await provider.shutdown();
  return emitted;
}

describe("OTel SDK exporters → agent → file output", () => {
  const tmp = makeTempDir();
  let agent: InProcessAgent;
  const expectedAudit: number[] = [];

  beforeAll(async () => {
    agent = await startInProcessAgent({ dir: tmp.path });
    const httpBase = agent.httpUrl;
    const exporters: LogRecordExporter[] = [
      new GrpcExporter({ url: `http://${agent.grpcAddress}` }),
      new HttpJsonExporter({ url: httpBase }),
      new HttpProtoExporter({ url: httpBase }),
    ];
    for (const exporter of exporters) {
      const emitted = await sendWith(exporter);
      for (const e of emitted) if (e.audit) expectedAudit.push(e.idx);
    }
    const total = expectedAudit.length;
    await waitFor(
      () => agent.agent.deliveries[0]?.deliveredThrough === total - 1,
      10_000,
      "file export",
    );
  });

  afterAll(async () => {
    await agent?.stop();
    tmp.cleanup();
  });

  it("stores exactly the audit records, in order, in one intact chain", async () => {
    const { records, check, findings } = await readOutput(agent.outDir);
    expect(findings).toEqual([]);
    expect(check.records).toBe(expectedAudit.length);
    expect(records.map((r) => r.seq)).toEqual(expectedAudit.map((_, i) => String(i)));
    expect(records.map((r) => Number(attr(r.record, "rec.idx")?.intValue))).toEqual(expectedAudit);
    expect(agent.agent.counters.filtered).toBe(3 * 15 - expectedAudit.length);
    expect(agent.agent.counters.receiverAccepted).toBe(expectedAudit.length);
  });

  it("keeps every OTLP field of the record, its scope and its resource", async () => {
    const { records } = await readOutput(agent.outDir);
    const first = records[0]?.record;
    expect(first?.logRecord).toMatchObject({
      timeUnixNano: "1700000000123456789",
      observedTimeUnixNano: "1700000001000000005",
      severityNumber: 13,
      severityText: "WARN",
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      flags: 1,
      body: { stringValue: "user alice logged in" },
    });
    expect(attr(first!, "audit")).toEqual({ boolValue: true });
    expect(attr(first!, "amount.double")).toEqual({ doubleValue: 3.25 });
    expect(attr(first!, "flags.list")).toEqual({
      arrayValue: { values: [{ boolValue: true }, { boolValue: false }] },
    });
    expect(attr(first!, "names.list")).toEqual({
      arrayValue: { values: [{ stringValue: "a" }, { stringValue: "é" }, { stringValue: "😀" }] },
    });
    expect(first?.scope).toEqual({
      name: "billing.audit",
      version: "2.3.1",
      attributes: [{ key: "scope.team", value: { stringValue: "payments" } }],
    });
    expect(first?.scopeSchemaUrl).toBe("https://opentelemetry.io/schemas/1.26.0");
    const resourceAttrs = (
      first!.resource as { attributes: Array<{ key: string; value: unknown }> }
    ).attributes;
    expect(resourceAttrs).toEqual(
      expect.arrayContaining([
        { key: "service.name", value: { stringValue: "billing" } },
        { key: "k8s.pod.name", value: { stringValue: "billing-0" } },
      ]),
    );
    const byIdx = new Map(
      records.map((r) => [Number(attr(r.record, "rec.idx")?.intValue), r.record]),
    );
    expect(byIdx.get(1)?.logRecord.body).toEqual({
      kvlistValue: {
        values: expect.arrayContaining([
          { key: "action", value: { stringValue: "transfer" } },
          { key: "amount", value: { doubleValue: 1250.5 } },
          { key: "cents", value: { intValue: "125050" } },
          { key: "approved", value: { boolValue: true } },
          {
            key: "tags",
            value: { arrayValue: { values: [{ stringValue: "a" }, { stringValue: "b" }] } },
          },
          {
            key: "nested",
            value: { kvlistValue: { values: [{ key: "depth", value: { intValue: "2" } }] } },
          },
        ]),
      },
    });
    expect(byIdx.get(2)?.logRecord).toMatchObject({
      eventName: "audit.user.login",
      body: {
        arrayValue: {
          values: [
            { stringValue: "x" },
            { intValue: "1" },
            { doubleValue: 2.5 },
            { boolValue: false },
          ],
        },
      },
    });
    expect(byIdx.get(12)?.logRecord.body).toEqual({ intValue: "42" });
    const bytesRecord = records.find(
      (r) => (r.record.logRecord.body as { bytesValue?: string }).bytesValue !== undefined,
    );
    expect(bytesRecord?.record.logRecord.body).toEqual({
      bytesValue: Buffer.from([0, 1, 2, 250, 255]).toString("base64"),
    });
  });

  it("stores byte-identical records whichever protocol carried them", async () => {
    const { chain } = await readOutput(agent.outDir);
    const recordText = chain.lines.map((l) => {
      const start = l.text.indexOf(',"record":') + ',"record":'.length;
      const end = l.text.lastIndexOf(',"seq":"');
      return l.text.slice(start, end);
    });
    const perProtocol = expectedAudit.length / 3;
    for (let i = 0; i < perProtocol; i++) {
      expect(recordText[perProtocol + i]).toBe(recordText[i]); // HTTP/JSON vs gRPC
      expect(recordText[2 * perProtocol + i]).toBe(recordText[i]); // HTTP/protobuf vs gRPC
    }
  });
});

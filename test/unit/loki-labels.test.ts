import { describe, expect, it } from "vitest";
import type { SealedBatch, SealedRecord } from "../../agent/exporters/api.js";
import { lokiExporterConfigSchema } from "../../agent/exporters/loki/config.js";
import { PushBuilder } from "../../agent/exporters/loki/push.js";
import { envelopeJson } from "../../agent/integrity/format.js";

/** Loki stream labels from the envelope's `source` (labels.source), apart from the resource's. */

function batchOf(texts: string[]): SealedBatch {
  const records = texts.map((text, seq): SealedRecord => ({
    seq,
    leafHash: Buffer.alloc(32),
    leafHashHex: () => "00".repeat(32),
    canonical: Buffer.from(text),
    canonicalLength: Buffer.byteLength(text),
    canonicalText: () => text,
  }));
  return {
    index: 0,
    manifest: '{"type":"batch"}',
    checkpoint: null,
    firstSeq: 0,
    lastSeq: texts.length - 1,
    count: texts.length,
    records,
  };
}

describe("Loki labels from the envelope's source", () => {
  const record =
    '{"logRecord":{"eventName":"audit.x"},"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"pay"}},{"key":"k8s.namespace.name","value":{"stringValue":"claimed"}}]}}';
  const prev = "0".repeat(64);

  it("labels each record's stream with the source members named, and leaves out absent ones", () => {
    const config = lokiExporterConfigSchema.parse({
      endpoint: "http://loki:3100",
      labels: { source: { "k8s.namespace.name": "namespace" } },
    });
    const stamped = envelopeJson("c", prev, record, 0, "1", '{"k8s.namespace.name":"payments"}');
    const plain = envelopeJson("c", prev, record, 1, "1");
    const [records] = new PushBuilder(config).build("c", batchOf([stamped, plain]), 1000n);
    const streams = (JSON.parse(records!.body) as { streams: { stream: object }[] }).streams;
    expect(streams.map((s) => s.stream)).toEqual([
      { chain_id: "c", audit_stream: "records", namespace: "payments", service_name: "pay" },
      { chain_id: "c", audit_stream: "records", service_name: "pay" },
    ]);
  });

  it("refuses a label name used twice across resource attributes and source", () => {
    const parsed = lokiExporterConfigSchema.safeParse({
      endpoint: "http://loki:3100",
      labels: { source: { "k8s.pod.name": "service_name" } },
    });
    expect(parsed.success).toBe(false);
    expect(JSON.stringify(parsed.error?.issues)).toMatch(/label \\"service_name\\" is set twice/);
  });
});

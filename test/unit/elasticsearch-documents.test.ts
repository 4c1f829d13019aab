import { describe, expect, it } from "vitest";
import { RECORD_MAPPINGS, recordDocument } from "../../agent/exporters/elasticsearch/documents.js";
import { envelopeJson } from "../../agent/integrity/format.js";

/** Record documents of version-2 lines: the envelope's `source` as audit.source. */
describe("Elasticsearch record documents", () => {
  const record =
    '{"logRecord":{"eventName":"audit.x"},"resource":{"attributes":[{"key":"k8s.pod.name","value":{"stringValue":"claimed"}}]}}';
  const prev = "0".repeat(64);

  it("carry a version-2 line's source as audit.source, apart from the claimed resource", () => {
    const source = '{"client.address":"10.0.0.7","k8s.pod.name":"pay-7d9f"}';
    const text = envelopeJson("c", prev, record, 4, "1700000000000000000", source);
    const doc = recordDocument(text, "ab".repeat(32)) as {
      audit: Record<string, unknown>;
      resource: { attributes: Record<string, unknown> };
    };
    expect(doc.audit.source).toEqual({ "client.address": "10.0.0.7", "k8s.pod.name": "pay-7d9f" });
    expect(doc.resource.attributes["k8s.pod.name"]).toBe("claimed");
    expect(RECORD_MAPPINGS.properties.audit.properties.source.type).toBe("flattened");
  });

  it("of version-1 lines have no audit.source", () => {
    const text = envelopeJson("c", prev, record, 4, "1700000000000000000");
    expect(recordDocument(text, "ab".repeat(32)).audit as object).not.toHaveProperty("source");
  });
});

import { describe, expect, it } from "vitest";
import type { ExporterFactory } from "../../agent/exporters/api.js";
import { factories } from "../../agent/config/registry.js";

describe("registry", () => {
  it("describes each lazily loaded exporter as its own factory does", async () => {
    const lazy = factories.filter(
      (f): f is ExporterFactory & { load(): Promise<ExporterFactory> } =>
        f.kind === "exporter" && "load" in f,
    );
    expect(lazy.map((f) => f.type).sort()).toEqual(
      ["debug", "elasticsearch", "file", "loki", "otlp_grpc", "otlp_http", "s3"].sort(),
    );
    for (const entry of lazy) {
      const factory = await entry.load();
      expect(factory.type, entry.type).toBe(entry.type);
      expect(factory.configSchema, entry.type).toBe(entry.configSchema);
      expect(Boolean(entry.reader), `${entry.type} reader`).toBe(Boolean(factory.reader));
      expect(Boolean(entry.storesAuditRecords), `${entry.type} storesAuditRecords`).toBe(
        Boolean(factory.storesAuditRecords),
      );
      if (factory.storesAuditRecords) {
        const endpoint = entry.type === "otlp_grpc" ? "127.0.0.1:4317" : "http://127.0.0.1:4318";
        const config = entry.configSchema.parse(
          entry.type.startsWith("otlp") ? { endpoint, audit: true } : {},
        );
        expect(entry.storesAuditRecords?.(config)).toBe(factory.storesAuditRecords(config));
      }
    }
  });
});

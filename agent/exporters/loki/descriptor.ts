import { type ExporterDescriptor, withoutCredentials } from "../descriptor.js";
import { lokiExporterConfigSchema } from "./config.js";

/** `exporters.loki`: audit records as Loki entries (docs/exporter-loki.md). */
export const lokiExporter: ExporterDescriptor<typeof lokiExporterConfigSchema> = {
  type: "loki",
  configSchema: lokiExporterConfigSchema,
  capabilities: { durable: true, readable: true },
  source: {
    scheme: "loki",
    usage: "loki:URL",
    open: async (spec) =>
      (await import("./factory.js")).lokiSourceFromSpec(spec.slice("loki:".length)),
  },
  describe(config) {
    const url = withoutCredentials(config.endpoint).replace(/\/$/, "");
    const tenant = config.tenant_id ? `?tenant=${encodeURIComponent(config.tenant_id)}` : "";
    return {
      destination: { url, ...(config.tenant_id ? { tenant: config.tenant_id } : {}) },
      source: `loki:${url}${tenant}`,
    };
  },
  load: async () => (await import("./factory.js")).lokiExporterFactory,
};

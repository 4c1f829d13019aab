import type { ExporterDescriptor } from "../descriptor.js";
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
  load: async () => (await import("./factory.js")).lokiExporterFactory,
};

import type { ExporterDescriptor } from "../descriptor.js";
import { elasticsearchExporterConfigSchema } from "./config.js";

/**
 * `exporters.elasticsearch`: one document per record with `_bulk` `create` and
 * `_id` = leaf hash, manifests in their own index (docs/exporter-elasticsearch.md).
 */
export const elasticsearchExporter: ExporterDescriptor<typeof elasticsearchExporterConfigSchema> = {
  type: "elasticsearch",
  configSchema: elasticsearchExporterConfigSchema,
  capabilities: { durable: true, readable: true },
  source: {
    scheme: "es",
    usage: "es:URL/INDEX",
    open: async (spec) =>
      (await import("./factory.js")).elasticsearchSourceFromSpec(spec.slice("es:".length)),
  },
  load: async () => (await import("./factory.js")).elasticsearchExporterFactory,
};

import { type ExporterDescriptor, withoutCredentials } from "../descriptor.js";
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
  describe(config) {
    const url = withoutCredentials(config.endpoint).replace(/\/$/, "");
    const manifests =
      config.manifests_index === `${config.index}-manifests`
        ? ""
        : `?manifests_index=${encodeURIComponent(config.manifests_index)}`;
    return {
      destination: { url, index: config.index, manifests_index: config.manifests_index },
      source: `es:${url}/${config.index}${manifests}`,
    };
  },
  load: async () => (await import("./factory.js")).elasticsearchExporterFactory,
};

import type { ExporterDescriptor } from "../descriptor.js";
import { s3ExporterConfigSchema } from "./config.js";

/** `exporters.s3`: batches and manifests as write-once objects (docs/exporter-s3.md). */
export const s3Exporter: ExporterDescriptor<typeof s3ExporterConfigSchema> = {
  type: "s3",
  configSchema: s3ExporterConfigSchema,
  capabilities: { durable: true, readable: true },
  source: {
    scheme: "s3",
    usage: "s3://BUCKET/PREFIX",
    open: async (spec) => (await import("./factory.js")).s3SourceFromSpec(spec),
  },
  load: async () => (await import("./factory.js")).s3ExporterFactory,
};

import { resolve } from "node:path";
import type { ExporterDescriptor } from "../descriptor.js";
import { fileExporterConfigSchema } from "./config.js";

/** `exporters.file`: rotating NDJSON segments of records and manifests (the default). */
export const fileExporter: ExporterDescriptor<typeof fileExporterConfigSchema> = {
  type: "file",
  configSchema: fileExporterConfigSchema,
  capabilities: { durable: true, readable: true },
  source: {
    scheme: "file",
    usage: "file:DIR",
    async open(spec) {
      const dir = spec.slice("file:".length);
      return (await import("./reader.js")).fileSource(resolve(dir));
    },
  },
  describe(config) {
    const directory = resolve(config.directory);
    return { destination: { directory }, source: `file:${directory}` };
  },
  load: async () => (await import("./factory.js")).fileExporterFactory,
};

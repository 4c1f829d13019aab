import { resolve } from "node:path";
import type { ExporterFactory } from "../api.js";
import { fileExporterConfigSchema } from "./config.js";
import { FileSink } from "./file-sink.js";
import { fileSource } from "./reader.js";

export const fileExporterFactory: ExporterFactory<typeof fileExporterConfigSchema> = {
  kind: "exporter",
  type: "file",
  configSchema: fileExporterConfigSchema,
  create(settings, config) {
    return {
      sink: new FileSink(config, settings.logger.child({ exporter: settings.id })),
      delivery: { retry: config.retry_on_failure },
    };
  },
  reader: (config) => fileSource(resolve(config.directory)),
};

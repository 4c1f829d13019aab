import type { ExporterFactory } from "../../service/factory.js";
import { fileExporterConfigSchema } from "./config.js";
import { FileSink } from "./file-sink.js";

export const fileExporterFactory: ExporterFactory<typeof fileExporterConfigSchema> = {
  kind: "exporter",
  type: "file",
  configSchema: fileExporterConfigSchema,
  create(settings, config) {
    return {
      sink: new FileSink(config, settings.logger.child({ exporter: settings.id })),
      delivery: {
        maxBatchRecords: 4096,
        maxBatchBytes: 4 * 1024 * 1024,
        retry: config.retry_on_failure,
      },
    };
  },
};

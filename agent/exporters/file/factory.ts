import { resolve } from "node:path";
import { implementExporter } from "../descriptor.js";
import { fileExporter } from "./descriptor.js";
import { FileSink } from "./file-sink.js";
import { fileSource } from "./reader.js";

export const fileExporterFactory = implementExporter(fileExporter, {
  create(settings, config) {
    return {
      sink: new FileSink(config, settings.logger.child({ exporter: settings.id })),
      delivery: { retry: config.retry_on_failure },
    };
  },
  reader: (config) => fileSource(resolve(config.directory)),
});

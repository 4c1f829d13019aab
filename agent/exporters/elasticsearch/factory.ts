import { AgentError } from "../../common/errors.js";
import { implementExporter } from "../descriptor.js";
import type { AuditSource } from "../source.js";
import { elasticsearchExporterConfigSchema } from "./config.js";
import { elasticsearchExporter } from "./descriptor.js";
import { ElasticsearchSource, parseElasticsearchSpec } from "./reader.js";
import { ElasticsearchSink } from "./sink.js";

export const elasticsearchExporterFactory = implementExporter(elasticsearchExporter, {
  create(settings, config) {
    return {
      sink: new ElasticsearchSink(config, settings.logger.child({ exporter: settings.id })),
      delivery: { retry: config.retry_on_failure },
    };
  },
  reader: (config) => new ElasticsearchSource(config),
});

/** `verify --source es:URL/INDEX` (see parseElasticsearchSpec for credentials). */
export function elasticsearchSourceFromSpec(spec: string): AuditSource {
  const raw = parseElasticsearchSpec(spec);
  const parsed = elasticsearchExporterConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`)
      .join("; ");
    throw new AgentError("VERIFY_BAD_SOURCE", `es:${spec}: ${problems}`);
  }
  return new ElasticsearchSource(parsed.data);
}

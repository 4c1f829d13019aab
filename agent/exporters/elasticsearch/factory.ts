import { z } from "zod";
import { AgentError } from "../../common/errors.js";
import type { ExporterFactory } from "../../service/factory.js";
import type { AuditSource } from "../../verify/types.js";

// Placeholder until the Elasticsearch exporter lands: the type is registered so configs name it.
const schema = z.object({}).passthrough();

export const elasticsearchExporterFactory: ExporterFactory<typeof schema> = {
  kind: "exporter",
  type: "elasticsearch",
  configSchema: schema,
  create() {
    throw new AgentError(
      "EXPORTER_UNAVAILABLE",
      "the elasticsearch exporter is not available in this build",
    );
  },
};

export function elasticsearchSourceFromSpec(spec: string): AuditSource {
  throw new AgentError(
    "VERIFY_BAD_SOURCE",
    `elasticsearch sources are not available in this build (${spec})`,
  );
}

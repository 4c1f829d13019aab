import { z } from "zod";
import { AgentError } from "../../common/errors.js";
import type { ExporterFactory } from "../../service/factory.js";
import type { AuditSource } from "../../verify/types.js";

// Placeholder until the Loki exporter lands: the type is registered so configs name it.
const schema = z.object({}).passthrough();

export const lokiExporterFactory: ExporterFactory<typeof schema> = {
  kind: "exporter",
  type: "loki",
  configSchema: schema,
  create() {
    throw new AgentError(
      "EXPORTER_UNAVAILABLE",
      "the loki exporter is not available in this build",
    );
  },
};

export function lokiSourceFromSpec(spec: string): AuditSource {
  throw new AgentError(
    "VERIFY_BAD_SOURCE",
    `loki sources are not available in this build (${spec})`,
  );
}

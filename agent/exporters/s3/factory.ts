import { z } from "zod";
import { AgentError } from "../../common/errors.js";
import type { ExporterFactory } from "../../service/factory.js";
import type { AuditSource } from "../../verify/types.js";

// Placeholder until the S3 exporter lands: the type is registered so configs name it.
const schema = z.object({}).passthrough();

export const s3ExporterFactory: ExporterFactory<typeof schema> = {
  kind: "exporter",
  type: "s3",
  configSchema: schema,
  create() {
    throw new AgentError("EXPORTER_UNAVAILABLE", "the s3 exporter is not available in this build");
  },
};

export function s3SourceFromSpec(spec: string): AuditSource {
  throw new AgentError("VERIFY_BAD_SOURCE", `s3 sources are not available in this build (${spec})`);
}

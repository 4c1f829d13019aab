import type { ClassifierFactory } from "../api.js";
import { auditFilterConfigSchema } from "./config.js";
import { compileAuditFilter } from "./predicate.js";

export const auditFilterFactory: ClassifierFactory<typeof auditFilterConfigSchema> = {
  kind: "processor",
  type: "audit_filter",
  configSchema: auditFilterConfigSchema,
  create: (_settings, config) => compileAuditFilter(config),
};

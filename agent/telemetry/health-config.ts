import { z } from "../common/zod.js";
import { extensionFactory } from "../common/component.js";
import { endpointSchema } from "../common/config-schema.js";

/**
 * `extensions.health_check`, after the Collector's healthcheck extension: GET `path`
 * answers 200 {"status":"Server available",…} or 503 {"status":"Server not available",…}.
 * The agent adds the reasons, and two Kubernetes-style paths: /livez (the process is
 * serving) and /readyz (same as `path`: it can take data and nothing needs an operator).
 */
export const healthCheckConfigSchema = z
  .object({
    endpoint: endpointSchema.default("127.0.0.1:13133"),
    path: z.string().startsWith("/").default("/"),
    /** Not ready once the WAL is this full; ready again below it minus 5 points. */
    wal_full_percent: z.number().min(1).max(100).default(95),
    /**
     * Exporters whose permanent failure makes the agent not ready. Default: the first
     * exporter of the logs pipeline (the primary). Another that fails is listed as degraded
     * while the agent stays ready; its backlog stays in the WAL, which readiness follows.
     */
    required_exporters: z.array(z.string().min(1)).optional(),
  })
  .strict();

export type HealthCheckConfig = z.infer<typeof healthCheckConfigSchema>;

export const healthCheckExtensionFactory = extensionFactory(
  "health_check",
  healthCheckConfigSchema,
);

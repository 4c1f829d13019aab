import { z } from "../../common/zod.js";
import { retryOnFailureSchema } from "../../common/config-schema.js";

/** `exporters.file`: rotating NDJSON segments of canonical records under `directory`. */
export const fileExporterConfigSchema = z
  .object({
    directory: z.string().min(1).default("./data/out"),
    rotation: z
      .object({ max_megabytes: z.number().positive().max(65536).default(64) })
      .strict()
      .default({ max_megabytes: 64 }),
    retry_on_failure: retryOnFailureSchema.default({}),
    /**
     * Output directories 0750 and files 0640 (for a log shipper in the same group, e.g. a
     * Kubernetes fsGroup), instead of 0700 and 0600.
     */
    group_readable: z.boolean().default(false),
  })
  .strict();

export type FileExporterConfig = z.infer<typeof fileExporterConfigSchema>;

import { z } from "zod";
import { retryOnFailureSchema } from "../../common/config-schema.js";

/** `exporters.file`: rotating NDJSON segments of canonical records under `directory`. */
export const fileExporterConfigSchema = z
  .object({
    directory: z.string().min(1).default("./data/out"),
    rotation: z
      .object({ max_megabytes: z.number().positive().max(65536).default(64) })
      .strict()
      .default({ max_megabytes: 64 }),
    retry_on_failure: retryOnFailureSchema.default(retryOnFailureSchema.parse({})),
  })
  .strict();

export type FileExporterConfig = z.infer<typeof fileExporterConfigSchema>;

import { z } from "../../common/zod.js";
import { durationDefault } from "../../common/config-schema.js";
import type { ProcessorFactory } from "../api.js";

/**
 * `processors.batch`: the Collector's batch processor, accepted with its fields so that a
 * Collector config loads, and a no-op. The agent batches already, where it is safe: records
 * are acknowledged only once stored in the WAL, and cut into signed batches after that
 * (extensions.signing.batch). A batch processor in front would hold acknowledged records in
 * memory, to be lost in a crash.
 */
export const batchProcessorConfigSchema = z
  .object({
    timeout: durationDefault("200ms"),
    send_batch_size: z.number().int().min(0).default(8192),
    send_batch_max_size: z.number().int().min(0).default(0),
    metadata_keys: z.array(z.string()).default([]),
    metadata_cardinality_limit: z.number().int().min(0).default(1000),
  })
  .strict()
  .refine((c) => c.send_batch_max_size === 0 || c.send_batch_max_size >= c.send_batch_size, {
    message: "send_batch_max_size must be 0 or at least send_batch_size",
  });

export const batchProcessorFactory: ProcessorFactory<typeof batchProcessorConfigSchema> = {
  kind: "processor",
  type: "batch",
  configSchema: batchProcessorConfigSchema,
  noOpWarning: (id) =>
    `processors.${id} does nothing here: the agent acknowledges a request only once its records are in the write-ahead log, then batches them itself when it signs them. Set the batching with extensions.signing.batch (max_records, timeout), and remove ${id} from service.pipelines.logs.processors to silence this`,
};

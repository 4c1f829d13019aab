import { z } from "../../common/zod.js";
import { durationSchema } from "../../common/config-schema.js";
import type { ProcessorFactory } from "../api.js";

/**
 * `processors.memory_limiter`: the Collector's memory limiter, accepted with its fields so
 * that a Collector config loads, and a no-op. The agent has no heap-watching refusal:
 * its memory is bounded by construction instead, by settings that each limit one thing
 * (what the WAL keeps in memory, the size of one request, the request rate), and its
 * back-pressure is the WAL: when it is full, requests are refused as retryable.
 */
export const memoryLimiterConfigSchema = z
  .object({
    check_interval: durationSchema.optional(),
    limit_mib: z.number().int().min(0).optional(),
    spike_limit_mib: z.number().int().min(0).optional(),
    limit_percentage: z.number().int().min(0).max(100).optional(),
    spike_limit_percentage: z.number().int().min(0).max(100).optional(),
    min_gc_interval_when_soft_limited: durationSchema.optional(),
    min_gc_interval_when_hard_limited: durationSchema.optional(),
  })
  .strict();

export const memoryLimiterFactory: ProcessorFactory<typeof memoryLimiterConfigSchema> = {
  kind: "processor",
  type: "memory_limiter",
  configSchema: memoryLimiterConfigSchema,
  noOpWarning: (id, config) =>
    `processors.${id} does nothing here${config.limit_mib !== undefined ? ` (limit_mib ${config.limit_mib} is not enforced)` : ""}: the agent's memory is bounded by extensions.wal.memory_mib (what the WAL keeps in memory, the main part of its RSS), receivers.otlp.protocols.http.max_request_body_size and grpc.max_recv_msg_size_mib (one request, decompressed) and receivers.otlp.rate_limit; when the WAL (extensions.wal.max_size_mib) is full, requests are refused as retryable (429 / RESOURCE_EXHAUSTED). Set those, and remove ${id} from service.pipelines.logs.processors to silence this`,
};

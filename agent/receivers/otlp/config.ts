import { z } from "zod";
import { endpointSchema } from "../../config/common.js";

/**
 * `receivers.otlp`, shaped like the Collector's otlpreceiver: `protocols.grpc` and
 * `protocols.http`, each enabled by being present (an empty value takes the defaults).
 */
const MiB = 1024 * 1024;

const grpcSchema = z
  .object({
    endpoint: endpointSchema.default("127.0.0.1:4317"),
    max_recv_msg_size_mib: z.number().positive().max(1024).default(4),
  })
  .strict();

const httpSchema = z
  .object({
    endpoint: endpointSchema.default("127.0.0.1:4318"),
    max_request_body_size: z
      .number()
      .int()
      .positive()
      .default(4 * MiB),
    logs_url_path: z.string().startsWith("/").default("/v1/logs"),
  })
  .strict();

const orDefaults = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === null ? {} : v), schema.optional());

export const otlpReceiverConfigSchema = z
  .object({
    protocols: z
      .object({ grpc: orDefaults(grpcSchema), http: orDefaults(httpSchema) })
      .strict()
      .refine((p) => p.grpc !== undefined || p.http !== undefined, {
        message: "enable at least one protocol: grpc, http or both",
      }),
    /** Seconds clients are told to wait (Retry-After / RetryInfo) when the buffer is full. */
    retry_after_seconds: z.number().int().min(1).max(3600).default(1),
  })
  .strict();

export type OtlpReceiverConfig = z.infer<typeof otlpReceiverConfigSchema>;
export type OtlpGrpcConfig = z.infer<typeof grpcSchema>;
export type OtlpHttpConfig = z.infer<typeof httpSchema>;
export { MiB };

import { type Schema, z } from "../../common/zod.js";
import { durationDefault, endpointSchema } from "../../common/config-schema.js";

/**
 * `receivers.otlp`, shaped like the Collector's otlpreceiver: `protocols.grpc` and
 * `protocols.http`, each enabled by being present (an empty value takes the defaults).
 */
const MiB = 1024 * 1024;

/** Collector configtls server settings; mTLS when client_ca_file is set. Files are re-read when they change. */
const tlsServerSchema = z
  .object({
    cert_file: z.string().min(1),
    key_file: z.string().min(1),
    client_ca_file: z.string().min(1).optional(),
    min_version: z.enum(["1.2", "1.3"]).default("1.2"),
    reload_interval: durationDefault("1m"),
  })
  .strict();

/** Bearer-token authentication of clients (401 / UNAUTHENTICATED otherwise, without saying why). */
const authSchema = z
  .object({
    bearer_token: z.string().min(16, "use a bearer token of at least 16 characters").optional(),
    bearer_token_file: z.string().min(1).optional(),
  })
  .strict()
  .refine((a) => (a.bearer_token === undefined) !== (a.bearer_token_file === undefined), {
    message: "set exactly one of bearer_token or bearer_token_file",
  });

export type TlsServerConfig = z.infer<typeof tlsServerSchema>;
export type ReceiverAuthConfig = z.infer<typeof authSchema>;

const grpcSchema = z
  .object({
    endpoint: endpointSchema.default("127.0.0.1:4317"),
    max_recv_msg_size_mib: z.number().positive().max(1024).default(4),
    tls: tlsServerSchema.optional(),
    auth: authSchema.optional(),
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
    tls: tlsServerSchema.optional(),
    auth: authSchema.optional(),
  })
  .strict();

const orDefaults = <T extends Schema>(schema: T) =>
  z.preprocess((v) => (v === null ? {} : v), schema.optional());

export const otlpReceiverConfigSchema = z
  .object({
    protocols: z
      .object({ grpc: orDefaults(grpcSchema), http: orDefaults(httpSchema) })
      .strict()
      .refine((p) => p.grpc !== undefined || p.http !== undefined, {
        message: "enable at least one protocol: grpc, http or both",
      }),
    /** Requests per second accepted over both protocols (token bucket); more get 429 / RESOURCE_EXHAUSTED. */
    rate_limit: z
      .object({
        requests_per_second: z.number().finite().positive(),
        burst: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
    /** Seconds clients are told to wait (Retry-After / RetryInfo) when the buffer is full. */
    retry_after_seconds: z.number().int().min(1).max(3600).default(1),
  })
  .strict();

export type OtlpReceiverConfig = z.infer<typeof otlpReceiverConfigSchema>;
export type OtlpGrpcConfig = z.infer<typeof grpcSchema>;
export type OtlpHttpConfig = z.infer<typeof httpSchema>;
export { MiB };

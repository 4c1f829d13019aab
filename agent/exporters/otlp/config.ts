import { z } from "../../common/zod.js";
import {
  durationDefault,
  endpointSchema,
  retryOnFailureSchema,
} from "../../common/config-schema.js";
import { httpClientFields } from "../http/config.js";

/**
 * `otlp_http` and `otlp_grpc`: pass records on to an upstream OTLP receiver (usually the
 * Collector the agent sits in front of). Non-audit records go through a bounded in-memory
 * queue, like the Collector's sending_queue; audit records, when `audit: true`, go through
 * the durable delivery engine like any other exporter.
 */
const forwarding = {
  /** Forward non-audit records (those the audit filter does not keep). */
  non_audit: z.boolean().default(true),
  /** Also forward audit records, from the sealed batches, unchanged. */
  audit: z.boolean().default(false),
  sending_queue: z
    .object({
      queue_size: z.number().int().positive().max(1_000_000).default(1000),
      /** When the queue is full: drop (counted, logged) or refuse the client's request (HTTP 503 / UNAVAILABLE). */
      on_full: z.enum(["drop", "refuse"]).default("drop"),
    })
    .strict()
    .default({ queue_size: 1000, on_full: "drop" }),
  retry_on_failure: retryOnFailureSchema.default({}),
};

const refineForwarding = <T extends { non_audit: boolean; audit: boolean }>(c: T) =>
  c.non_audit || c.audit;
const forwardingMessage = { message: "forward something: set non_audit, audit or both to true" };

export const otlpHttpExporterConfigSchema = z
  .object({
    ...httpClientFields,
    /** Path appended to endpoint, as the Collector's logs_endpoint default does. */
    logs_path: z.string().startsWith("/").default("/v1/logs"),
    encoding: z.enum(["proto", "json"]).default("proto"),
    ...forwarding,
  })
  .strict()
  .refine(refineForwarding, forwardingMessage);

export const otlpGrpcExporterConfigSchema = z
  .object({
    endpoint: endpointSchema,
    headers: z.record(z.string(), z.string()).default({}),
    /** As in the Collector: TLS unless `tls.insecure: true`. */
    tls: z
      .object({
        insecure: z.boolean().default(false),
        ca_file: z.string().min(1).optional(),
        cert_file: z.string().min(1).optional(),
        key_file: z.string().min(1).optional(),
      })
      .strict()
      .default({ insecure: false }),
    compression: z.enum(["gzip", "none"]).default("gzip"),
    timeout: durationDefault("30s"),
    ...forwarding,
  })
  .strict()
  .refine(refineForwarding, forwardingMessage);

export type OtlpHttpExporterConfig = z.infer<typeof otlpHttpExporterConfigSchema>;
export type OtlpGrpcExporterConfig = z.infer<typeof otlpGrpcExporterConfigSchema>;
export type ForwardingConfig = Pick<
  OtlpHttpExporterConfig,
  "non_audit" | "audit" | "sending_queue" | "retry_on_failure"
>;

import { type ExporterDescriptor, withoutCredentials } from "../descriptor.js";
import { otlpGrpcExporterConfigSchema, otlpHttpExporterConfigSchema } from "./config.js";

/**
 * `exporters.otlp_http` and `exporters.otlp_grpc`: pass-through to an upstream collector.
 * Not durable: what they forward is the upstream's to keep; they take audit records only
 * with `audit: true`.
 */
export const otlpHttpExporter: ExporterDescriptor<typeof otlpHttpExporterConfigSchema> = {
  type: "otlp_http",
  configSchema: otlpHttpExporterConfigSchema,
  capabilities: { durable: false, readable: false },
  storesAuditRecords: (config) => config.audit,
  describe: (config) => ({
    destination: { endpoint: withoutCredentials(config.endpoint) },
  }),
  load: async () => (await import("./factory.js")).otlpHttpExporterFactory,
};

export const otlpGrpcExporter: ExporterDescriptor<typeof otlpGrpcExporterConfigSchema> = {
  type: "otlp_grpc",
  configSchema: otlpGrpcExporterConfigSchema,
  capabilities: { durable: false, readable: false },
  storesAuditRecords: (config) => config.audit,
  describe: (config) => ({
    destination: { endpoint: withoutCredentials(config.endpoint) },
  }),
  load: async () => (await import("./factory.js")).otlpGrpcExporterFactory,
};

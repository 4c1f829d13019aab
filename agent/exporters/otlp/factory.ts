import type { ExporterComponent, ExporterFactory, ExporterSettings } from "../api.js";
import { OtlpAuditSink } from "./audit-sink.js";
import {
  type ForwardingConfig,
  otlpGrpcExporterConfigSchema,
  otlpHttpExporterConfigSchema,
} from "./config.js";
import { SendingQueue } from "./sending-queue.js";
import { httpTransport, type OtlpTransport } from "./transport.js";

function component(
  settings: ExporterSettings,
  config: ForwardingConfig,
  transport: OtlpTransport,
): ExporterComponent {
  const logger = settings.logger.child({ exporter: settings.id });
  return {
    sink: config.audit ? new OtlpAuditSink(transport) : undefined,
    forwarder: config.non_audit
      ? new SendingQueue(settings.id, transport, config, settings.counters, logger)
      : undefined,
    delivery: { retry: config.retry_on_failure },
    close: () => transport.close(),
  };
}

export const otlpHttpExporterFactory: ExporterFactory<typeof otlpHttpExporterConfigSchema> = {
  kind: "exporter",
  type: "otlp_http",
  configSchema: otlpHttpExporterConfigSchema,
  create: (settings, config) => component(settings, config, httpTransport(config)),
  storesAuditRecords: (config) => config.audit,
};

export const otlpGrpcExporterFactory: ExporterFactory<typeof otlpGrpcExporterConfigSchema> = {
  kind: "exporter",
  type: "otlp_grpc",
  configSchema: otlpGrpcExporterConfigSchema,
  create: async (settings, config) =>
    component(settings, config, (await import("./grpc-transport.js")).grpcTransport(config)),
  storesAuditRecords: (config) => config.audit,
};

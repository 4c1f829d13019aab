import type { ExporterComponent, ExporterSettings } from "../api.js";
import { implementExporter } from "../descriptor.js";
import { OtlpAuditSink } from "./audit-sink.js";
import type { ForwardingConfig } from "./config.js";
import { otlpGrpcExporter, otlpHttpExporter } from "./descriptor.js";
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

export const otlpHttpExporterFactory = implementExporter(otlpHttpExporter, {
  create: (settings, config) => component(settings, config, httpTransport(config)),
});

export const otlpGrpcExporterFactory = implementExporter(otlpGrpcExporter, {
  create: async (settings, config) =>
    component(settings, config, (await import("./grpc-transport.js")).grpcTransport(config)),
});

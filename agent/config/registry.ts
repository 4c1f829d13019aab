import type { ExtensionFactory } from "../common/component.js";
import type { ExporterFactory } from "../exporters/api.js";
import { type ExporterDescriptor, lazyExporterFactory } from "../exporters/descriptor.js";
import { elasticsearchExporter } from "../exporters/elasticsearch/descriptor.js";
import { fileExporter } from "../exporters/file/descriptor.js";
import { lokiExporter } from "../exporters/loki/descriptor.js";
import { otlpGrpcExporter, otlpHttpExporter } from "../exporters/otlp/descriptor.js";
import { s3Exporter } from "../exporters/s3/descriptor.js";
import type { ProcessorFactory } from "../processing/api.js";
import { auditFilterFactory } from "../processing/audit-filter/factory.js";
import type { ReceiverFactory } from "../receivers/api.js";
import { otlpReceiverFactory } from "../receivers/otlp/factory.js";
import { signingExtensionFactory } from "../sealing/config.js";
import { walExtensionFactory } from "../store/config.js";
import { healthCheckExtensionFactory } from "../telemetry/health-config.js";
import { verificationExtensionFactory } from "../verify/config.js";

export type AnyFactory = ReceiverFactory | ProcessorFactory | ExporterFactory | ExtensionFactory;

/**
 * Every exporter plugin, one line each. Everything else that depends on the set of
 * exporters — config validation, the safety warnings, `verify --source` — is derived
 * from these descriptors (exporters/descriptor.ts).
 */
export const exporterDescriptors: readonly ExporterDescriptor[] = [
  fileExporter,
  lokiExporter,
  s3Exporter,
  elasticsearchExporter,
  otlpHttpExporter,
  otlpGrpcExporter,
] as readonly ExporterDescriptor[];

/** Every component type the agent knows, one entry each. */
export const factories: readonly AnyFactory[] = [
  otlpReceiverFactory,
  auditFilterFactory,
  ...exporterDescriptors.map((d) => lazyExporterFactory(d)),
  walExtensionFactory,
  signingExtensionFactory,
  verificationExtensionFactory,
  healthCheckExtensionFactory,
];

/** The types of the exporters that keep audit records in durable storage, for messages. */
export function durableExporterTypes(): string[] {
  return exporterDescriptors.filter((d) => d.capabilities.durable).map((d) => d.type);
}

/** "a, b, c or d": a list for a message. */
export function oneOf(items: readonly string[]): string {
  return items.length <= 1
    ? (items[0] ?? "")
    : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

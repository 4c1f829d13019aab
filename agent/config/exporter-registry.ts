import type { ExporterDescriptor } from "../exporters/descriptor.js";
import { debugExporter } from "../exporters/debug/descriptor.js";
import { elasticsearchExporter } from "../exporters/elasticsearch/descriptor.js";
import { fileExporter } from "../exporters/file/descriptor.js";
import { lokiExporter } from "../exporters/loki/descriptor.js";
import { otlpGrpcExporter, otlpHttpExporter } from "../exporters/otlp/descriptor.js";
import { s3Exporter } from "../exporters/s3/descriptor.js";

/**
 * Every exporter plugin, one line each. Everything else that depends on the set of
 * exporters — config validation (registry.ts), the safety warnings, `verify --source` — is
 * derived from these descriptors (exporters/descriptor.ts). Kept apart from the other
 * factories so that `verify` loads the exporters' descriptors and not the receivers.
 */
export const exporterDescriptors: readonly ExporterDescriptor[] = [
  fileExporter,
  lokiExporter,
  s3Exporter,
  elasticsearchExporter,
  otlpHttpExporter,
  otlpGrpcExporter,
  debugExporter,
] as readonly ExporterDescriptor[];

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

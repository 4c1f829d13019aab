import type { z } from "zod";
import { walExtensionFactory } from "../store/config.js";
import { signingExtensionFactory } from "../sealing/config.js";
import { elasticsearchExporterConfigSchema } from "../exporters/elasticsearch/config.js";
import { fileExporterConfigSchema } from "../exporters/file/config.js";
import { lokiExporterConfigSchema } from "../exporters/loki/config.js";
import {
  otlpGrpcExporterConfigSchema,
  otlpHttpExporterConfigSchema,
} from "../exporters/otlp/config.js";
import { s3ExporterConfigSchema } from "../exporters/s3/config.js";
import { auditFilterFactory } from "../processing/audit-filter/factory.js";
import { healthCheckExtensionFactory } from "../telemetry/health-config.js";
import { verificationExtensionFactory } from "../verify/config.js";
import { otlpReceiverFactory } from "../receivers/otlp/factory.js";
import type { ExtensionFactory } from "../common/component.js";
import type { ExporterFactory } from "../exporters/api.js";
import type { ProcessorFactory } from "../processing/api.js";
import type { ReceiverFactory } from "../receivers/api.js";

export type AnyFactory = ReceiverFactory | ProcessorFactory | ExporterFactory | ExtensionFactory;

/**
 * An exporter known by its type and config schema, whose code (sink, reader, client, and
 * their dependencies) is imported when an agent first creates or reads one: a running agent
 * holds only the exporters it is configured with. `load` gives the exporter's own factory;
 * `readable` and `storesAuditRecords` say what config validation needs to know without it.
 */
function lazyExporter<S extends z.ZodType>(
  type: string,
  configSchema: S,
  load: () => Promise<ExporterFactory<S>>,
  about: { readable: boolean; storesAuditRecords?: (config: z.output<S>) => boolean },
): ExporterFactory<S> & { load(): Promise<ExporterFactory<S>> } {
  return {
    kind: "exporter",
    type,
    configSchema,
    load,
    create: async (settings, config) => (await load()).create(settings, config),
    ...(about.storesAuditRecords ? { storesAuditRecords: about.storesAuditRecords } : {}),
    ...(about.readable
      ? {
          async reader(config: z.output<S>) {
            const factory = await load();
            if (!factory.reader) throw new Error(`exporter type ${type} cannot be read back`);
            return factory.reader(config);
          },
        }
      : {}),
  };
}

const forwardsAudit = (config: { audit: boolean }) => config.audit;

/** Every component type the agent knows, one entry each. */
export const factories: readonly AnyFactory[] = [
  otlpReceiverFactory,
  auditFilterFactory,
  lazyExporter(
    "file",
    fileExporterConfigSchema,
    async () => (await import("../exporters/file/factory.js")).fileExporterFactory,
    { readable: true },
  ),
  lazyExporter(
    "loki",
    lokiExporterConfigSchema,
    async () => (await import("../exporters/loki/factory.js")).lokiExporterFactory,
    { readable: true },
  ),
  lazyExporter(
    "s3",
    s3ExporterConfigSchema,
    async () => (await import("../exporters/s3/factory.js")).s3ExporterFactory,
    { readable: true },
  ),
  lazyExporter(
    "elasticsearch",
    elasticsearchExporterConfigSchema,
    async () =>
      (await import("../exporters/elasticsearch/factory.js")).elasticsearchExporterFactory,
    { readable: true },
  ),
  lazyExporter(
    "otlp_http",
    otlpHttpExporterConfigSchema,
    async () => (await import("../exporters/otlp/factory.js")).otlpHttpExporterFactory,
    { readable: false, storesAuditRecords: forwardsAudit },
  ),
  lazyExporter(
    "otlp_grpc",
    otlpGrpcExporterConfigSchema,
    async () => (await import("../exporters/otlp/factory.js")).otlpGrpcExporterFactory,
    { readable: false, storesAuditRecords: forwardsAudit },
  ),
  walExtensionFactory,
  signingExtensionFactory,
  verificationExtensionFactory,
  healthCheckExtensionFactory,
];

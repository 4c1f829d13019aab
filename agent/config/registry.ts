import type { Schema } from "../common/zod.js";
import type { ExtensionFactory } from "../common/component.js";
import type { ExporterFactory } from "../exporters/api.js";
import { lazyExporterFactory } from "../exporters/descriptor.js";
import type { ProcessorFactory } from "../processing/api.js";
import { auditFilterFactory } from "../processing/audit-filter/factory.js";
import { batchProcessorFactory } from "../processing/batch/factory.js";
import { memoryLimiterFactory } from "../processing/memory-limiter/factory.js";
import { sourceProcessorFactory } from "../processing/source/factory.js";
import type { ReceiverFactory } from "../receivers/api.js";
import { otlpReceiverFactory } from "../receivers/otlp/factory.js";
import { signingExtensionFactory } from "../sealing/config.js";
import { walExtensionFactory } from "../store/config.js";
import { healthCheckExtensionFactory } from "../telemetry/health-config.js";
import { verificationExtensionFactory } from "../verify/config.js";
import { exporterDescriptors } from "./exporter-registry.js";

export { durableExporterTypes, exporterDescriptors, oneOf } from "./exporter-registry.js";

export type AnyFactory =
  ReceiverFactory | ProcessorFactory<Schema, unknown> | ExporterFactory | ExtensionFactory;

/** Every component type the agent knows, one entry each. */
export const factories: readonly AnyFactory[] = [
  otlpReceiverFactory,
  auditFilterFactory,
  batchProcessorFactory,
  memoryLimiterFactory,
  sourceProcessorFactory,
  ...exporterDescriptors.map((d) => lazyExporterFactory(d)),
  walExtensionFactory,
  signingExtensionFactory,
  verificationExtensionFactory,
  healthCheckExtensionFactory,
];

import { walExtensionFactory } from "../buffer/config.js";
import { signingExtensionFactory } from "../chain/config.js";
import { elasticsearchExporterFactory } from "../exporters/elasticsearch/factory.js";
import { fileExporterFactory } from "../exporters/file/factory.js";
import { lokiExporterFactory } from "../exporters/loki/factory.js";
import { otlpGrpcExporterFactory, otlpHttpExporterFactory } from "../exporters/otlp/factory.js";
import { s3ExporterFactory } from "../exporters/s3/factory.js";
import { auditFilterFactory } from "../processing/audit-filter/factory.js";
import { healthCheckExtensionFactory } from "../telemetry/health.js";
import { verificationExtensionFactory } from "../verify/config.js";
import { otlpReceiverFactory } from "../receivers/otlp/factory.js";
import type { AnyFactory } from "./factory.js";

/** Every component type the agent knows, one line each. */
export const factories: readonly AnyFactory[] = [
  otlpReceiverFactory,
  auditFilterFactory,
  fileExporterFactory,
  lokiExporterFactory,
  s3ExporterFactory,
  elasticsearchExporterFactory,
  otlpHttpExporterFactory,
  otlpGrpcExporterFactory,
  walExtensionFactory,
  signingExtensionFactory,
  verificationExtensionFactory,
  healthCheckExtensionFactory,
];

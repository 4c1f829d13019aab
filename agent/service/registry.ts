import { walExtensionFactory } from "../buffer/config.js";
import { signingExtensionFactory } from "../chain/config.js";
import { fileExporterFactory } from "../exporters/file/factory.js";
import { auditFilterFactory } from "../processing/audit-filter/factory.js";
import { verificationExtensionFactory } from "../verify/config.js";
import { otlpReceiverFactory } from "../receivers/otlp/factory.js";
import type { AnyFactory } from "./factory.js";

/** Every component type the agent knows, one line each. */
export const factories: readonly AnyFactory[] = [
  otlpReceiverFactory,
  auditFilterFactory,
  fileExporterFactory,
  walExtensionFactory,
  signingExtensionFactory,
  verificationExtensionFactory,
];

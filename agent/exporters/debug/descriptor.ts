import { z } from "../../common/zod.js";
import type { ExporterDescriptor } from "../descriptor.js";

/**
 * `exporters.debug`: the Collector's debug exporter. It prints the sealed audit batches the
 * agent would export, to the agent's log (or stdout), to see what flows while setting up a
 * pipeline. It keeps nothing: it is never an audit backend, `verify` cannot read it, and it
 * does not count as the exporter that stores audit records (the config still needs one).
 */
export const debugExporterConfigSchema = z
  .object({
    /** basic: one line per batch; normal: one per record; detailed: every record whole. */
    verbosity: z.enum(["basic", "normal", "detailed"]).default("basic"),
    /** Batches printed each second before sampling starts (as the Collector's). */
    sampling_initial: z.number().int().min(1).default(2),
    /** After that, one batch in this many is printed, for the rest of that second. */
    sampling_thereafter: z.number().int().min(1).default(1),
    /** true: through the agent's JSON log (stderr); false: plain text lines on stdout. */
    use_internal_logger: z.boolean().default(true),
  })
  .strict();

export type DebugExporterConfig = z.infer<typeof debugExporterConfigSchema>;

export const debugExporter: ExporterDescriptor<typeof debugExporterConfigSchema> = {
  type: "debug",
  configSchema: debugExporterConfigSchema,
  capabilities: { durable: false, readable: false },
  storesAuditRecords: () => false,
  // Prints what it is given and stores nothing: there is no source to verify.
  describe: (config) => ({
    destination: {
      output: config.use_internal_logger ? "the agent's log (stderr)" : "stdout",
      verbosity: config.verbosity,
    },
  }),
  load: async () => (await import("./factory.js")).debugExporterFactory,
};

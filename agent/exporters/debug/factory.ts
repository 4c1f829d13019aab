import { retryOnFailureSchema } from "../../common/config-schema.js";
import type { RecordSink, SealedBatch, SealedRecord } from "../api.js";
import { implementExporter } from "../descriptor.js";
import type { Logger } from "../../telemetry/logger.js";
import { type DebugExporterConfig, debugExporter } from "./descriptor.js";

/** Where the debug exporter's lines go: the agent's logger, or stdout as plain text. */
type Print = (fields: Record<string, unknown>, message: string) => void;

function printer(logger: Logger, id: string, config: DebugExporterConfig): Print {
  if (config.use_internal_logger)
    return (fields, message) => logger.info({ exporter: id, ...fields }, message);
  return (fields, message) => {
    const extra = Object.entries(fields)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    process.stdout.write(`${id}: ${message}${extra ? ` ${extra}` : ""}\n`);
  };
}

/** One line for a record (verbosity normal): its seq, time, severity, body and attributes. */
function recordLine(record: SealedRecord): string {
  try {
    const parsed = JSON.parse(record.canonicalText()) as {
      logRecord?: {
        timeUnixNano?: string;
        severityText?: string;
        body?: Record<string, unknown>;
        attributes?: Array<{ key: string; value?: Record<string, unknown> }>;
      };
    };
    const r = parsed.logRecord ?? {};
    const value = (v: Record<string, unknown> | undefined) => {
      const inner = v ? Object.values(v)[0] : undefined;
      return typeof inner === "string" ? inner : JSON.stringify(inner ?? null);
    };
    const attrs = (r.attributes ?? []).map((a) => `${a.key}=${value(a.value)}`).join(" ");
    return [r.timeUnixNano, r.severityText, value(r.body), attrs].filter(Boolean).join(" ");
  } catch {
    return record.canonicalText();
  }
}

/**
 * Sampling as the Collector's debug exporter does it: in each second, the first
 * `sampling_initial` batches, then one in `sampling_thereafter`.
 */
function sampler(config: DebugExporterConfig, now = () => Date.now()): () => boolean {
  let second = -1;
  let seen = 0;
  return () => {
    const s = Math.floor(now() / 1000);
    if (s !== second) {
      second = s;
      seen = 0;
    }
    seen++;
    if (seen <= config.sampling_initial) return true;
    return (seen - config.sampling_initial) % config.sampling_thereafter === 0;
  };
}

class DebugSink implements RecordSink {
  private readonly sample: () => boolean;
  constructor(
    private readonly print: Print,
    private readonly config: DebugExporterConfig,
  ) {
    this.sample = sampler(config);
  }

  async open(): Promise<number | null> {
    return null;
  }

  async write(batch: SealedBatch): Promise<void> {
    if (!this.sample()) return;
    const { index, firstSeq, lastSeq, count } = batch;
    this.print({ batch: index, records: count, firstSeq, lastSeq }, "debug: sealed batch");
    if (this.config.verbosity === "basic") return;
    for (const r of batch.records) {
      if (this.config.verbosity === "normal") this.print({ seq: r.seq }, recordLine(r));
      else
        this.print({ seq: r.seq, leafHash: r.leafHashHex(), record: r.canonicalText() }, "record");
    }
    if (this.config.verbosity === "detailed")
      this.print({ batch: index, manifest: batch.manifest }, "manifest");
  }

  async close(): Promise<void> {}
}

export const debugExporterFactory = implementExporter(debugExporter, {
  create: (settings, config) => ({
    sink: new DebugSink(printer(settings.logger, settings.id, config), config),
    // Printing does not fail; the Collector defaults keep the delivery engine's contract.
    delivery: { retry: retryOnFailureSchema.parse({}) },
  }),
});

export { sampler as debugSampler, recordLine as debugRecordLine };

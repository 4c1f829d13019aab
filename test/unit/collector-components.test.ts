import { afterEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import { debugExporterConfigSchema } from "../../agent/exporters/debug/descriptor.js";
import { debugExporterFactory, debugSampler } from "../../agent/exporters/debug/factory.js";
import type { SealedBatch, SealedRecord } from "../../agent/exporters/api.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { AgentCounters } from "../../agent/telemetry/counters.js";
import { configProblems } from "../helpers/config.js";

/**
 * Collector components users paste: processors batch and memory_limiter are accepted with
 * their Collector fields and a start-up warning saying why they do nothing here; the debug
 * exporter prints what would be exported and never counts as an audit backend.
 */

function yaml(o: { processors?: string; exporters?: string; list?: string; extra?: string }) {
  return `receivers:
  otlp:
    protocols:
      http:
processors:
  audit_filter:
${o.processors ?? ""}
exporters:
${o.exporters ?? "  file:\n    directory: ./out"}
${o.extra ?? ""}
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [${o.list ?? "audit_filter"}]
      exporters: [${
        o.exporters
          ? o.exporters
              .split("\n")
              .filter((l) => /^ {2}\S/.test(l))
              .map((l) => l.trim().replace(/:$/, ""))
              .join(", ")
          : "file"
      }]
`;
}

type YamlOptions = Parameters<typeof yaml>[0];

function parsed(o: YamlOptions) {
  return parseConfig(yaml(o), "x.yaml", {});
}

/** The problems of the config, joined. */
function problems(o: YamlOptions): string {
  return configProblems(yaml(o)).join("\n");
}

const COLLECTOR_PROCESSORS = `  batch:
    timeout: 1s
    send_batch_size: 1024
    send_batch_max_size: 2048
    metadata_keys: [tenant]
    metadata_cardinality_limit: 10
  memory_limiter:
    check_interval: 1s
    limit_mib: 400
    spike_limit_mib: 100
    limit_percentage: 0
    spike_limit_percentage: 0`;

describe("processors batch and memory_limiter", () => {
  it("are accepted with their Collector fields and warn once, saying why and what to set", () => {
    const config = parsed({
      processors: COLLECTOR_PROCESSORS,
      list: "memory_limiter, audit_filter, batch",
    });
    expect(config.auditFilter.id).toBe("audit_filter");
    const batch = config.warnings.filter((w) => w.startsWith("processors.batch "));
    const limiter = config.warnings.filter((w) => w.startsWith("processors.memory_limiter "));
    expect(batch).toHaveLength(1);
    expect(batch[0]).toContain("extensions.signing.batch (max_records, timeout)");
    expect(limiter).toHaveLength(1);
    expect(limiter[0]).toContain("limit_mib 400 is not enforced");
    expect(limiter[0]).toContain("extensions.wal.memory_mib");
    expect(limiter[0]).toContain("max_request_body_size");
  });

  it("with empty bodies (`batch:`), as most Collector configs have them", () => {
    const config = parsed({
      processors: "  batch:\n  memory_limiter:",
      list: "memory_limiter, audit_filter, batch",
    });
    expect(config.warnings.some((w) => w.startsWith("processors.batch does nothing here"))).toBe(
      true,
    );
  });

  it("a misspelt field is refused, naming it", () => {
    const p = problems({ processors: "  batch:\n    send_batch_sise: 10", list: "batch" });
    expect(p).toMatch(/processors\.batch.*send_batch_sise/);
    const q = problems({
      processors: "  batch:\n    send_batch_size: 100\n    send_batch_max_size: 10",
      list: "batch",
    });
    expect(q).toContain("send_batch_max_size must be 0 or at least send_batch_size");
  });

  it("defined but not in the pipeline: only the usual 'not used' warning", () => {
    const config = parsed({ processors: "  batch:" });
    expect(config.warnings).toContain(
      "processors.batch is configured but not used in service.pipelines.logs",
    );
    expect(config.warnings.some((w) => w.includes("does nothing here"))).toBe(false);
  });
});

describe("exporter debug", () => {
  it("is accepted next to a backend, with the Collector's fields", () => {
    const config = parsed({
      exporters:
        "  file:\n    directory: ./out\n  debug:\n    verbosity: detailed\n    sampling_initial: 5\n    sampling_thereafter: 200\n    use_internal_logger: false",
    });
    expect(config.exporters.map((e) => e.id)).toEqual(["file", "debug"]);
  });

  it("alone is refused: it stores nothing, so the pipeline has no audit backend", () => {
    const p = problems({ exporters: "  debug:" });
    expect(p).toContain("no exporter stores audit records");
  });

  it("cannot be verified: a verification extension naming it is refused", () => {
    const p = problems({
      exporters: "  file:\n    directory: ./out\n  debug:",
      extra: "extensions:\n  verification:\n    exporters: [debug]",
    });
    expect(p).toContain('exporter "debug" cannot be read back for verification');
  });

  it("an unknown verbosity is refused", () => {
    expect(debugExporterConfigSchema.safeParse({ verbosity: "loud" }).success).toBe(false);
  });
});

function fakeRecord(seq: number): SealedRecord {
  const text = JSON.stringify({
    logRecord: {
      timeUnixNano: "1700000000000000000",
      severityText: "INFO",
      body: { stringValue: `user u-${seq} logged in` },
      attributes: [{ key: "audit", value: { boolValue: true } }],
    },
  });
  const canonical = Buffer.from(text);
  return {
    seq,
    leafHash: Buffer.alloc(32, seq),
    leafHashHex: () => Buffer.alloc(32, seq).toString("hex"),
    canonical,
    canonicalLength: canonical.length,
    canonicalText: () => text,
    copyCanonical: (t, at) => canonical.copy(t, at),
  };
}

function batch(index: number, records: SealedRecord[]): SealedBatch {
  return {
    index,
    manifest: `{"manifest":${index}}`,
    checkpoint: null,
    firstSeq: records[0]?.seq ?? 0,
    lastSeq: records.at(-1)?.seq ?? -1,
    count: records.length,
    records,
  };
}

async function printed(config: Record<string, unknown>): Promise<string> {
  const out: string[] = [];
  const write = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  try {
    const component = await debugExporterFactory.create(
      {
        id: "debug",
        logger: createLogger("error"),
        counters: new AgentCounters(),
        state: undefined as never,
      },
      debugExporterConfigSchema.parse({ ...config, use_internal_logger: false }),
    );
    await component.sink?.open("chain");
    await component.sink?.write(batch(7, [fakeRecord(10), fakeRecord(11)]));
  } finally {
    write.mockRestore();
  }
  return out.join("");
}

describe("debug exporter output", () => {
  afterEach(() => vi.restoreAllMocks());

  it("basic: one line per batch", async () => {
    expect(await printed({})).toBe(
      "debug: debug: sealed batch batch=7 records=2 firstSeq=10 lastSeq=11\n",
    );
  });

  it("normal: a line per record with its time, severity, body and attributes", async () => {
    const text = await printed({ verbosity: "normal" });
    expect(text.split("\n")).toContain(
      "debug: 1700000000000000000 INFO user u-10 logged in audit=true seq=10",
    );
    expect(text.split("\n").filter(Boolean)).toHaveLength(3);
  });

  it("detailed: every record whole with its leaf hash, and the signed manifest", async () => {
    const text = await printed({ verbosity: "detailed" });
    expect(text).toContain(`leafHash=${"0b".repeat(32)}`);
    expect(text).toContain('"body":{"stringValue":"user u-11 logged in"}');
    expect(text).toContain('manifest={"manifest":7}');
  });

  it("samples as the Collector does: the first N each second, then one in M", () => {
    let now = 5_000;
    const sample = debugSampler(
      debugExporterConfigSchema.parse({ sampling_initial: 2, sampling_thereafter: 3 }),
      () => now,
    );
    const taken = Array.from({ length: 8 }, () => sample());
    expect(taken).toEqual([true, true, false, false, true, false, false, true]);
    now += 1000;
    expect(sample()).toBe(true);
  });
});

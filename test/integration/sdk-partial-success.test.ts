import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { diag, DiagLogLevel } from "@opentelemetry/api";
import { OTLPLogExporter as HttpJsonExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchLogRecordProcessor,
  LoggerProvider,
  type LogRecordExporter,
  type ReadableLogRecord,
} from "@opentelemetry/sdk-logs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { attr, CLI, makeTempDir, readOutput, testConfigYaml, waitFor } from "../helpers/agent.js";

/**
 * One value that cannot be stored exactly no longer loses the whole batch (issue 12,
 * item 7). The OTel JS http/json exporter writes every integral JS number as a JSON-number
 * intValue, 1e21 as `1e+21` and 2^60 as `1152921504606847000`; neither can be stored as
 * what the application logged. The agent used to answer 400, which the SDK does not retry,
 * so every other record of the export was lost. Now those records alone are refused,
 * through OTLP partial success naming the value's path, and the others are stored, sealed
 * and verified.
 */

type ExportCallback = Parameters<LogRecordExporter["export"]>[1];

/** The SDK's exporter, with the result of each export it reports to the SDK. */
class RecordingExporter implements LogRecordExporter {
  readonly results: number[] = [];
  constructor(private readonly inner: LogRecordExporter) {}
  export(logs: ReadableLogRecord[], done: ExportCallback): void {
    this.inner.export(logs, (result) => {
      this.results.push(result.code);
      done(result);
    });
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}

const SUCCESS = 0; // ExportResultCode.SUCCESS

describe("the OTel JS http/json exporter: unrepresentable integers refuse only their records", () => {
  const tmp = makeTempDir();
  const configFile = join(tmp.path, "agent.yaml");
  let agent: RunningAgent;
  let exporter: RecordingExporter;
  const warnings: string[] = [];

  beforeAll(async () => {
    const yaml = testConfigYaml({ dir: tmp.path, grpc: false });
    writeFileSync(configFile, yaml);
    agent = await startAgent(parseConfig(yaml, configFile, {}), createLogger("error"));
    // The SDK reports a partial success only through its diagnostic logger.
    diag.setLogger(
      {
        error: () => undefined,
        warn: (...args: unknown[]) => void warnings.push(args.map(String).join(" ")),
        info: () => undefined,
        debug: () => undefined,
        verbose: () => undefined,
      },
      DiagLogLevel.WARN,
    );
    exporter = new RecordingExporter(
      new HttpJsonExporter({ url: `http://${agent.addresses().otlp?.http}/v1/logs` }),
    );
    const provider = new LoggerProvider({
      resource: resourceFromAttributes({ "service.name": "ledger" }),
      processors: [new BatchLogRecordProcessor({ exporter, scheduledDelayMillis: 10 })],
    });
    const logger = provider.getLogger("ledger.audit");
    for (let idx = 0; idx < 6; idx++) {
      const attributes: Record<string, number | boolean> = { audit: true, "rec.idx": idx };
      if (idx === 1) attributes.largest_exact = 2 ** 53 - 1;
      if (idx === 3) attributes.balance = 1e21;
      logger.emit({
        timestamp: [1700000000 + idx, 0],
        body: idx === 5 ? 2 ** 60 : `entry ${idx}`,
        attributes,
      });
    }
    await provider.forceFlush();
    await provider.shutdown();
    diag.disable();
    await waitFor(() => agent.deliveries[0]?.deliveredThrough === 3, 10_000, "export");
    await agent.shutdown(5000);
  });

  afterAll(() => tmp.cleanup());

  it("the SDK's one export succeeds, with a partial success naming the first value's path", () => {
    expect(exporter.results).toEqual([SUCCESS]);
    const partial = warnings.find((w) => w.includes("Partial Success"));
    const json = JSON.parse((partial ?? "").slice((partial ?? "").indexOf("{"))) as {
      rejectedLogRecords: string;
      errorMessage: string;
    };
    expect(json).toEqual({
      rejectedLogRecords: "2",
      errorMessage:
        "2 log record(s) refused: resourceLogs[0].scopeLogs[0].logRecords[3].attributes[2].value.intValue: 1e+21 is outside the int64 range (-9223372036854775808 to 9223372036854775807)",
    });
    expect(agent.counters.receiverRefused.get("unrepresentable_value")).toBe(2);
  });

  it("the export's other records are stored, in order and intact", async () => {
    const { records, findings } = await readOutput(join(tmp.path, "out"));
    expect(findings).toEqual([]);
    expect(records.map((r) => attr(r.record, "rec.idx")?.intValue)).toEqual(["0", "1", "2", "4"]);
    expect(attr(records[1]!.record, "largest_exact")).toEqual({ intValue: "9007199254740991" });
    expect(records.map((r) => r.record.logRecord.body)).toEqual(
      [0, 1, 2, 4].map((i) => ({ stringValue: `entry ${i}` })),
    );
  });

  it("and verify: chain, signed manifests and checkpoints", () => {
    const r = spawnSync(
      process.execPath,
      [CLI, "verify", "--config", configFile, "--exporter", "file"],
      { encoding: "utf8" },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/4 records, seq 0\.\.3/);
    expect(r.stdout).toMatch(/OK: no findings/);
    expect(r.status).toBe(0);
  });
});

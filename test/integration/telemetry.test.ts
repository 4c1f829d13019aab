import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { makeTempDir, testConfigYaml, waitFor } from "../helpers/agent.js";

/**
 * The agent's own telemetry as an operator sees it: Prometheus text on /metrics whose
 * counters equal what was sent, filtered and exported, and a health endpoint that turns
 * not-ready (with the reason) when the WAL fills or an exporter fails, and back.
 */

/** Parses Prometheus text exposition: "name{labels} value" → value, checking every line's shape. */
function parseProm(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${line}`);
    out.set(m[1] as string, Number(m[2]));
  }
  return out;
}

function withHealth(yaml: string, extra = ""): string {
  return yaml
    .replace("extensions:\n", `extensions:\n  health_check:\n    endpoint: 127.0.0.1:0\n${extra}`)
    .replace("service:\n", "service:\n  extensions: [health_check]\n");
}

async function send(agent: RunningAgent, audit: number, other: number, pad = 10): Promise<number> {
  const logRecords = [
    ...Array.from({ length: audit }, (_, i) => ({
      eventName: "audit.x",
      body: { stringValue: "p".repeat(pad) },
      attributes: [{ key: "i", value: { intValue: i } }],
    })),
    ...Array.from({ length: other }, () => ({ eventName: "app.x" })),
  ];
  const res = await fetch(`http://${agent.addresses().otlp?.http}/v1/logs`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] }),
  });
  return res.status;
}

describe("metrics", () => {
  const tmp = makeTempDir();
  let agent: RunningAgent;
  beforeAll(async () => {
    agent = await startAgent(
      parseConfig(testConfigYaml({ dir: tmp.path }), "t.yaml", {}),
      createLogger("error"),
    );
  });
  afterAll(async () => {
    await agent?.shutdown(5000);
    tmp.cleanup();
  });

  it("counts exactly what was sent, filtered, chained and exported, in Prometheus text", async () => {
    for (let i = 0; i < 5; i++) expect(await send(agent, 7, 3)).toBe(200);
    await waitFor(() => agent.deliveries[0]?.deliveredThrough === 34, 5000, "export");
    const res = await fetch(`http://${agent.addresses().metrics?.http}/metrics`);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const m = parseProm(await res.text());
    expect(m.get('otelcol_receiver_accepted_log_records{receiver="otlp"}')).toBe(50);
    expect(m.get("audit_agent_records_chained_total")).toBe(35);
    expect(m.get("audit_agent_records_filtered_total")).toBe(15);
    expect(m.get('otelcol_exporter_sent_log_records{exporter="file"}')).toBe(35);
    expect(m.get('otelcol_exporter_queue_size{exporter="file"}')).toBe(0);
    expect(m.get('audit_agent_exporter_lag_records{exporter="file"}')).toBe(0);
    expect(m.get("audit_agent_chain_head_seq")).toBe(34);
    expect(m.get("audit_agent_checkpoint_tree_size")).toBe(35);
    expect(m.get("audit_agent_wal_fsync_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(m.get('audit_agent_exporter_up{exporter="file",state="running"}')).toBe(1);
    expect(m.get("process_resident_memory_bytes")).toBeGreaterThan(0);
  });
});

describe("health", () => {
  it("turns not-ready when the WAL fills and ready again once the exporter drains it", async () => {
    const tmp = makeTempDir();
    const blocker = join(tmp.path, "blocker");
    writeFileSync(blocker, "a file where the exporter needs a directory");
    const yaml = withHealth(
      testConfigYaml({ dir: tmp.path, walMaxMib: 0.05, fileDirectory: join(blocker, "out") }),
    );
    const agent = await startAgent(parseConfig(yaml, "t.yaml", {}), createLogger("error"));
    const url = `http://${agent.addresses().health_check?.http}`;
    try {
      const ok = await fetch(`${url}/`);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ status: "Server available", reasons: [] });
      while ((await send(agent, 4, 0, 1000)) === 200);
      while ((await send(agent, 1, 0, 10)) === 200); // fill what is left
      const full = await fetch(`${url}/readyz`);
      expect(full.status).toBe(503);
      const body = (await full.json()) as { status: string; reasons: string[] };
      expect(body.status).toBe("Server not available");
      expect(body.reasons.join()).toMatch(/write-ahead log is \d+% full/);
      expect((await fetch(`${url}/livez`)).status).toBe(200);
      rmSync(blocker);
      mkdirSync(blocker);
      await waitFor(
        async () => (await fetch(`${url}/`)).status === 200,
        10_000,
        "readiness to return",
      );
    } finally {
      await agent.shutdown(2000);
      tmp.cleanup();
    }
  });

  it("turns not-ready, naming the exporter, when one fails permanently", async () => {
    const tmp = makeTempDir();
    const blocker = join(tmp.path, "blocker");
    writeFileSync(blocker, "x");
    const yaml = withHealth(
      testConfigYaml({ dir: tmp.path, fileDirectory: join(blocker, "out") }),
    ).replace(
      "      initial_interval: 50ms\n",
      "      initial_interval: 50ms\n      max_elapsed_time: 200ms\n",
    );
    const agent = await startAgent(parseConfig(yaml, "t.yaml", {}), createLogger("error"));
    try {
      await waitFor(() => agent.deliveries[0]?.state === "failed", 5000, "the exporter to give up");
      const res = await fetch(`http://${agent.addresses().health_check?.http}/`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { reasons: string[] }).reasons.join()).toMatch(
        /exporter file failed permanently: cannot create output directory/,
      );
    } finally {
      await agent.shutdown(500);
      tmp.cleanup();
    }
  });

  it("stays ready when a secondary exporter fails, listing it as degraded, unless it is required", async () => {
    for (const required of [false, true]) {
      const tmp = makeTempDir();
      const blocker = join(tmp.path, "blocker");
      writeFileSync(blocker, "x");
      const yaml = withHealth(
        testConfigYaml({ dir: tmp.path }),
        required ? "    required_exporters: [file, file/mirror]\n" : "",
      )
        .replace(
          "      max_interval: 200ms\n",
          `      max_interval: 200ms\n  file/mirror:\n    directory: ${join(blocker, "out")}\n    retry_on_failure:\n      initial_interval: 50ms\n      max_elapsed_time: 200ms\n`,
        )
        .replace("exporters: [file]", "exporters: [file, file/mirror]");
      const agent = await startAgent(parseConfig(yaml, "t.yaml", {}), createLogger("error"));
      try {
        const mirror = agent.deliveries.find((d) => d.exporterId === "file/mirror");
        await waitFor(() => mirror?.state === "failed", 5000, "the mirror to give up");
        const res = await fetch(`http://${agent.addresses().health_check?.http}/readyz`);
        const body = (await res.json()) as { reasons: string[]; degraded: string[] };
        if (required) {
          expect(res.status).toBe(503);
          expect(body.reasons.join()).toMatch(/exporter file\/mirror failed permanently/);
        } else {
          // The primary (the first exporter of the pipeline) is fine: ingest goes on.
          expect(res.status).toBe(200);
          expect(body.reasons).toEqual([]);
          expect(body.degraded.join()).toMatch(
            /exporter file\/mirror failed permanently: cannot create output directory.*not required for readiness/,
          );
          expect(await send(agent, 3, 0)).toBe(200);
        }
      } finally {
        await agent.shutdown(500);
        tmp.cleanup();
      }
    }
  });

  it("refuses required_exporters that are not in the pipeline", () => {
    const tmp = makeTempDir();
    try {
      const yaml = withHealth(testConfigYaml({ dir: tmp.path }), "    required_exporters: [s3]\n");
      expect(() => parseConfig(yaml, "t.yaml", {})).toThrow(
        /extensions\.health_check\.required_exporters\[0\].*"s3" is not an exporter of the logs pipeline \(exporters: file\)/,
      );
    } finally {
      tmp.cleanup();
    }
  });
});

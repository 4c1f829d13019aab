import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { parseConfig } from "../../agent/config/load.js";
import { otlpTypes } from "../../agent/otlp/protobuf-codec.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { makeTempDir, testConfigYaml, waitFor } from "../helpers/agent.js";
import { grpcExport } from "../helpers/otlp-grpc.js";

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
    expect(m.get('otelcol_receiver_accepted_log_records{receiver="otlp",transport="http"}')).toBe(
      50,
    );
    expect(m.get('otelcol_receiver_accepted_log_records{receiver="otlp",transport="grpc"}')).toBe(
      0,
    );
    expect(m.get("audit_agent_records_chained_total")).toBe(35);
    expect(m.get("audit_agent_records_filtered_total")).toBe(15);
    expect(m.get('otelcol_exporter_sent_log_records{exporter="file"}')).toBe(35);
    expect(m.get('otelcol_exporter_queue_size{exporter="file",data_type="logs"}')).toBe(0);
    expect(m.get('audit_agent_exporter_lag_records{exporter="file"}')).toBe(0);
    expect(m.get("audit_agent_chain_head_seq")).toBe(34);
    expect(m.get("audit_agent_checkpoint_tree_size")).toBe(35);
    expect(m.get("audit_agent_wal_fsync_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(m.get('audit_agent_exporter_up{exporter="file",state="running"}')).toBe(1);
    expect(m.get("otelcol_process_memory_rss")).toBeGreaterThan(0);
  });
});

/**
 * The Collector's documented internal metrics that the agent exports, as the Collector's
 * default Prometheus endpoint shows them, and as a reader with without_type_suffix: false and
 * without_units: false shows them. Written out here, not derived from the agent's code.
 * Source: open-telemetry/opentelemetry-collector (main, August 2026), the generated
 * receiver/receiverhelper/documentation.md, exporter/exporterhelper/documentation.md and
 * service/documentation.md (names, types, units); the labels are the attributes
 * receiverhelper's obsreport sets (receiver, transport) and exporterhelper's (exporter, and
 * data_type on the queue gauges).
 */
const COLLECTOR_METRICS = (
  [
    // name, type, labels, name with without_type_suffix and without_units false
    [
      "otelcol_receiver_accepted_log_records",
      "counter",
      ["receiver", "transport"],
      "otelcol_receiver_accepted_log_records_total",
    ],
    [
      "otelcol_receiver_refused_log_records",
      "counter",
      ["receiver", "transport"],
      "otelcol_receiver_refused_log_records_total",
    ],
    [
      "otelcol_exporter_sent_log_records",
      "counter",
      ["exporter"],
      "otelcol_exporter_sent_log_records_total",
    ],
    [
      "otelcol_exporter_send_failed_log_records",
      "counter",
      ["exporter"],
      "otelcol_exporter_send_failed_log_records_total",
    ],
    [
      "otelcol_exporter_queue_size",
      "gauge",
      ["exporter", "data_type"],
      "otelcol_exporter_queue_size",
    ],
    [
      "otelcol_exporter_queue_capacity",
      "gauge",
      ["exporter", "data_type"],
      "otelcol_exporter_queue_capacity",
    ],
    ["otelcol_process_uptime", "counter", [], "otelcol_process_uptime_seconds_total"],
    ["otelcol_process_cpu_seconds", "counter", [], "otelcol_process_cpu_seconds_total"],
    ["otelcol_process_memory_rss", "gauge", [], "otelcol_process_memory_rss_bytes"],
    [
      "otelcol_process_runtime_heap_alloc_bytes",
      "gauge",
      [],
      "otelcol_process_runtime_heap_alloc_bytes",
    ],
    [
      "otelcol_process_runtime_total_sys_memory_bytes",
      "gauge",
      [],
      "otelcol_process_runtime_total_sys_memory_bytes",
    ],
  ] as const
).map(([name, type, labels, suffixed]) => ({ name, type, labels, suffixed }));

/** Labels the agent adds to a Collector metric (documented in docs/configuration.md). */
const AGENT_EXTRA_LABELS: Record<string, readonly string[]> = {
  otelcol_receiver_refused_log_records: ["reason"],
};

interface Family {
  type: string;
  samples: Array<{ labels: Record<string, string>; value: number }>;
}

/** Prometheus text by family: its TYPE and its samples' labels and values. */
function families(text: string): Map<string, Family> {
  const out = new Map<string, Family>();
  let current: Family | null = null;
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      current = { type: type[2] as string, samples: [] };
      out.set(type[1] as string, current);
      continue;
    }
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || !current) throw new Error(`not Prometheus text: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] as string] = l[2] as string;
    current.samples.push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** One OTLP/gRPC Export of `audit` audit records whose bodies are `pad` characters long. */
async function sendGrpc(agent: RunningAgent, audit: number, pad = 10): Promise<void> {
  const client = new grpc.Client(
    agent.addresses().otlp?.grpc ?? "",
    grpc.credentials.createInsecure(),
  );
  try {
    const logRecords = Array.from({ length: audit }, () => ({
      eventName: "audit.x",
      body: { stringValue: "g".repeat(pad) },
    }));
    const { RequestType } = otlpTypes;
    const payload = Buffer.from(
      RequestType.encode(
        RequestType.fromObject({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] }),
      ).finish(),
    );
    const { err } = await grpcExport(client, payload);
    expect(err).toBeNull();
  } finally {
    client.close();
  }
}

async function scrape(agent: RunningAgent): Promise<Map<string, Family>> {
  return families(await (await fetch(`http://${agent.addresses().metrics?.http}/metrics`)).text());
}

const SUFFIXED_READER = `    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: 0
                without_type_suffix: false
                without_units: false
`;

describe("metrics as the Collector names and labels them", () => {
  const tmp = makeTempDir();
  let agent: RunningAgent;
  beforeAll(async () => {
    agent = await startAgent(
      parseConfig(testConfigYaml({ dir: tmp.path, maxRecordKib: 1 }), "t.yaml", {}),
      createLogger("error"),
    );
  });
  afterAll(async () => {
    await agent?.shutdown(5000);
    tmp.cleanup();
  });

  it("counts each receiver transport apart: a gRPC and an HTTP request", async () => {
    await sendGrpc(agent, 2);
    await sendGrpc(agent, 1, 2000); // refused on its own: larger than max_record_size_kib
    expect(await send(agent, 3, 1)).toBe(200);
    const f = await scrape(agent);
    const accepted = f.get("otelcol_receiver_accepted_log_records")?.samples;
    expect(accepted).toEqual(
      expect.arrayContaining([
        { labels: { receiver: "otlp", transport: "grpc" }, value: 2 },
        { labels: { receiver: "otlp", transport: "http" }, value: 4 },
      ]),
    );
    expect(accepted).toHaveLength(2);
    expect(f.get("otelcol_receiver_refused_log_records")?.samples).toEqual([
      { labels: { receiver: "otlp", transport: "grpc", reason: "too_large" }, value: 1 },
    ]);
  });

  it("exports the Collector's metrics under its names, types and labels", async () => {
    await waitFor(() => agent.deliveries[0]?.deliveredThrough === 4, 5000, "export");
    const f = await scrape(agent);
    for (const c of COLLECTOR_METRICS) {
      const family = f.get(c.name);
      expect(family?.type, c.name).toBe(c.type);
      if (c.name !== "otelcol_exporter_send_failed_log_records")
        expect(family?.samples.length, `${c.name} has samples`).toBeGreaterThan(0);
      const allowed = new Set([...c.labels, ...(AGENT_EXTRA_LABELS[c.name] ?? [])]);
      for (const { labels } of family?.samples ?? []) {
        for (const l of c.labels) expect(Object.keys(labels), c.name).toContain(l);
        for (const l of Object.keys(labels)) expect(allowed, `${c.name} label ${l}`).toContain(l);
      }
      expect(f.has(c.suffixed) && c.suffixed !== c.name, `no ${c.suffixed}`).toBe(false);
    }
    // Go's running total of allocations has no Node counterpart: not exported rather than faked.
    expect(f.has("otelcol_process_runtime_total_alloc_bytes")).toBe(false);
    // Replaced by their Collector counterparts.
    for (const gone of ["process_cpu_seconds_total", "process_resident_memory_bytes"])
      expect(f.has(gone), gone).toBe(false);
    const uptime = f.get("otelcol_process_uptime")?.samples[0]?.value ?? 0;
    expect(uptime).toBeGreaterThan(0);
    expect(uptime).toBeLessThan(process.uptime() + 1);
  });

  it("adds _total and units with a reader's without_type_suffix and without_units false", async () => {
    const dir = makeTempDir();
    const yaml = testConfigYaml({ dir: dir.path }).replace(
      "    metrics:\n      address: 127.0.0.1:0\n",
      SUFFIXED_READER,
    );
    expect(yaml).toContain("without_type_suffix: false");
    const suffixed = await startAgent(parseConfig(yaml, "t.yaml", {}), createLogger("error"));
    try {
      await sendGrpc(suffixed, 1);
      const f = await scrape(suffixed);
      for (const c of COLLECTOR_METRICS) {
        expect(f.get(c.suffixed)?.type, c.suffixed).toBe(c.type);
        if (c.suffixed !== c.name) expect(f.has(c.name), c.name).toBe(false);
      }
      expect(f.get("otelcol_receiver_accepted_log_records_total")?.samples).toContainEqual({
        labels: { receiver: "otlp", transport: "grpc" },
        value: 1,
      });
      // The agent's own metrics keep their names in either mode.
      expect(f.has("audit_agent_records_chained_total")).toBe(true);
      expect(f.has("nodejs_eventloop_lag_seconds")).toBe(true);
    } finally {
      await suffixed.shutdown(5000);
      dir.cleanup();
    }
  });
});

describe("service.telemetry.metrics", () => {
  const tmp = makeTempDir();
  afterAll(() => tmp.cleanup());
  const withMetrics = (metrics: string) =>
    testConfigYaml({ dir: tmp.path }).replace(
      "    metrics:\n      address: 127.0.0.1:0\n",
      metrics,
    );

  it("names as the Collector's default endpoint unless a reader turns the switches off", () => {
    const at = (yaml: string) => {
      const c = parseConfig(yaml, "t.yaml", {});
      return { address: c.metricsAddress, naming: c.metricsNaming };
    };
    const bare = { withoutTypeSuffix: true, withoutUnits: true };
    expect(at(testConfigYaml({ dir: tmp.path }))).toEqual({ address: "127.0.0.1:0", naming: bare });
    expect(at(withMetrics(""))).toEqual({ address: "127.0.0.1:8888", naming: bare });
    // A reader without the switches names as the default endpoint does (the Collector since v0.152).
    expect(
      at(
        withMetrics(
          SUFFIXED_READER.replace(/ +without_\w+: false\n/g, "").replace(
            "host: 127.0.0.1",
            "host: ::1",
          ),
        ),
      ),
    ).toEqual({ address: "[::1]:0", naming: bare });
    expect(at(withMetrics(SUFFIXED_READER))).toEqual({
      address: "127.0.0.1:0",
      naming: { withoutTypeSuffix: false, withoutUnits: false },
    });
    expect(
      at(withMetrics(SUFFIXED_READER.replace("without_units: false", "without_units: true")))
        .naming,
    ).toEqual({ withoutTypeSuffix: false, withoutUnits: true });
  });

  it.each([
    [
      "a malformed switch",
      SUFFIXED_READER.replace("without_type_suffix: false", 'without_type_suffix: "no"'),
      /service\.telemetry\.metrics\.readers\[0\]\.pull\.exporter\.prometheus\.without_type_suffix.*boolean/,
    ],
    [
      "an unknown key",
      SUFFIXED_READER.replace("without_units: false", "without_unit: false"),
      /without_unit/,
    ],
    [
      "address and readers",
      `${SUFFIXED_READER}      address: 127.0.0.1:0\n`,
      /either address or readers, not both/,
    ],
    [
      "two readers",
      SUFFIXED_READER + SUFFIXED_READER.split("\n").slice(2).join("\n"),
      /exactly one pull reader/,
    ],
    [
      "scope info asked for",
      SUFFIXED_READER.replace(
        "without_units: false",
        "without_units: false\n                without_scope_info: false",
      ),
      /exports no scope information/,
    ],
    [
      "a bad host",
      SUFFIXED_READER.replace("host: 127.0.0.1", "host: a b"),
      /host "a b" must be a host name or IP address/,
    ],
  ])("refuses %s with a coded error", (_what, metrics, message) => {
    let err: unknown;
    try {
      parseConfig(withMetrics(metrics), "t.yaml", {});
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "CONFIG_INVALID" });
    expect((err as Error).message).toMatch(message);
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

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contextSuffix, recordJson } from "../../agent/otlp/canonical-record.js";
import { ConfigError, parseConfig } from "../../agent/config/load.js";
import type { ExportLogsServiceRequest } from "../../agent/otlp/model.js";
import { decodeLogsRequest, encodeLogsResponse } from "../../agent/otlp/protobuf-codec.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { makeTempDir, readOutput, testConfigYaml, waitFor } from "../helpers/agent.js";

/**
 * The agent in front of an existing Collector: non-audit records are passed upstream
 * unchanged (OTLP/HTTP and OTLP/gRPC), audit records too when asked, with retries through
 * an upstream outage; a full pass-through queue drops-and-counts or refuses, as configured.
 */

/** Canonical text of every record in a request: equal texts mean unchanged records. */
function texts(req: ExportLogsServiceRequest): string[] {
  const out: string[] = [];
  for (const rl of req.resourceLogs)
    for (const sl of rl.scopeLogs) {
      const suffix = contextSuffix(rl.resource, rl.schemaUrl, sl.scope, sl.schemaUrl);
      for (const lr of sl.logRecords) out.push(recordJson(lr, suffix));
    }
  return out;
}

class UpstreamHttp {
  received: string[] = [];
  failNext = 0;
  server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (this.failNext > 0) {
        this.failNext--;
        res.writeHead(503, { "Retry-After": "0" }).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      this.received.push(...texts(decodeLogsRequest(body)));
      res
        .writeHead(200, { "Content-Type": "application/x-protobuf" })
        .end(encodeLogsResponse(null));
    });
  });
  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
}

class UpstreamGrpc {
  received: string[] = [];
  server = new grpc.Server();
  async start(): Promise<string> {
    this.server.addService(
      {
        Export: {
          path: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Uint8Array) => Buffer.from(b),
          responseDeserialize: (b: Buffer) => b,
        },
      },
      {
        Export: (
          call: grpc.ServerUnaryCall<Buffer, Uint8Array>,
          cb: grpc.sendUnaryData<Uint8Array>,
        ) => {
          this.received.push(...texts(decodeLogsRequest(call.request)));
          cb(null, encodeLogsResponse(null));
        },
      },
    );
    const port = await new Promise<number>((res, rej) =>
      this.server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? rej(e) : res(p),
      ),
    );
    return `127.0.0.1:${port}`;
  }
}

function withExporters(dir: string, extra: string, pipelineExporters: string): string {
  return testConfigYaml({ dir })
    .replace("exporters:\n  file:\n", `exporters:\n${extra}  file:\n`)
    .replace("exporters: [file]", `exporters: [${pipelineExporters}]`);
}

function request(ids: string[]): string {
  const logRecords = ids.map((id) => ({
    body: { stringValue: `body of ${id}` },
    attributes: [
      { key: "id", value: { stringValue: id } },
      ...(id.startsWith("a") ? [{ key: "audit", value: { boolValue: true } }] : []),
    ],
  }));
  return JSON.stringify({
    resourceLogs: [
      {
        resource: { attributes: [{ key: "service.name", value: { stringValue: "svc" } }] },
        scopeLogs: [{ scope: { name: "s" }, logRecords }],
      },
    ],
  });
}

async function post(agent: RunningAgent, body: string): Promise<Response> {
  return fetch(`http://${agent.addresses().otlp?.http}/v1/logs`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body,
  });
}

describe("OTLP pass-through exporters", () => {
  const tmp = makeTempDir();
  const http = new UpstreamHttp();
  const grpcUp = new UpstreamGrpc();
  let agent: RunningAgent;

  beforeAll(async () => {
    const httpUrl = await http.start();
    const grpcAddr = await grpcUp.start();
    const extra = `  otlp_http/collector:
    endpoint: ${httpUrl}
    audit: true
    retry_on_failure:
      initial_interval: 20ms
  otlp_grpc/other:
    endpoint: ${grpcAddr}
    tls:
      insecure: true
`;
    agent = await startAgent(
      parseConfig(
        withExporters(tmp.path, extra, "file, otlp_http/collector, otlp_grpc/other"),
        "t.yaml",
        {},
      ),
      createLogger("error"),
    );
  });

  afterAll(async () => {
    await agent?.shutdown(5000);
    http.server.close();
    grpcUp.server.forceShutdown();
    tmp.cleanup();
  });

  it("passes non-audit records upstream unchanged over HTTP and gRPC, and audit ones where asked", async () => {
    http.failNext = 3; // an upstream outage: retried, not lost
    expect((await post(agent, request(["a1", "n1", "a2", "n2", "n3"]))).status).toBe(200);
    await waitFor(
      () => http.received.length === 5 && grpcUp.received.length === 3,
      10_000,
      "pass-through",
    );
    const sent = texts(
      (await import("../../agent/otlp/json-codec.js")).decodeLogsRequestJson(
        Buffer.from(request(["a1", "n1", "a2", "n2", "n3"])),
      ),
    );
    const [a1, n1, a2, n2, n3] = sent;
    expect(grpcUp.received).toEqual([n1, n2, n3]);
    expect([...http.received].sort()).toEqual([a1, n1, a2, n2, n3].sort());
    await waitFor(
      () => agent.deliveries.find((d) => d.exporterId === "file")?.deliveredThrough === 1,
      5000,
      "file export",
    );
    const { records } = await readOutput(join(tmp.path, "out"));
    expect(records.map((r) => JSON.stringify(r.record))).toEqual([a1, a2]);
    expect(agent.counters.exporterSent.get("otlp_grpc/other")).toBe(3);
  });
});

describe("a full pass-through queue", () => {
  it("drops and counts non-audit records by default, never the audit ones", async () => {
    const tmp = makeTempDir();
    const hang = createServer(() => undefined); // accepts, never answers
    await new Promise<void>((r) => hang.listen(0, "127.0.0.1", r));
    const extra = `  otlp_http/slow:
    endpoint: http://127.0.0.1:${(hang.address() as AddressInfo).port}
    timeout: 30s
    sending_queue:
      queue_size: 1
`;
    const agent = await startAgent(
      parseConfig(withExporters(tmp.path, extra, "file, otlp_http/slow"), "t.yaml", {}),
      createLogger("error"),
    );
    try {
      for (let i = 0; i < 4; i++)
        expect((await post(agent, request([`a${i}`, `n${i}`]))).status).toBe(200);
      expect(
        agent.counters.receiverRefused.get("passthrough_dropped:otlp_http/slow"),
      ).toBeGreaterThanOrEqual(2);
      expect(agent.wal.headSeq).toBe(3);
    } finally {
      await agent.shutdown(200);
      hang.closeAllConnections();
      hang.close();
      tmp.cleanup();
    }
  });

  it("refuses the client's request with 503 when configured to, storing nothing", async () => {
    const tmp = makeTempDir();
    const hang = createServer(() => undefined);
    await new Promise<void>((r) => hang.listen(0, "127.0.0.1", r));
    const extra = `  otlp_http/slow:
    endpoint: http://127.0.0.1:${(hang.address() as AddressInfo).port}
    sending_queue:
      queue_size: 1
      on_full: refuse
`;
    const agent = await startAgent(
      parseConfig(withExporters(tmp.path, extra, "file, otlp_http/slow"), "t.yaml", {}),
      createLogger("error"),
    );
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++)
        statuses.push((await post(agent, request([`a${i}`, `n${i}`]))).status);
      // The first request's pass-through part is in flight (and counts towards queue_size 1).
      expect(statuses).toEqual([200, 503, 503, 503]);
      expect(agent.wal.headSeq).toBe(0);
      expect(agent.counters.receiverRefused.get("passthrough_queue_full")).toBe(6);
    } finally {
      await agent.shutdown(200);
      hang.closeAllConnections();
      hang.close();
      tmp.cleanup();
    }
  });

  it("is not a place to store audit records: a pipeline with only pass-through is refused", () => {
    const yaml = withExporters(
      "/tmp/x",
      "  otlp_http/only:\n    endpoint: http://127.0.0.1:1\n",
      "otlp_http/only",
    );
    expect(() => parseConfig(yaml, "t.yaml", {})).toThrow(ConfigError);
    expect(() => parseConfig(yaml, "t.yaml", {})).toThrow(/no exporter stores audit records/);
  });
});

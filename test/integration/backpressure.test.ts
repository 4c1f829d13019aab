import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { OTLPLogExporter as HttpJsonExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { otlpTypes, RETRY_INFO_TYPE_URL } from "../../agent/otlp/protobuf-codec.js";
import {
  attr,
  type InProcessAgent,
  makeTempDir,
  readOutput,
  startInProcessAgent,
  waitFor,
} from "../helpers/agent.js";

/**
 * With a tiny WAL and an exporter that cannot make progress, receivers must push back
 * with retryable statuses (never drop), and once the exporter recovers, an SDK's
 * retries must succeed. The exporter is blocked by a real obstacle: its output
 * directory's parent is a regular file, so creating the directory fails until removed.
 */

function auditRequest(id: string, records: number, padding: number) {
  return {
    resourceLogs: [
      {
        resource: { attributes: [{ key: "service.name", value: { stringValue: "bp" } }] },
        scopeLogs: [
          {
            logRecords: Array.from({ length: records }, (_, i) => ({
              // Incompressible, so the WAL (which stores chunks compressed) fills predictably.
              body: { stringValue: randomBytes(padding).toString("base64").slice(0, padding) },
              attributes: [
                { key: "audit", value: { boolValue: true } },
                { key: "req.id", value: { stringValue: id } },
                { key: "rec.idx", value: { intValue: i } },
              ],
            })),
          },
        ],
      },
    ],
  };
}

function grpcExport(client: grpc.Client, payload: Buffer): Promise<grpc.ServiceError | null> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
      (b: Buffer) => b,
      (b: Buffer) => b,
      payload,
      (err) => resolve(err),
    );
  });
}

describe("backpressure when the WAL is full", () => {
  const tmp = makeTempDir();
  const blocker = join(tmp.path, "blocker");
  let agent: InProcessAgent;
  let client: grpc.Client;
  const acked: string[] = [];

  beforeAll(async () => {
    writeFileSync(blocker, "a regular file where the exporter needs a directory");
    agent = await startInProcessAgent({
      dir: tmp.path,
      walMaxMib: 0.05,
      fileDirectory: join(blocker, "out"),
      retryAfterSeconds: 1,
    });
    client = new grpc.Client(agent.grpcAddress, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await agent?.stop();
    tmp.cleanup();
  });

  it("answers HTTP 429 with Retry-After once full, and stores nothing from refused requests", async () => {
    let refused: Response | null = null;
    for (let i = 0; i < 50 && !refused; i++) {
      const res = await fetch(agent.httpUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(auditRequest(`fill-${i}`, 4, 1000)),
      });
      if (res.status === 200) acked.push(`fill-${i}`);
      else refused = res;
    }
    expect(acked.length).toBeGreaterThan(0);
    expect(refused?.status).toBe(429);
    expect(refused?.headers.get("retry-after")).toBe("1");
    const body = (await refused?.json()) as { code: number; message: string };
    expect(body.code).toBe(8);
    expect(body.message).toMatch(/write-ahead log is full/);
    expect(agent.agent.wal.headSeq).toBe(acked.length * 4 - 1);
    expect(agent.agent.counters.receiverRefused.get("buffer_full")).toBe(4);
    // Fill what is left, so that even a one-record request cannot fit.
    for (let i = 0; i < 200; i++) {
      const res = await fetch(agent.httpUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(auditRequest(`top-${i}`, 1, 10)),
      });
      if (res.status !== 200) break;
      acked.push(`top-${i}`);
    }
  });

  it("answers gRPC RESOURCE_EXHAUSTED with RetryInfo while full", async () => {
    const { RequestType, StatusType, RetryInfoType } = otlpTypes;
    const payload = Buffer.from(
      RequestType.encode(RequestType.fromObject(auditRequest("grpc-full", 4, 1000))).finish(),
    );
    const err = await grpcExport(client, payload);
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/write-ahead log is full/);
    const detailsBin = err?.metadata.get("grpc-status-details-bin")[0] as Buffer;
    const status = StatusType.decode(detailsBin) as unknown as {
      code: number;
      details: Array<{ typeUrl: string; value: Uint8Array }>;
    };
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.details[0]?.typeUrl).toBe(RETRY_INFO_TYPE_URL);
    const retry = RetryInfoType.decode(status.details[0]?.value as Uint8Array) as unknown as {
      retryDelay: { seconds: { toString(): string } };
    };
    expect(retry.retryDelay.seconds.toString()).toBe("1");
  });

  it("lets the SDK's retries succeed once the exporter recovers, losing nothing", async () => {
    const provider = new LoggerProvider({
      resource: resourceFromAttributes({ "service.name": "bp-sdk" }),
      processors: [
        new SimpleLogRecordProcessor({
          exporter: new HttpJsonExporter({ url: agent.httpUrl, timeoutMillis: 15_000 }),
        }),
      ],
    });
    const logger = provider.getLogger("bp");
    const headBefore = agent.agent.wal.headSeq;
    logger.emit({ body: "sent while full", attributes: { audit: true, "req.id": "sdk-retry" } });
    // The first attempt is refused (429); remove the obstacle so the exporter drains.
    await waitFor(
      () => (agent.agent.counters.requests.get("http:429") ?? 0) >= 2,
      5000,
      "the SDK's refused attempt",
    );
    expect(agent.agent.wal.headSeq).toBe(headBefore);
    rmSync(blocker);
    mkdirSync(blocker);
    await provider.forceFlush();
    await provider.shutdown();
    await waitFor(
      () => agent.agent.deliveries[0]?.deliveredThrough === agent.agent.wal.headSeq,
      10_000,
      "drain",
    );
    const { records, findings } = await readOutput(join(blocker, "out"));
    expect(findings).toEqual([]);
    const ids = records.map((r) => attr(r.record, "req.id")?.stringValue);
    expect(ids.filter((id) => id === "sdk-retry")).toHaveLength(1);
    const perRequest = (id: string) => (id.startsWith("fill-") ? 4 : 1);
    for (const id of acked) expect(ids.filter((x) => x === id)).toHaveLength(perRequest(id));
    expect(records).toHaveLength(acked.reduce((n, id) => n + perRequest(id), 0) + 1);
  });

  it("accepts gRPC again after recovery", async () => {
    const { RequestType } = otlpTypes;
    const payload = Buffer.from(
      RequestType.encode(RequestType.fromObject(auditRequest("grpc-after", 2, 10))).finish(),
    );
    expect(await grpcExport(client, payload)).toBeNull();
  });
});

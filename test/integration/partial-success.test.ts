import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { otlpTypes } from "../../agent/otlp/protobuf-codec.js";
import {
  attr,
  type InProcessAgent,
  makeTempDir,
  readOutput,
  startInProcessAgent,
  waitFor,
} from "../helpers/agent.js";

/**
 * An audit record larger than wal.max_record_size_kib is refused on its own: the client gets
 * an OTLP partial success naming the count and the reason, and the request's other records
 * are stored. Same behaviour over HTTP/JSON, HTTP/protobuf and gRPC.
 */

function request(id: string) {
  const rec = (i: number, size: number) => ({
    body: { stringValue: "y".repeat(size) },
    attributes: [
      { key: "audit", value: { boolValue: true } },
      { key: "req.id", value: { stringValue: id } },
      { key: "rec.idx", value: { intValue: i } },
    ],
  });
  return {
    resourceLogs: [{ scopeLogs: [{ logRecords: [rec(0, 10), rec(1, 3000), rec(2, 10)] }] }],
  };
}

describe("partial success for oversized audit records", () => {
  const tmp = makeTempDir();
  let agent: InProcessAgent;
  const { RequestType, ResponseType } = otlpTypes;

  beforeAll(async () => {
    agent = await startInProcessAgent({ dir: tmp.path, maxRecordKib: 2 });
  });
  afterAll(async () => {
    await agent?.stop();
    tmp.cleanup();
  });

  it("over HTTP/JSON", async () => {
    const res = await fetch(agent.httpUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request("json")),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      partialSuccess: { rejectedLogRecords: string; errorMessage: string };
    };
    expect(body.partialSuccess.rejectedLogRecords).toBe("1");
    expect(body.partialSuccess.errorMessage).toMatch(
      /exceeds the limit of 2048 bytes \(wal.max_record_size_kib\)/,
    );
  });

  it("over HTTP/protobuf", async () => {
    const res = await fetch(agent.httpUrl, {
      method: "POST",
      headers: { "Content-Type": "application/x-protobuf" },
      body: RequestType.encode(RequestType.fromObject(request("proto"))).finish(),
    });
    expect(res.status).toBe(200);
    const decoded = ResponseType.decode(new Uint8Array(await res.arrayBuffer())) as unknown as {
      partialSuccess: { rejectedLogRecords: { toString(): string }; errorMessage: string };
    };
    expect(decoded.partialSuccess.rejectedLogRecords.toString()).toBe("1");
    expect(decoded.partialSuccess.errorMessage).toMatch(/exceeds the limit/);
  });

  it("over gRPC", async () => {
    const client = new grpc.Client(agent.grpcAddress, grpc.credentials.createInsecure());
    const payload = Buffer.from(
      RequestType.encode(RequestType.fromObject(request("grpc"))).finish(),
    );
    const response = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        (b: Buffer) => b,
        (b: Buffer) => b,
        payload,
        (err, value) => (err ? reject(err) : resolve(value as Buffer)),
      ),
    );
    client.close();
    const decoded = ResponseType.decode(response) as unknown as {
      partialSuccess: { rejectedLogRecords: { toString(): string } };
    };
    expect(decoded.partialSuccess.rejectedLogRecords.toString()).toBe("1");
  });

  it("stored the other records of each request and counted the refusals", async () => {
    await waitFor(() => agent.agent.deliveries[0]?.deliveredThrough === 5, 5000, "export");
    const { records, findings } = await readOutput(agent.outDir);
    expect(findings).toEqual([]);
    expect(
      records.map(
        (r) => `${attr(r.record, "req.id")?.stringValue}:${attr(r.record, "rec.idx")?.intValue}`,
      ),
    ).toEqual(["json:0", "json:2", "proto:0", "proto:2", "grpc:0", "grpc:2"]);
    expect(agent.agent.counters.receiverRefused.get("too_large")).toBe(3);
  });
});

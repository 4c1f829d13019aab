import { connect } from "node:net";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { otlpTypes } from "../../agent/otlp/protobuf-codec.js";
import {
  attr,
  type InProcessAgent,
  makeTempDir,
  readOutput,
  inProcessAgentPerSuite,
  startInProcessAgent,
  waitFor,
} from "../helpers/agent.js";
import { grpcExport } from "../helpers/otlp-grpc.js";

/**
 * Bad input gets a clear error and changes nothing: every malformed, oversized or
 * misaddressed request is refused with a specific status and a message that says what is
 * wrong, nothing from it reaches the WAL or the exporter, and the agent keeps serving.
 */

const MAX_BODY = 64 * 1024;
const { RequestType, ResponseType, StatusType } = otlpTypes;

/** An OTLP request (proto3 JSON shape) holding one audit record tagged with `marker`. */
function auditRequest(marker: string, bodyText = "payload") {
  return {
    resourceLogs: [
      {
        resource: { attributes: [{ key: "service.name", value: { stringValue: "bad-input" } }] },
        scopeLogs: [
          {
            scope: { name: "bad-input-test" },
            logRecords: [
              {
                timeUnixNano: "1700000000000000000",
                eventName: "audit.bad_input",
                body: { stringValue: bodyText },
                attributes: [
                  { key: "audit", value: { boolValue: true } },
                  { key: "case", value: { stringValue: marker } },
                ],
              },
            ],
          },
        ],
      },
    ],
  };
}

function protobufRequest(marker: string, bodyText?: string): Buffer {
  const bytes = RequestType.encode(RequestType.fromObject(auditRequest(marker, bodyText))).finish();
  return Buffer.from(bytes);
}

function jsonRequest(marker: string, bodyText?: string): string {
  return JSON.stringify(auditRequest(marker, bodyText));
}

/** The single log record of auditRequest(), for building malformed JSON variants. */
function jsonWithRecord(marker: string, change: (record: Record<string, unknown>) => void) {
  const req = auditRequest(marker);
  const record = req.resourceLogs[0]?.scopeLogs[0]?.logRecords[0] as unknown as Record<
    string,
    unknown
  >;
  change(record);
  return JSON.stringify(req);
}

const RECORD_PATH = "resourceLogs[0].scopeLogs[0].logRecords[0]";

/** A protobuf request whose body string holds bytes that are not UTF-8. */
function protobufWithInvalidUtf8(marker: string): Buffer {
  const bytes = protobufRequest(marker, "@@@@");
  const at = bytes.indexOf("@@@@");
  bytes.set([0xff, 0xfe, 0xc3, 0x28], at);
  return bytes;
}

/** A protobuf request whose record has a 5-byte trace id. */
function protobufWithShortTraceId(marker: string): Buffer {
  const req = auditRequest(marker);
  (req.resourceLogs[0]?.scopeLogs[0]?.logRecords[0] as unknown as Record<string, unknown>).traceId =
    Buffer.alloc(5, 7);
  return Buffer.from(RequestType.encode(RequestType.fromObject(req)).finish());
}

/** Bytes protobufjs cannot decode: a varint longer than 10 bytes. */
const GARBAGE = Buffer.alloc(32, 0xff);

function truncated(bytes: Buffer): Buffer {
  return bytes.subarray(0, bytes.length - 5);
}

const PROTOBUF = { "content-type": "application/x-protobuf" };
const JSON_CT = { "content-type": "application/json" };

interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: Buffer;
}

async function send(
  url: string,
  options: {
    method?: "POST" | "GET" | "PUT";
    headers?: Record<string, string>;
    body?: string | Buffer | Readable;
  } = {},
): Promise<HttpReply> {
  const res = await request(url, {
    method: options.method ?? "POST",
    headers: options.headers ?? {},
    body: options.body ?? null,
  });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, bytes };
}

/** A JSON google.rpc.Status error body. */
function jsonStatus(reply: HttpReply): { code: number; message: string } {
  expect(reply.headers["content-type"]).toBe("application/json");
  const parsed = JSON.parse(reply.bytes.toString("utf8")) as { code: unknown; message: unknown };
  expect(typeof parsed.code).toBe("number");
  expect(typeof parsed.message).toBe("string");
  return parsed as { code: number; message: string };
}

/** A protobuf google.rpc.Status error body. */
function protoStatus(reply: HttpReply): { code: number; message: string } {
  expect(reply.headers["content-type"]).toBe("application/x-protobuf");
  const status = StatusType.toObject(StatusType.decode(reply.bytes), { defaults: true }) as {
    code: number;
    message: string;
  };
  return status;
}

/**
 * Sends a request head that declares `contentLength` body bytes but sends none, and reads
 * the raw response: the refusal must come from the declared length alone.
 */
function declareOversizedBody(
  httpUrl: string,
  contentLength: number,
): Promise<{ statusLine: string; raw: string }> {
  const url = new URL(httpUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("no response to a request declaring an oversized body"));
    }, 15_000);
    socket.on("connect", () => {
      socket.write(
        `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${contentLength}\r\n\r\n`,
      );
    });
    socket.on("data", (c: Buffer) => chunks.push(c));
    // The refusal closes the connection: the whole response has arrived at the server's FIN.
    socket.on("end", () => {
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks).toString("utf8");
      resolve({ statusLine: raw.slice(0, raw.indexOf("\r\n")), raw });
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Waits until the file exporter has delivered everything the WAL holds. */
async function waitForDelivery(a: InProcessAgent): Promise<void> {
  const delivery = a.agent.deliveries[0];
  if (!delivery) throw new Error("no exporter delivery loop");
  await waitFor(
    () => delivery.deliveredThrough === a.agent.wal.headSeq,
    20_000,
    "the file exporter to deliver every stored record",
  );
}

async function storedCases(a: InProcessAgent): Promise<string[]> {
  const out = await readOutput(a.outDir);
  expect(out.findings).toEqual([]);
  return out.records.map((r) => String(attr(r.record, "case")?.stringValue));
}

describe("OTLP/HTTP: bad input gets a clear error and changes nothing", () => {
  const s = inProcessAgentPerSuite({ grpc: false, maxBodyBytes: MAX_BODY });

  it("starts empty", () => {
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("truncated protobuf → 400 with a protobuf google.rpc.Status naming protobuf", async () => {
    const reply = await send(s.url, {
      headers: PROTOBUF,
      body: truncated(protobufRequest("http-truncated")),
    });
    expect(reply.status).toBe(400);
    const status = protoStatus(reply);
    expect(status.code).toBe(3);
    expect(status.message).toMatch(/not a valid protobuf ExportLogsServiceRequest/);
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("garbage protobuf bytes → 400 with a protobuf google.rpc.Status", async () => {
    const reply = await send(s.url, { headers: PROTOBUF, body: GARBAGE });
    expect(reply.status).toBe(400);
    const status = protoStatus(reply);
    expect(status.code).toBe(3);
    expect(status.message).toMatch(/not a valid protobuf ExportLogsServiceRequest/);
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("invalid UTF-8 in a protobuf string → 400, not a silently replaced character", async () => {
    const reply = await send(s.url, {
      headers: PROTOBUF,
      body: protobufWithInvalidUtf8("http-utf8"),
    });
    expect(reply.status).toBe(400);
    expect(protoStatus(reply).message).toMatch(/invalid UTF-8 in a string field/);
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("a protobuf trace id that is not 16 bytes → 400 naming the record", async () => {
    const reply = await send(s.url, {
      headers: PROTOBUF,
      body: protobufWithShortTraceId("http-trace5"),
    });
    expect(reply.status).toBe(400);
    expect(protoStatus(reply).message).toMatch(
      /logRecords\[0\]: trace_id must be 16 bytes and span_id 8 bytes \(got 5 and 0\)/,
    );
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("a 64-bit integer beyond 2^53 sent as a JSON number → 400 asking for a string", async () => {
    const body = jsonWithRecord("http-bigint", () => undefined).replace(
      '"body"',
      '"timeUnixNano":1767268800123456789,"body"',
    );
    const reply = await send(s.url, { headers: JSON_CT, body });
    expect(reply.status).toBe(400);
    expect(jsonStatus(reply).message).toMatch(
      /timeUnixNano: expected a decimal string for an integer this large/,
    );
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("base64 of an invalid length → 400 rather than silently dropped bits", async () => {
    const body = jsonWithRecord("http-b64", (r) => {
      r.body = { bytesValue: "QUJDR" };
    });
    const reply = await send(s.url, { headers: JSON_CT, body });
    expect(reply.status).toBe(400);
    expect(jsonStatus(reply).message).toMatch(/body.bytesValue: expected base64 of a valid length/);
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("invalid JSON → 400 with a JSON google.rpc.Status", async () => {
    const valid = jsonRequest("http-invalid-json");
    const reply = await send(s.url, { headers: JSON_CT, body: valid.slice(0, valid.length - 3) });
    expect(reply.status).toBe(400);
    const status = jsonStatus(reply);
    expect(status.code).toBe(3);
    expect(status.message).toMatch(/not valid JSON/);
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it.each([
    {
      what: "timeUnixNano: true",
      change: (r: Record<string, unknown>) => {
        r.timeUnixNano = true;
      },
      path: `${RECORD_PATH}.timeUnixNano`,
      expected: "expected an integer",
    },
    {
      what: "attributes not an array",
      change: (r: Record<string, unknown>) => {
        r.attributes = { audit: true };
      },
      path: `${RECORD_PATH}.attributes`,
      expected: "expected an array",
    },
    {
      what: "traceId not hex",
      change: (r: Record<string, unknown>) => {
        r.traceId = "zz".repeat(16);
      },
      path: `${RECORD_PATH}.traceId`,
      expected: "expected 32 hex digits",
    },
    {
      what: "traceId of the wrong length",
      change: (r: Record<string, unknown>) => {
        r.traceId = "0af7651916cd43dd";
      },
      path: `${RECORD_PATH}.traceId`,
      expected: "expected 32 hex digits",
    },
    {
      what: "spanId of the wrong length",
      change: (r: Record<string, unknown>) => {
        r.spanId = "0af7651916cd43dd8448eb211c80319c";
      },
      path: `${RECORD_PATH}.spanId`,
      expected: "expected 16 hex digits",
    },
    {
      what: "an AnyValue with two value fields",
      change: (r: Record<string, unknown>) => {
        r.body = { stringValue: "x", intValue: "1" };
      },
      path: `${RECORD_PATH}.body`,
      expected: "expected at most one of the AnyValue fields",
    },
    {
      what: "an attribute value of the wrong type",
      change: (r: Record<string, unknown>) => {
        r.attributes = [{ key: "audit", value: { boolValue: "yes" } }];
      },
      path: `${RECORD_PATH}.attributes[0].value.boolValue`,
      expected: "expected true or false",
    },
  ])("JSON with $what → 400 naming the field path", async ({ change, path, expected }) => {
    const reply = await send(s.url, {
      headers: JSON_CT,
      body: jsonWithRecord("http-bad-json-type", change),
    });
    expect(reply.status).toBe(400);
    const status = jsonStatus(reply);
    expect(status.code).toBe(3);
    expect(status.message).toContain("not a valid OTLP/JSON ExportLogsServiceRequest");
    expect(status.message).toContain(`${path}: ${expected}`);
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("corrupt gzip (JSON) → 400 naming gzip", async () => {
    const reply = await send(s.url, {
      headers: { ...JSON_CT, "content-encoding": "gzip" },
      body: jsonRequest("http-corrupt-gzip"),
    });
    expect(reply.status).toBe(400);
    const status = jsonStatus(reply);
    expect(status.code).toBe(3);
    expect(status.message).toMatch(/not valid gzip data/);
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("corrupt gzip (protobuf) → 400 with a protobuf google.rpc.Status naming gzip", async () => {
    const reply = await send(s.url, {
      headers: { ...PROTOBUF, "content-encoding": "gzip" },
      body: protobufRequest("http-corrupt-gzip-pb"),
    });
    expect(reply.status).toBe(400);
    const status = protoStatus(reply);
    expect(status.code).toBe(3);
    expect(status.message).toMatch(/not valid gzip data/);
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("corrupt deflate → 400 naming deflate", async () => {
    const reply = await send(s.url, {
      headers: { ...JSON_CT, "content-encoding": "deflate" },
      body: jsonRequest("http-corrupt-deflate"),
    });
    expect(reply.status).toBe(400);
    const status = jsonStatus(reply);
    expect(status.code).toBe(3);
    expect(status.message).toMatch(/not valid deflate data/);
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("gzip bomb (small gzip inflating past the limit) → 413", async () => {
    const bomb = gzipSync(protobufRequest("http-gzip-bomb", "a".repeat(4 * MAX_BODY)));
    expect(bomb.length).toBeLessThan(MAX_BODY / 8);
    const reply = await send(s.url, {
      headers: { ...PROTOBUF, "content-encoding": "gzip" },
      body: bomb,
    });
    expect(reply.status).toBe(413);
    const status = protoStatus(reply);
    expect(status.code).toBe(8);
    expect(status.message).toContain(`decompressed body exceeds the limit of ${MAX_BODY} bytes`);
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("body over the limit with Content-Length → 413", async () => {
    const body = jsonRequest("http-too-large", "b".repeat(MAX_BODY + 1024));
    const reply = await send(s.url, { headers: JSON_CT, body });
    expect(reply.status).toBe(413);
    expect(reply.headers.connection).toBe("close");
    const status = jsonStatus(reply);
    expect(status.code).toBe(8);
    expect(status.message).toContain(
      `body of ${Buffer.byteLength(body)} bytes exceeds the limit of ${MAX_BODY} bytes`,
    );
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("an oversized Content-Length is refused before any body arrives → 413", async () => {
    const { statusLine, raw } = await declareOversizedBody(s.url, 10 * MAX_BODY);
    expect(statusLine).toBe("HTTP/1.1 413 Payload Too Large");
    expect(raw).toMatch(/\r\nconnection: close\r\n/i);
    const json = /\{.*\}/s.exec(raw.slice(raw.indexOf("\r\n\r\n")))?.[0] ?? "";
    const message = JSON.parse(json) as { code: number; message: string };
    expect(message.code).toBe(8);
    expect(message.message).toContain(
      `body of ${10 * MAX_BODY} bytes exceeds the limit of ${MAX_BODY} bytes`,
    );
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("body over the limit with chunked transfer encoding → 413", async () => {
    const body = jsonRequest("http-too-large-chunked", "c".repeat(MAX_BODY + 1024));
    const chunks = [body.slice(0, 1000), body.slice(1000, 40_000), body.slice(40_000)];
    const reply = await send(s.url, {
      headers: JSON_CT,
      body: Readable.from(chunks.map((c) => Buffer.from(c))),
    });
    expect(reply.status).toBe(413);
    const status = jsonStatus(reply);
    expect(status.code).toBe(8);
    expect(status.message).toContain(`body exceeds the limit of ${MAX_BODY} bytes`);
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("wrong content type (text/plain) → 415 naming the content types to use", async () => {
    const reply = await send(s.url, {
      headers: { "content-type": "text/plain" },
      body: jsonRequest("http-text-plain"),
    });
    expect(reply.status).toBe(415);
    const status = jsonStatus(reply);
    expect(status.code).toBe(12);
    expect(status.message).toContain('unsupported content type "text/plain"');
    expect(status.message).toContain("application/x-protobuf or application/json");
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("missing content type → 415", async () => {
    const reply = await send(s.url, { body: jsonRequest("http-no-content-type") });
    expect(reply.status).toBe(415);
    expect(jsonStatus(reply).message).toContain("unsupported content type");
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("unsupported Content-Encoding (br) → 415 naming the encodings to use", async () => {
    const reply = await send(s.url, {
      headers: { ...PROTOBUF, "content-encoding": "br" },
      body: protobufRequest("http-brotli"),
    });
    expect(reply.status).toBe(415);
    const status = protoStatus(reply);
    expect(status.code).toBe(12);
    expect(status.message).toContain('unsupported content encoding "br"');
    expect(status.message).toContain("gzip");
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it.each(["GET", "PUT"] as const)("%s /v1/logs → 405 with Allow: POST", async (method) => {
    const reply = await send(s.url, {
      method,
      headers: JSON_CT,
      body: method === "PUT" ? jsonRequest("http-put") : undefined,
    });
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe("POST");
    const status = jsonStatus(reply);
    expect(status.code).toBe(12);
    expect(status.message).toContain(`method ${method} is not allowed`);
    expect(status.message).toContain("POST");
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("another path → 404 naming the logs path", async () => {
    const reply = await send(s.url.replace(/\/v1\/logs$/, "/v1/traces"), {
      headers: JSON_CT,
      body: jsonRequest("http-wrong-path"),
    });
    expect(reply.status).toBe(404);
    const status = jsonStatus(reply);
    expect(status.code).toBe(5);
    expect(status.message).toContain("no OTLP endpoint at /v1/traces");
    expect(status.message).toContain("POST /v1/logs");
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("an empty protobuf body is an empty request → 200 with an ExportLogsServiceResponse", async () => {
    const reply = await send(s.url, { headers: PROTOBUF, body: Buffer.alloc(0) });
    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toBe("application/x-protobuf");
    const response = ResponseType.toObject(ResponseType.decode(reply.bytes));
    expect(response.partialSuccess).toBeUndefined();
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("an empty JSON request {} → 200 with {}", async () => {
    const reply = await send(s.url, { headers: JSON_CT, body: "{}" });
    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toBe("application/json");
    expect(reply.bytes.toString("utf8")).toBe("{}");
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("a zero-byte JSON body is an empty request too → 200 with {}", async () => {
    const reply = await send(s.url, { headers: JSON_CT, body: "" });
    expect(reply.status).toBe(200);
    expect(reply.bytes.toString("utf8")).toBe("{}");
    expect(s.a.agent.wal.headSeq).toBe(-1);
  });

  it("after all that nothing was stored, and valid requests still succeed and are all that is stored", async () => {
    expect(s.a.agent.wal.headSeq).toBe(-1);
    expect(s.a.agent.counters.receiverAccepted).toBe(0);

    const gz = await send(s.url, {
      headers: { ...PROTOBUF, "content-encoding": "gzip" },
      body: gzipSync(protobufRequest("http-valid-gzip")),
    });
    expect(gz.status).toBe(200);
    expect(gz.headers["content-type"]).toBe("application/x-protobuf");
    expect(ResponseType.toObject(ResponseType.decode(gz.bytes)).partialSuccess).toBeUndefined();
    expect(s.a.agent.wal.headSeq).toBe(0);

    const json = await send(s.url, { headers: JSON_CT, body: jsonRequest("http-valid-json") });
    expect(json.status).toBe(200);
    expect(json.bytes.toString("utf8")).toBe("{}");
    expect(s.a.agent.wal.headSeq).toBe(1);

    await waitForDelivery(s.a);
    expect(await storedCases(s.a)).toEqual(["http-valid-gzip", "http-valid-json"]);
  });
});

function statusDetails(err: grpc.ServiceError): { code: number; message: string } {
  const [bin] = err.metadata.get("grpc-status-details-bin");
  expect(bin).toBeInstanceOf(Buffer);
  return StatusType.toObject(StatusType.decode(bin as Buffer), { defaults: true }) as {
    code: number;
    message: string;
  };
}

describe("OTLP/gRPC: bad input gets a clear error and changes nothing", () => {
  const tmp = makeTempDir();
  let a: InProcessAgent;
  let client: grpc.Client;
  let gzipClient: grpc.Client;

  beforeAll(async () => {
    a = await startInProcessAgent({ dir: tmp.path, http: false });
    client = new grpc.Client(a.grpcAddress, grpc.credentials.createInsecure());
    gzipClient = new grpc.Client(a.grpcAddress, grpc.credentials.createInsecure(), {
      "grpc.default_compression_algorithm": 2,
    });
  });

  afterAll(async () => {
    client?.close();
    gzipClient?.close();
    await a?.stop();
    tmp.cleanup();
  });

  it("garbage bytes → INVALID_ARGUMENT naming protobuf", async () => {
    const { err, value } = await grpcExport(client, GARBAGE);
    expect(value).toBeUndefined();
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/not a valid protobuf ExportLogsServiceRequest/);
    expect(statusDetails(err as grpc.ServiceError)).toMatchObject({ code: 3 });
    expect(a.agent.wal.headSeq).toBe(-1);
  });

  it("invalid UTF-8 in a string → INVALID_ARGUMENT", async () => {
    const { err } = await grpcExport(client, protobufWithInvalidUtf8("grpc-utf8"));
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/invalid UTF-8/);
    expect(a.agent.wal.headSeq).toBe(-1);
  });

  it("truncated protobuf → INVALID_ARGUMENT naming protobuf", async () => {
    const { err } = await grpcExport(client, truncated(protobufRequest("grpc-truncated")));
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/not a valid protobuf ExportLogsServiceRequest/);
    expect(a.agent.wal.headSeq).toBe(-1);
  });

  it("a message over the 4 MiB receive limit → RESOURCE_EXHAUSTED", async () => {
    const big = protobufRequest("grpc-too-large", "d".repeat(5 * 1024 * 1024));
    const { err } = await grpcExport(client, big);
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/larger than .*4194304/);
    expect(a.agent.wal.headSeq).toBe(-1);
  });

  it("a gzip message inflating past the receive limit → RESOURCE_EXHAUSTED", async () => {
    const bomb = protobufRequest("grpc-gzip-bomb", "e".repeat(5 * 1024 * 1024));
    const { err } = await grpcExport(gzipClient, bomb);
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/larger than .*4194304/);
    expect(a.agent.wal.headSeq).toBe(-1);
  });

  it("after all that nothing was stored, and valid requests (plain and gzip) still succeed and are all that is stored", async () => {
    expect(a.agent.wal.headSeq).toBe(-1);
    expect(a.agent.counters.receiverAccepted).toBe(0);

    const gz = await grpcExport(gzipClient, protobufRequest("grpc-valid-gzip"));
    expect(gz.err).toBeNull();
    expect(ResponseType.toObject(ResponseType.decode(gz.value as Buffer)).partialSuccess).toBe(
      undefined,
    );
    expect(a.agent.wal.headSeq).toBe(0);

    const { err, value } = await grpcExport(client, protobufRequest("grpc-valid"));
    expect(err).toBeNull();
    expect(ResponseType.toObject(ResponseType.decode(value as Buffer)).partialSuccess).toBe(
      undefined,
    );
    await waitForDelivery(a);
    expect(await storedCases(a)).toEqual(["grpc-valid-gzip", "grpc-valid"]);
    expect(a.agent.wal.headSeq).toBe(1);
  });
});

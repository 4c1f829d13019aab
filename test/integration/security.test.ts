import { readFileSync } from "node:fs";
import { connect } from "node:http2";
import { Agent as HttpsAgent } from "node:https";
import * as grpc from "@grpc/grpc-js";
import { OTLPLogExporter as GrpcExporter } from "@opentelemetry/exporter-logs-otlp-grpc";
import { OTLPLogExporter as HttpExporter } from "@opentelemetry/exporter-logs-otlp-http";
import {
  LoggerProvider,
  type LogRecordExporter,
  SimpleLogRecordProcessor,
} from "@opentelemetry/sdk-logs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import { otlpTypes } from "../../agent/otlp/protobuf-codec.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import {
  attr,
  makeTempDir,
  readOutput,
  testConfigYaml,
  waitFor,
  withReceiverSettings,
} from "../helpers/agent.js";
import { makePki, type TestPki } from "../helpers/certs.js";

/**
 * Locked-down receivers: TLS and mTLS on OTLP/HTTP and OTLP/gRPC, bearer-token auth, and a
 * request rate limit. The real OTel SDK exporters configured with TLS and headers get
 * through; clients without the right certificate or token do not, and learn nothing why.
 */
const TOKEN = "s3cret-token-for-tests-0123456789";
const EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

function secureYaml(dir: string, pki: TestPki, mtls: boolean): string {
  const tls = `        tls:\n          cert_file: ${pki.serverCert}\n          key_file: ${pki.serverKey}\n${mtls ? `          client_ca_file: ${pki.ca}\n` : ""}        auth:\n          bearer_token: ${TOKEN}\n`;
  return withReceiverSettings(testConfigYaml({ dir }), tls);
}

const request = (id: string) =>
  Buffer.from(
    otlpTypes.RequestType.encode(
      otlpTypes.RequestType.fromObject({
        resourceLogs: [
          {
            scopeLogs: [
              {
                logRecords: [
                  {
                    eventName: "audit.sec",
                    attributes: [{ key: "id", value: { stringValue: id } }],
                  },
                ],
              },
            ],
          },
        ],
      }),
    ).finish(),
  );

function rawGrpc(
  address: string,
  creds: grpc.ChannelCredentials,
  token?: string,
): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(address, creds);
  const md = new grpc.Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) =>
    client.makeUnaryRequest(
      EXPORT,
      (b: Buffer) => b,
      (b: Buffer) => b,
      request("raw"),
      md,
      { deadline: Date.now() + 5000 },
      (err) => {
        client.close();
        resolve(err);
      },
    ),
  );
}

async function httpsPost(url: string, agent: HttpsAgent, token?: string): Promise<number | string> {
  const { request: req } = await import("node:https");
  return new Promise((resolve) => {
    const r = req(
      url,
      {
        method: "POST",
        agent,
        headers: {
          "content-type": "application/x-protobuf",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    r.on("error", (err) => resolve(`error: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    r.end(request("https"));
  });
}

async function emit(exporter: LogRecordExporter, id: string): Promise<void> {
  const provider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter })] });
  provider.getLogger("sec").emit({ body: id, attributes: { audit: true, id } });
  await provider.forceFlush();
  await exporter.forceFlush();
  await provider.shutdown();
}

describe.each([false, true])("receivers with TLS%s and a bearer token", (mtls) => {
  const tmp = makeTempDir();
  let pki: TestPki;
  let agent: RunningAgent;
  let http = "";
  let grpcAddr = "";
  const label = mtls ? " (mTLS)" : "";

  beforeAll(async () => {
    pki = makePki(tmp.path);
    agent = await startAgent(
      parseConfig(secureYaml(tmp.path, pki, mtls), "t.yaml", {}),
      createLogger("error"),
    );
    http = `https://${agent.addresses().otlp?.http}/v1/logs`;
    grpcAddr = agent.addresses().otlp?.grpc ?? "";
  });
  afterAll(async () => {
    await agent?.shutdown(3000);
    tmp.cleanup();
  });

  const ca = () => readFileSync(pki.ca);
  const clientKeyPair = (rogue = false) => ({
    key: readFileSync(rogue ? pki.rogueKey : pki.clientKey),
    cert: readFileSync(rogue ? pki.rogueCert : pki.clientCert),
  });

  it(`the start-up summary says TLS${label} and bearer-token auth are on, with the https URL`, () => {
    const tls = mtls ? "mutual" : "on";
    expect(agent.summary().receivers).toEqual([
      { receiver: "otlp", protocol: "grpc", address: grpcAddr, tls, auth: "bearer token" },
      {
        receiver: "otlp",
        protocol: "http",
        address: new URL(http).host,
        url: http,
        tls,
        auth: "bearer token",
      },
    ]);
  });

  it(`the real SDK exporters over TLS${label} with the token header succeed`, async () => {
    const kp = clientKeyPair();
    await emit(
      new HttpExporter({
        url: http,
        headers: { Authorization: `Bearer ${TOKEN}` },
        httpAgentOptions: { ca: ca(), ...(mtls ? kp : {}) },
      }),
      "sdk-http",
    );
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${TOKEN}`);
    await emit(
      new GrpcExporter({
        url: `https://${grpcAddr}`,
        credentials: grpc.credentials.createSsl(ca(), mtls ? kp.key : null, mtls ? kp.cert : null),
        metadata: md,
      }),
      "sdk-grpc",
    );
    await waitFor(() => agent.deliveries[0]?.deliveredThrough === 1, 5000, "export");
    const { records } = await readOutput(agent.deliveries.length ? `${tmp.path}/out` : "");
    expect(records.map((r) => attr(r.record, "id")?.stringValue).sort()).toEqual([
      "sdk-grpc",
      "sdk-http",
    ]);
  });

  it(`refuses a missing or wrong bearer token with 401 / UNAUTHENTICATED and no reason${label}`, async () => {
    const agentOpts = { ca: ca(), ...(mtls ? clientKeyPair() : {}) };
    expect(await httpsPost(http, new HttpsAgent(agentOpts))).toBe(401);
    expect(await httpsPost(http, new HttpsAgent(agentOpts), "wrong-token-wrong-token")).toBe(401);
    const creds = grpc.credentials.createSsl(
      ca(),
      mtls ? clientKeyPair().key : null,
      mtls ? clientKeyPair().cert : null,
    );
    const err = await rawGrpc(grpcAddr, creds, "wrong-token-wrong-token");
    expect(err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err?.details).toBe("unauthenticated");
    expect(await rawGrpc(grpcAddr, creds, TOKEN)).toBeNull();
  });

  it(`refuses a gRPC call without the token on its metadata, before its message is read${label}`, async () => {
    // Raw HTTP/2: headers without a token, then the start of a 3 MiB message that never
    // ends. The answer must come from the metadata alone: a server that waited for the
    // message would let such calls pin up to max_recv_msg_size_mib each.
    const session = connect(`https://${grpcAddr}`, {
      ca: ca(),
      servername: "localhost",
      ...(mtls ? clientKeyPair() : {}),
    });
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": EXPORT,
        "content-type": "application/grpc",
        te: "trailers",
      });
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(3 * 1024 * 1024, 1);
      stream.write(Buffer.concat([prefix, Buffer.alloc(64 * 1024)]));
      const status = await new Promise<string | undefined>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error("no answer before the message ended")),
          3000,
        );
        const done = (h: Record<string, unknown>) => {
          if (h["grpc-status"] === undefined) return;
          clearTimeout(timer);
          resolve(String(h["grpc-status"]));
        };
        stream.on("response", done);
        stream.on("trailers", done);
        stream.on("error", () => undefined);
      });
      expect(status).toBe(String(grpc.status.UNAUTHENTICATED));
    } finally {
      session.destroy();
    }
  });

  it(`refuses plaintext clients and servers it cannot verify${label}`, async () => {
    expect(await rawGrpc(grpcAddr, grpc.credentials.createInsecure(), TOKEN)).toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    const untrusting = await httpsPost(http, new HttpsAgent({}), TOKEN);
    expect(String(untrusting)).toMatch(
      /error: (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO)/,
    );
  });

  if (mtls) {
    it("refuses clients without a certificate, or with one from another CA", async () => {
      expect(String(await httpsPost(http, new HttpsAgent({ ca: ca() }), TOKEN))).toMatch(
        /^error: |^401$/,
      );
      expect(
        String(await httpsPost(http, new HttpsAgent({ ca: ca(), ...clientKeyPair(true) }), TOKEN)),
      ).toMatch(/^error: /);
      expect(await rawGrpc(grpcAddr, grpc.credentials.createSsl(ca()), TOKEN)).toMatchObject({
        code: grpc.status.UNAVAILABLE,
      });
      expect(
        await rawGrpc(
          grpcAddr,
          grpc.credentials.createSsl(ca(), clientKeyPair(true).key, clientKeyPair(true).cert),
          TOKEN,
        ),
      ).toMatchObject({ code: grpc.status.UNAVAILABLE });
    });
  }
});

describe("rate limit", () => {
  it("answers 429 with Retry-After beyond requests_per_second, and gRPC RESOURCE_EXHAUSTED", async () => {
    const tmp = makeTempDir();
    const yaml = testConfigYaml({ dir: tmp.path }).replace(
      "processors:\n",
      "    rate_limit:\n      requests_per_second: 2\n      burst: 2\nprocessors:\n",
    );
    const agent = await startAgent(parseConfig(yaml, "t.yaml", {}), createLogger("error"));
    try {
      const post = () =>
        fetch(`http://${agent.addresses().otlp?.http}/v1/logs`, {
          method: "POST",
          headers: { "content-type": "application/x-protobuf" },
          body: request("rl"),
        });
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await post()).status);
      expect(statuses.slice(0, 2)).toEqual([200, 200]);
      expect(statuses.slice(2)).toContain(429);
      const limited = await post();
      expect(limited.status).toBe(429);
      expect(limited.headers.get("retry-after")).toBe("1");
      const err = await rawGrpc(
        agent.addresses().otlp?.grpc ?? "",
        grpc.credentials.createInsecure(),
      );
      expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      // Refused before the body is read, so counted per request (the records are unknown).
      expect(agent.counters.requests.get("http:429") ?? 0).toBeGreaterThanOrEqual(3);
      expect(agent.counters.requests.get("grpc:RESOURCE_EXHAUSTED")).toBe(1);
    } finally {
      await agent.shutdown(2000);
      tmp.cleanup();
    }
  });
});

describe("certificate reload", () => {
  it("the HTTP receiver picks up a renewed certificate without a restart", async () => {
    const tmp = makeTempDir();
    const first = makePki(`${tmp.path}`);
    const { mkdirSync, copyFileSync } = await import("node:fs");
    mkdirSync(`${tmp.path}/next`);
    const next = makePki(`${tmp.path}/next`);
    const yaml = testConfigYaml({ dir: tmp.path }).replace(
      "      http:\n        endpoint: 127.0.0.1:0\n",
      `      http:\n        endpoint: 127.0.0.1:0\n        tls:\n          cert_file: ${first.serverCert}\n          key_file: ${first.serverKey}\n          reload_interval: 100ms\n`,
    );
    const agent = await startAgent(parseConfig(yaml, "t.yaml", {}), createLogger("error"));
    const url = `https://${agent.addresses().otlp?.http}/v1/logs`;
    try {
      const oldCa = readFileSync(first.ca);
      const newCa = readFileSync(next.ca);
      expect(await httpsPost(url, new HttpsAgent({ ca: oldCa }))).toBe(200);
      expect(String(await httpsPost(url, new HttpsAgent({ ca: newCa })))).toMatch(/^error: /);
      copyFileSync(next.serverCert, first.serverCert);
      copyFileSync(next.serverKey, first.serverKey);
      await waitFor(
        async () => (await httpsPost(url, new HttpsAgent({ ca: newCa }))) === 200,
        5000,
        "the renewed certificate",
      );
      expect(String(await httpsPost(url, new HttpsAgent({ ca: oldCa })))).toMatch(/^error: /);
    } finally {
      await agent.shutdown(2000);
      tmp.cleanup();
    }
  });
});

describe("gRPC certificate reload", () => {
  it("the gRPC receiver listens again with a renewed certificate, on the same port", async () => {
    const tmp = makeTempDir();
    const first = makePki(`${tmp.path}`);
    const { mkdirSync, copyFileSync } = await import("node:fs");
    mkdirSync(`${tmp.path}/next`);
    const next = makePki(`${tmp.path}/next`);
    const yaml = testConfigYaml({ dir: tmp.path }).replace(
      "      grpc:\n        endpoint: 127.0.0.1:0\n",
      `      grpc:\n        endpoint: 127.0.0.1:0\n        tls:\n          cert_file: ${first.serverCert}\n          key_file: ${first.serverKey}\n          reload_interval: 100ms\n`,
    );
    const agent = await startAgent(parseConfig(yaml, "t.yaml", {}), createLogger("error"));
    const address = agent.addresses().otlp?.grpc ?? "";
    try {
      const oldCa = grpc.credentials.createSsl(readFileSync(first.ca));
      const newCa = () => grpc.credentials.createSsl(readFileSync(next.ca));
      expect(await rawGrpc(address, oldCa)).toBeNull();
      copyFileSync(next.serverCert, first.serverCert);
      copyFileSync(next.serverKey, first.serverKey);
      await waitFor(
        async () => (await rawGrpc(address, newCa())) === null,
        10_000,
        "the renewed certificate",
      );
      expect(agent.addresses().otlp?.grpc).toBe(address);
      expect(
        await rawGrpc(address, grpc.credentials.createSsl(readFileSync(first.ca))),
      ).toMatchObject({ code: grpc.status.UNAVAILABLE });
    } finally {
      await agent.shutdown(2000);
      tmp.cleanup();
    }
  });
});

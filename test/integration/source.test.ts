import { X509Certificate } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import { otlpTypes } from "../../agent/otlp/protobuf-codec.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import {
  makeTempDir,
  runCli,
  testConfigYaml,
  waitFor,
  withReceiverSettings,
} from "../helpers/agent.js";
import { makePki, type TestPki } from "../helpers/certs.js";

/**
 * The source processor end to end (docs/integrity-format.md §2.4): a real agent stamps the
 * peer address, the verified client certificate and the configured Downward API facts into
 * each envelope's `source`, over OTLP/HTTP and OTLP/gRPC; what the application claims in its
 * resource attributes does not change it; `verify` passes the output and catches an edit.
 */

const EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/** Resource attributes an application could set to pose as another sender. */
const FORGED = {
  "client.address": "203.0.113.66",
  "k8s.pod.name": "forged-pod",
  "tls.client.subject": "CN=admin",
};

function body(id: string): Buffer {
  return Buffer.from(
    otlpTypes.RequestType.encode(
      otlpTypes.RequestType.fromObject({
        resourceLogs: [
          {
            resource: {
              attributes: Object.entries(FORGED).map(([key, v]) => ({
                key,
                value: { stringValue: v },
              })),
            },
            scopeLogs: [{ logRecords: [{ eventName: `audit.${id}` }] }],
          },
        ],
      }),
    ).finish(),
  );
}

function agentYaml(dir: string, pki: TestPki | null, source: string): string {
  const tls = pki
    ? `        tls:\n          cert_file: ${pki.serverCert}\n          key_file: ${pki.serverKey}\n          client_ca_file: ${pki.ca}\n`
    : "";
  return withReceiverSettings(testConfigYaml({ dir }), tls)
    .replace("processors:\n", `processors:\n  source:\n${source}`)
    .replace("processors: [audit_filter]", "processors: [audit_filter, source]");
}

/** POSTs an OTLP/protobuf body over HTTP, or HTTPS with a client certificate; the status. */
function postHttp(url: string, tls: { ca: Buffer; key: Buffer; cert: Buffer } | null, id: string) {
  const headers = { "content-type": "application/x-protobuf" };
  if (tls === null)
    return fetch(url, { method: "POST", headers, body: body(id) }).then((r) => r.status);
  return new Promise<number>((resolve, reject) =>
    httpsRequest(url, { method: "POST", headers, ...tls }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on("error", reject)
      .end(body(id)),
  );
}

function postGrpc(address: string, creds: grpc.ChannelCredentials, id: string) {
  const client = new grpc.Client(address, creds);
  return new Promise<grpc.ServiceError | null>((resolve) =>
    client.makeUnaryRequest(
      EXPORT,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body(id),
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
      (err) => {
        client.close();
        resolve(err);
      },
    ),
  );
}

interface Line {
  text: string;
  v: number;
  source?: Record<string, string>;
  record: { logRecord: { eventName: string } };
}

/** The record lines the file exporter wrote, by event name, and the segment files. */
function output(out: string): { lines: Map<string, Line>; segments: string[] } {
  const lines = new Map<string, Line>();
  const segments: string[] = [];
  for (const chain of readdirSync(out)) {
    for (const name of readdirSync(join(out, chain)).filter((n) => n.startsWith("records-"))) {
      segments.push(join(out, chain, name));
      for (const text of readFileSync(join(out, chain, name), "utf8").split("\n")) {
        if (text === "") continue;
        const line = { ...(JSON.parse(text) as Omit<Line, "text">), text };
        lines.set(line.record.logRecord.eventName, line);
      }
    }
  }
  return { lines, segments };
}

async function verify(dir: string, ...extra: string[]) {
  const pub = join(dir, "keys", "signing.pub");
  return runCli([
    "verify",
    "--source",
    `file:${join(dir, "out")}`,
    "--trust",
    pub,
    "--json",
    ...extra,
  ]);
}

/** An agent on `yaml()`, started before the block's tests and stopped after them. */
function useAgent(yaml: () => string, env: Record<string, string> = {}): () => RunningAgent {
  let agent: RunningAgent | undefined;
  beforeAll(async () => {
    agent = await startAgent(parseConfig(yaml(), "t.yaml", env), createLogger("error"));
  });
  afterAll(async () => {
    await agent?.shutdown(3000);
  });
  return () => agent as RunningAgent;
}

/** Starts an agent on `yaml`, sends one record over HTTP, waits for its export, stops it. */
async function sendOnce(yaml: string, id: string, seq: number): Promise<void> {
  const agent = await startAgent(parseConfig(yaml, "t.yaml", {}), createLogger("error"));
  try {
    const addresses = agent.addresses().otlp ?? {};
    expect(await postHttp(`http://${addresses.http}/v1/logs`, null, id)).toBe(200);
    await waitFor(() => agent.deliveries[0]?.deliveredThrough === seq, 5000, "export");
  } finally {
    await agent.shutdown(3000);
  }
}

describe("the source processor over mTLS", () => {
  const tmp = makeTempDir("source-mtls-");
  afterAll(() => tmp.cleanup());
  let pki: TestPki;
  const env = { POD: "payments-7d9f", NS: "payments", NODE: "" };
  const running = useAgent(() => {
    pki = makePki(tmp.path);
    const source = [
      "    client_address: true",
      "    client_certificate: true",
      "    attributes:",
      "      k8s.pod.name: ${env:POD}",
      "      k8s.namespace.name: ${env:NS}",
      "      k8s.node.name: ${env:NODE}",
      "",
    ].join("\n");
    return agentYaml(tmp.path, pki, source);
  }, env);

  it("stamps the peer, the verified certificate and the configured facts; the app cannot change them", async () => {
    const agent = running();
    const addresses = agent.addresses().otlp ?? {};
    const ca = readFileSync(pki.ca);
    const key = readFileSync(pki.clientKey);
    const cert = readFileSync(pki.clientCert);
    expect(await postHttp(`https://${addresses.http}/v1/logs`, { ca, key, cert }, "http")).toBe(
      200,
    );
    expect(
      await postGrpc(addresses.grpc ?? "", grpc.credentials.createSsl(ca, key, cert), "grpc"),
    ).toBeNull();
    await waitFor(() => agent.deliveries[0]?.deliveredThrough === 1, 5000, "export");

    const x509 = new X509Certificate(cert);
    const want = {
      "client.address": "127.0.0.1",
      "k8s.namespace.name": "payments",
      "k8s.pod.name": "payments-7d9f",
      "tls.client.hash.sha256": x509.fingerprint256.replaceAll(":", ""),
      "tls.client.subject": "CN=client",
    };
    const { lines } = output(join(tmp.path, "out"));
    for (const id of ["audit.http", "audit.grpc"]) {
      const line = lines.get(id) as Line;
      expect(line.v, id).toBe(2);
      expect(line.source, id).toEqual(want);
      // What the app claimed stays in the record, where it always was: a claim.
      expect(JSON.stringify(line.record)).toContain("forged-pod");
      expect(line.text).toContain(`"seq":"${id === "audit.http" ? 0 : 1}","source":{`);
    }
    const clean = await verify(tmp.path);
    expect(clean.status, clean.stdout + clean.stderr).toBe(0);
  });

  it("verify catches a source edited in the stored output", async () => {
    const { segments } = output(join(tmp.path, "out"));
    const segment = segments[0] as string;
    const text = readFileSync(segment, "utf8");
    writeFileSync(
      segment,
      text.replace('"k8s.pod.name":"payments-7d9f"', '"k8s.pod.name":"payments-0000"'),
    );
    const tampered = await verify(tmp.path);
    expect(tampered.status).toBe(1);
    const report = JSON.parse(tampered.stdout) as {
      findings: { category: string; seq?: number }[];
    };
    expect(report.findings.map((f) => f.category)).toContain("modified");
    // A source that is not of the documented shape is malformed, not modified.
    writeFileSync(segment, text.replace('"k8s.pod.name":"payments-7d9f"', '"k8s.pod.name":7'));
    const malformed = await verify(tmp.path);
    expect(malformed.status).toBe(1);
    const report2 = JSON.parse(malformed.stdout) as { findings: { category: string }[] };
    expect(report2.findings.map((f) => f.category)).toContain("malformed");
    writeFileSync(segment, text);
  });
});

describe("the source processor without TLS, and an agent without it", () => {
  const tmp = makeTempDir("source-plain-");
  afterAll(() => tmp.cleanup());
  const source = "    client_address: true\n    client_certificate: true\n";
  const running = useAgent(() => agentYaml(tmp.path, null, source));

  it("stamps the peer address alone over HTTP and gRPC, and verify passes, incrementally too", async () => {
    const agent = running();
    const addresses = agent.addresses().otlp ?? {};
    expect(await postHttp(`http://${addresses.http}/v1/logs`, null, "http")).toBe(200);
    expect(
      await postGrpc(addresses.grpc ?? "", grpc.credentials.createInsecure(), "grpc"),
    ).toBeNull();
    await waitFor(() => agent.deliveries[0]?.deliveredThrough === 1, 5000, "export");
    const { lines } = output(join(tmp.path, "out"));
    for (const id of ["audit.http", "audit.grpc"])
      expect(lines.get(id), id).toMatchObject({ v: 2, source: { "client.address": "127.0.0.1" } });
    const state = join(tmp.path, "state.json");
    expect((await verify(tmp.path, "--state", state)).status).toBe(0);
    expect((await verify(tmp.path, "--state", state)).status).toBe(0);
  });

  it("writes version-1 lines when the pipeline does not list it, and a chain may mix both", async () => {
    const dir = makeTempDir("source-none-");
    try {
      await sendOnce(testConfigYaml({ dir: dir.path }), "v1", 0);
      const { lines } = output(join(dir.path, "out"));
      expect(lines.get("audit.v1")).toMatchObject({ v: 1 });
      expect(lines.get("audit.v1")?.text).not.toContain('"source"');
      // The same WAL and keys with the processor listed: the chain goes on in version 2.
      await sendOnce(agentYaml(dir.path, null, "    client_address: true\n"), "v2", 1);
      expect(output(join(dir.path, "out")).lines.get("audit.v2")).toMatchObject({ v: 2 });
      const run = await verify(dir.path);
      expect(run.status, run.stdout + run.stderr).toBe(0);
    } finally {
      dir.cleanup();
    }
  });
});

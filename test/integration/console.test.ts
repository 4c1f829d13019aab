import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import {
  CLI,
  type ChildAgent,
  killAgent,
  makeTempDir,
  postAuditRecords,
  readOutput,
  runCli,
  spawnAgent,
  testConfigYaml,
  waitFor,
} from "../helpers/agent.js";
import { grpcExport } from "../helpers/otlp-grpc.js";

/**
 * What `audit-agent run` tells: the start-up block (one JSON line in a pipe, text on a
 * terminal), readable log lines on a terminal, and refused requests and filtered records
 * logged rate-limited with the count of what was left out.
 */

interface LogLine {
  msg?: string;
  level?: string;
  [key: string]: unknown;
}

const jsonLines = (logs: string[]): LogLine[] =>
  logs.flatMap((l) => {
    try {
      return [JSON.parse(l) as LogLine];
    } catch {
      return [];
    }
  });

/** `audit-agent run` with `env`, its stderr collected, resolved once `ready` sees it serving. */
function runUntil(
  dir: string,
  yaml: string,
  env: Record<string, string>,
  ready: (stderr: string) => boolean,
): Promise<{ stderr: () => string; stop: () => Promise<void> }> {
  const config = join(dir, "agent.yaml");
  writeFileSync(config, yaml.replace("level: error", "level: info"));
  const child = spawn(process.execPath, [CLI, "run", "--config", config], {
    cwd: dir,
    env: { ...process.env, AUDIT_AGENT_TTY: "", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let text = "";
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  return new Promise((resolve, reject) => {
    child.stderr.on("data", (d: Buffer) => {
      text += d.toString("utf8");
      if (ready(text))
        resolve({
          stderr: () => text,
          stop: async () => {
            child.kill("SIGTERM");
            await exited;
          },
        });
    });
    void exited.then(() => reject(new Error(`agent exited before serving:\n${text}`)));
  });
}

/** Runs a printed command line in a shell where `audit-agent` is this build's CLI. */
function runPrinted(
  commandLine: string,
  binDir: string,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  mkdirSync(binDir, { recursive: true });
  const shim = join(binDir, "audit-agent");
  writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
  chmodSync(shim, 0o755);
  return new Promise((resolve) => {
    const child = spawn("sh", ["-c", commandLine], {
      env: { ...process.env, PATH: `${binDir}:${process.env.PATH ?? ""}` },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("exit", (status) => resolve({ status, stdout, stderr }));
  });
}

/** SHA256:<base64> of the raw key in a .pub file's verifier key line, computed apart from the agent. */
function fingerprintOf(pubFile: string): string {
  const line = readFileSync(pubFile, "utf8").trim();
  const raw = Buffer.from(line.split("+").slice(2).join("+"), "base64").subarray(1);
  return `SHA256:${createHash("sha256").update(raw).digest("base64").replace(/=+$/, "")}`;
}

const blockDone = (text: string) => /\(or every exporter as configured: .*\)\n/.test(text);

describe("audit-agent run: the start-up block", () => {
  const tmp = makeTempDir();
  afterAll(() => tmp.cleanup());

  it("in a pipe: one JSON line with the facts, and the verify command it prints checks the output", async () => {
    const dir = join(tmp.path, "json");
    mkdirSync(dir);
    const a: ChildAgent = await spawnAgent(testConfigYaml({ dir }), dir);
    try {
      const started = jsonLines(a.logs).find((l) => l.msg === "audit agent started") as LogLine;
      const pub = join(dir, "keys", "signing.pub");
      const expectedVerify = `audit-agent verify --source file:${join(dir, "out")} --trust ${pub}`;
      expect(started.receivers).toEqual([
        { receiver: "otlp", protocol: "grpc", address: a.grpcAddress, tls: "off", auth: "none" },
        {
          receiver: "otlp",
          protocol: "http",
          address: new URL(a.httpUrl).host,
          url: a.httpUrl,
          tls: "off",
          auth: "none",
        },
      ]);
      expect(started.exporters).toEqual([
        {
          id: "file",
          type: "file",
          destination: { directory: join(dir, "out") },
          verify: expectedVerify,
        },
      ]);
      expect(started.wal).toBe(join(dir, "wal"));
      expect(started.publicKey).toMatchObject({
        file: pub,
        fingerprint: fingerprintOf(pub),
        trust: [pub],
      });
      expect((started.endpoints as Record<string, string>).metrics).toMatch(
        /^http:\/\/127\.0\.0\.1:\d+\/metrics$/,
      );
      // No human-readable block in a pipe: every line is JSON.
      expect(a.logs.filter((l) => !l.startsWith("{"))).toEqual([]);

      expect(await postAuditRecords(a.httpUrl, 0, 7)).toBe(200);
      await waitFor(
        async () => (await readOutput(join(dir, "out")).catch(() => null))?.records.length === 7,
        10_000,
        "the file exporter's output",
      );
    } finally {
      await killAgent(a, "SIGTERM");
    }
    const verify = (started: LogLine[]) =>
      (started.find((l) => l.msg === "audit agent started")?.exporters as [{ verify: string }])[0]
        .verify;
    const r = await runPrinted(verify(jsonLines(a.logs)), join(tmp.path, "bin"));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/7 records, seq 0\.\.6/);
    expect(r.stdout).toMatch(/OK: no findings/);
    // So does the one that reads every exporter as configured.
    const all = jsonLines(a.logs).find((l) => l.msg === "audit agent started")?.verifyAll;
    expect(all).toBe(`cd ${dir} && audit-agent verify --config ${join(dir, "agent.yaml")}`);
    const rAll = await runPrinted(all as string, join(tmp.path, "bin"));
    expect(rAll.status).toBe(0);
    expect(rAll.stdout).toMatch(/7 records, seq 0\.\.6/);
  });

  it("on a terminal (AUDIT_AGENT_TTY=1): readable log lines and the block as text with the verify command", async () => {
    const dir = join(tmp.path, "tty");
    mkdirSync(dir);
    const run = await runUntil(dir, testConfigYaml({ dir }), { AUDIT_AGENT_TTY: "1" }, blockDone);
    await run.stop();
    const text = run.stderr();
    const pub = join(dir, "keys", "signing.pub");
    expect(text).not.toMatch(/^\{/m);
    expect(text).toMatch(/^\S+Z INFO {2}write-ahead log open {2}chainId=[0-9a-f]+ wal=/m);
    expect(text).toMatch(/^ {2}otlp\/grpc +127\.0\.0\.1:\d+ +no TLS, no auth$/m);
    expect(text).toMatch(/^ {2}otlp\/http +http:\/\/127\.0\.0\.1:\d+\/v1\/logs +no TLS, no auth$/m);
    expect(text).toContain(`  file: directory ${join(dir, "out")}\n`);
    expect(text).toContain(`  write-ahead log: ${join(dir, "wal")}\n`);
    expect(text).toContain(`Public key (give it to verifiers):\n  ${pub}\n`);
    expect(text).toContain(`fingerprint ${fingerprintOf(pub)}`);
    expect(text).toContain(
      `Check what was written:\n  audit-agent verify --source file:${join(dir, "out")} --trust ${pub}\n`,
    );
    expect(text).toMatch(/^\S+Z INFO {2}stopped {2}drained=true/m);
  });

  it("service.telemetry.logs.encoding overrides the terminal check either way", async () => {
    const dir = join(tmp.path, "switch");
    mkdirSync(dir);
    const yaml = (encoding: string) =>
      testConfigYaml({ dir }).replace(
        "      level: error",
        `      level: error\n      encoding: ${encoding}`,
      );
    // console without a terminal: the text block.
    const text = await runUntil(dir, yaml("console"), {}, blockDone);
    await text.stop();
    expect(text.stderr()).toContain("Check what was written:\n  audit-agent verify --source file:");
    expect(text.stderr()).not.toMatch(/^\{/m);
    // json on a terminal: JSON lines (spawnAgent waits for the JSON start-up line).
    const a = await spawnAgent(yaml("json"), dir, [], { AUDIT_AGENT_TTY: "1" });
    await killAgent(a, "SIGTERM");
    expect(a.logs.filter((l) => !l.startsWith("{"))).toEqual([]);
  });

  it("a malformed encoding is a config error naming the setting and its values", async () => {
    const dir = join(tmp.path, "bad");
    mkdirSync(dir);
    const file = join(dir, "agent.yaml");
    writeFileSync(
      file,
      testConfigYaml({ dir }).replace(
        "      level: error",
        "      level: error\n      encoding: text",
      ),
    );
    const r = await runCli(["validate", "--config", file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /service\.telemetry\.logs\.encoding: encoding must be "json" \(one JSON object a line\) or "console"/,
    );
  });
});

describe("audit-agent run: refused requests and filtered records are logged, rate-limited", () => {
  const tmp = makeTempDir();
  afterAll(() => tmp.cleanup());

  it("many bad requests give a few lines whose counts add up, with reason, protocol and peer; filtered records only as counts", async () => {
    const dir = tmp.path;
    const yaml = testConfigYaml({
      dir,
      auditFilter: '    conditions:\n      - event_name: { prefix: "audit." }',
    }).replace(
      "        endpoint: 127.0.0.1:0\n",
      "        endpoint: 127.0.0.1:0\n        max_recv_msg_size_mib: 0.01\n",
    );
    const a = await spawnAgent(yaml, dir);
    const client = new grpc.Client(a.grpcAddress, grpc.credentials.createInsecure());
    const N = { http: 40, grpcMalformed: 12, grpcTooLarge: 4, filtered: 15 };
    try {
      for (let i = 0; i < N.http; i++) {
        const res = await fetch(a.httpUrl, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{not json",
        });
        expect(res.status).toBe(400);
      }
      for (let i = 0; i < N.grpcMalformed; i++)
        expect((await grpcExport(client, Buffer.from([0xff, 0xff, 0xff]))).err?.code).toBe(
          grpc.status.INVALID_ARGUMENT,
        );
      for (let i = 0; i < N.grpcTooLarge; i++)
        expect((await grpcExport(client, Buffer.alloc(64 * 1024, 1))).err?.code).toBe(
          grpc.status.RESOURCE_EXHAUSTED,
        );
      // Each request: two records the filter leaves out (with a body that must never be logged), one audit record.
      for (let i = 0; i < N.filtered; i++) {
        const logRecords = [
          { body: { stringValue: `private-${i}` } },
          { body: { stringValue: `private-${i}b` } },
          { eventName: "audit.kept", body: { stringValue: `kept ${i}` } },
        ];
        const res = await fetch(a.httpUrl, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] }),
        });
        expect(res.status).toBe(200);
      }
    } finally {
      client.close();
      await killAgent(a, "SIGTERM");
    }
    const lines = jsonLines(a.logs);
    const refusals = (protocol: string, reason: string) =>
      lines.filter(
        (l) => l.msg?.endsWith("request refused") && l.protocol === protocol && l.reason === reason,
      );
    const total = (ls: LogLine[]) =>
      ls.reduce((n, l) => n + 1 + ((l.suppressed as number) ?? 0), 0);
    for (const [protocol, reason, sent] of [
      ["http", "malformed", N.http],
      ["grpc", "malformed", N.grpcMalformed],
      ["grpc", "not_received", N.grpcTooLarge],
    ] as const) {
      const logged = refusals(protocol, reason);
      // The first at once, the rest told in one line at shutdown (or one more if the 10 s interval passed).
      expect(logged.length, `${protocol} ${reason}`).toBeGreaterThanOrEqual(2);
      expect(logged.length, `${protocol} ${reason}`).toBeLessThanOrEqual(3);
      expect(total(logged), `${protocol} ${reason}`).toBe(sent);
      for (const l of logged) {
        expect(l.level).toBe("warn");
        expect(l.receiver).toBe("otlp");
        expect(l.peer).toMatch(/^127\.0\.0\.1:\d+$/);
        expect(typeof l.error).toBe("string");
      }
    }
    expect(refusals("http", "malformed")[0]?.status).toBe(400);
    expect(refusals("grpc", "malformed")[0]?.status).toBe("INVALID_ARGUMENT");
    const filtered = lines.filter((l) =>
      l.msg?.startsWith("records not matched by the audit filter"),
    );
    expect(filtered.length).toBeGreaterThanOrEqual(2);
    expect(filtered.length).toBeLessThanOrEqual(3);
    expect(filtered.reduce((n, l) => n + (l.records as number), 0)).toBe(2 * N.filtered);
    expect(a.logs.join("\n")).not.toContain("private-");
  });
});

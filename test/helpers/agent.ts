import { randomBytes } from "node:crypto";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, beforeEach } from "vitest";
import { checkChain } from "../../agent/integrity/chain-check.js";
import { parseConfig } from "../../agent/config/load.js";
import { readFileExport } from "../../agent/exporters/file/reader.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { afterAll, beforeAll } from "vitest";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CLI = join(ROOT, "dist/agent/cli/main.js");

export function makeTempDir(prefix = "audit-agent-test-"): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A loopback port that was free a moment ago (for a server that must come back on the same one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface TestConfigOptions {
  dir: string;
  walMaxMib?: number;
  /** Extra YAML placed under processors.audit_filter (indented by the caller's shape). */
  auditFilter?: string;
  fileDirectory?: string;
  grpc?: boolean;
  http?: boolean;
  maxBodyBytes?: number;
  maxRecordKib?: number;
  retryAfterSeconds?: number;
  /** extensions.signing: private key file (default <dir>/keys/signing.key). */
  keyFile?: string;
  /** extensions.signing.previous_key_file: the outgoing key of a rotation. */
  previousKeyFile?: string;
  /** extensions.signing.batch.max_records (agent default when unset). */
  batchMaxRecords?: number;
}

/** A config on ephemeral loopback ports with everything under `dir`. */
export function testConfigYaml(o: TestConfigOptions): string {
  const protocols = [
    o.grpc !== false ? "      grpc:\n        endpoint: 127.0.0.1:0" : "",
    o.http !== false
      ? `      http:\n        endpoint: 127.0.0.1:0${o.maxBodyBytes ? `\n        max_request_body_size: ${o.maxBodyBytes}` : ""}`
      : "",
  ]
    .filter(Boolean)
    .join("\n");
  return `receivers:
  otlp:
    protocols:
${protocols}
${o.retryAfterSeconds ? `    retry_after_seconds: ${o.retryAfterSeconds}\n` : ""}processors:
  audit_filter:
${o.auditFilter ?? "    match: any"}
exporters:
  file:
    directory: ${o.fileDirectory ?? join(o.dir, "out")}
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
extensions:
  signing:
    key_file: ${o.keyFile ?? join(o.dir, "keys", "signing.key")}
${o.previousKeyFile ? `    previous_key_file: ${o.previousKeyFile}\n` : ""}    batch:
${o.batchMaxRecords ? `      max_records: ${o.batchMaxRecords}\n` : ""}      timeout: 20ms
  wal:
    directory: ${join(o.dir, "wal")}
    max_size_mib: ${o.walMaxMib ?? 64}
${o.maxRecordKib ? `    max_record_size_kib: ${o.maxRecordKib}\n` : ""}service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [audit_filter]
      exporters: [file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
    logs:
      level: error
`;
}

/** testConfigYaml's YAML with `settings` (6-space indented lines) added to both receivers. */
export function withReceiverSettings(yaml: string, settings: string): string {
  return yaml
    .replace(
      "      grpc:\n        endpoint: 127.0.0.1:0\n",
      `      grpc:\n        endpoint: 127.0.0.1:0\n${settings}`,
    )
    .replace(
      "      http:\n        endpoint: 127.0.0.1:0\n",
      `      http:\n        endpoint: 127.0.0.1:0\n${settings}`,
    );
}

/**
 * An agent config for a backend's tests: OTLP/HTTP on an ephemeral port, the audit
 * filter, `exporters` (the YAML under `exporters:`, two-space indented) feeding the
 * pipeline as `exporterIds`, and WAL and keys under `dir`.
 */
export function backendAgentYaml(o: {
  dir: string;
  exporters: string;
  exporterIds: readonly string[];
  batchMaxRecords?: number;
}): string {
  return `receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  audit_filter:
    match: any
exporters:
${o.exporters}extensions:
  signing:
    key_file: ${join(o.dir, "keys", "signing.key")}
    batch:
${o.batchMaxRecords ? `      max_records: ${o.batchMaxRecords}\n` : ""}      timeout: 20ms
  wal:
    directory: ${join(o.dir, "wal")}
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [audit_filter]
      exporters: [${o.exporterIds.join(", ")}]
  telemetry:
    metrics:
      address: 127.0.0.1:0
    logs:
      level: error
`;
}

export interface InProcessAgent {
  agent: RunningAgent;
  httpUrl: string;
  grpcAddress: string;
  outDir: string;
  stop(): Promise<void>;
}

export async function startInProcessAgent(o: TestConfigOptions): Promise<InProcessAgent> {
  const config = parseConfig(testConfigYaml(o), "test.yaml", {});
  const agent = await startAgent(config, createLogger("error"));
  const a = agent.addresses().otlp ?? {};
  return {
    agent,
    httpUrl: a.http ? `http://${a.http}/v1/logs` : "",
    grpcAddress: a.grpc ?? "",
    outDir: o.fileDirectory ?? join(o.dir, "out"),
    stop: async () => {
      await agent.shutdown(5000);
    },
  };
}

/**
 * An in-process agent in a temporary directory, started before the tests of the describe
 * block that calls this and stopped (its directory removed) after them.
 */
export function inProcessAgentPerSuite(o: Omit<TestConfigOptions, "dir">): {
  readonly a: InProcessAgent;
  readonly url: string;
} {
  const tmp = makeTempDir();
  let agent: InProcessAgent | undefined;
  beforeAll(async () => {
    agent = await startInProcessAgent({ ...o, dir: tmp.path });
  });
  afterAll(async () => {
    await agent?.stop();
    tmp.cleanup();
  });
  const started = () => {
    if (!agent) throw new Error("the suite's agent has not started");
    return agent;
  };
  return {
    get a() {
      return started();
    },
    get url() {
      return started().httpUrl;
    },
  };
}

/** Reads the file exporter's output and checks its chain; one chain expected. */
export async function readOutput(outDir: string) {
  const chains = await readFileExport(outDir);
  if (chains.length !== 1)
    throw new Error(`expected one chain in ${outDir}, found ${chains.length}`);
  const chain = chains[0] as (typeof chains)[number];
  const check = checkChain(chain.lines);
  const records = chain.lines.map((l) => JSON.parse(l.text) as { seq: string; record: RecordJson });
  return { chain, check, records, findings: [...chain.findings, ...check.findings] };
}

export interface RecordJson {
  logRecord: Record<string, unknown> & {
    attributes?: Array<{ key: string; value?: Record<string, unknown> }>;
  };
  resource?: Record<string, unknown>;
  scope?: Record<string, unknown>;
  resourceSchemaUrl?: string;
  scopeSchemaUrl?: string;
}

export function attr(record: RecordJson, key: string): Record<string, unknown> | undefined {
  return record.logRecord.attributes?.find((a) => a.key === key)?.value;
}

export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export interface ChildAgent {
  child: ChildProcess;
  httpUrl: string;
  grpcAddress: string;
  chainId: string;
  logs: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs the built CLI (`audit-agent run`) as a child process and waits until it serves.
 * `asInstalled` runs it as a user does, through its shebang (its node flags and malloc
 * settings), for tests that measure memory. `onLine` sees each log line as it comes, while
 * the agent starts too (to signal it at a given point of its start-up).
 */
export async function spawnAgent(
  configYaml: string,
  dir: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
  asInstalled = false,
  onLine?: (line: string, child: ChildProcess) => void,
): Promise<ChildAgent> {
  const configPath = join(dir, "agent.yaml");
  writeFileSync(configPath, configYaml.replace("level: error", "level: info"));
  const args = [CLI, "run", "--config", configPath, ...extraArgs];
  const child = spawn(asInstalled ? CLI : process.execPath, asInstalled ? args.slice(1) : args, {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const logs: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once("exit", (code, signal) => res({ code, signal })),
  );
  const started = new Promise<{ http: string; grpc: string; chainId: string }>((res, rej) => {
    const rl = createInterface({ input: child.stderr as NodeJS.ReadableStream });
    rl.on("line", (line) => {
      logs.push(line);
      onLine?.(line, child);
      try {
        const entry = JSON.parse(line) as {
          msg?: string;
          chainId?: string;
          addresses?: { otlp?: { http?: string; grpc?: string } };
        };
        if (entry.msg === "audit agent started") {
          res({
            http: entry.addresses?.otlp?.http ?? "",
            grpc: entry.addresses?.otlp?.grpc ?? "",
            chainId: entry.chainId ?? "",
          });
        }
      } catch {
        // not a log line
      }
    });
    exited.then(({ code, signal }) =>
      rej(new Error(`agent exited (${code ?? signal}) before serving:\n${logs.join("\n")}`)),
    );
  });
  const info = await started;
  return {
    child,
    httpUrl: info.http ? `http://${info.http}/v1/logs` : "",
    grpcAddress: info.grpc,
    chainId: info.chainId,
    logs,
    exited,
  };
}

/**
 * A temporary directory for each test, and child agents spawned in it (`spawn`: spawnAgent
 * there), killed and removed after the test whatever its outcome.
 */
export function childAgentPerTest() {
  let tmp: ReturnType<typeof makeTempDir> | null = null;
  let agent: ChildAgent | null = null;
  beforeEach(() => {
    tmp = makeTempDir();
  });
  afterEach(async () => {
    if (agent) await killAgent(agent);
    agent = null;
    tmp?.cleanup();
  });
  const dir = () => {
    if (!tmp) throw new Error("childAgentPerTest: used outside a test");
    return tmp.path;
  };
  return {
    get dir(): string {
      return dir();
    },
    async spawn(
      configYaml: string,
      extraArgs: string[] = [],
      env: Record<string, string> = {},
      onLine?: (line: string, child: ChildProcess) => void,
    ): Promise<ChildAgent> {
      if (agent) await killAgent(agent);
      agent = await spawnAgent(configYaml, dir(), extraArgs, env, false, onLine);
      return agent;
    },
  };
}

export async function killAgent(a: ChildAgent, signal: NodeJS.Signals = "SIGKILL") {
  if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill(signal);
  return a.exited;
}

/**
 * POSTs `count` audit records ("record <from>"…) as OTLP/JSON to `url` and returns the
 * HTTP status.
 */
export async function postAuditRecords(
  url: string,
  from: number,
  count: number,
  /** Random characters of padding in each body (incompressible), for records of a real size. */
  pad = 0,
  eventName = "audit.test",
  /** Extra request headers (an Authorization header). */
  headers: Record<string, string> = {},
): Promise<number> {
  const logRecords = Array.from({ length: count }, (_, k) => ({
    timeUnixNano: "1700000000000000000",
    severityNumber: 9,
    eventName,
    body: {
      stringValue: `record ${from + k}${pad > 0 ? ` ${randomBytes(pad).toString("base64").slice(0, pad)}` : ""}`,
    },
    attributes: [{ key: "audit", value: { boolValue: true } }],
  }));
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

/**
 * Sends `count` audit records ("record i: user u-i changed a setting", attribute rec.idx = i)
 * to a running agent, three per request, and waits until its first exporter delivered them
 * all (`what` names that exporter in a timeout). With `timed`, record i carries its own
 * timeUnixNano, a millisecond after record i − 1's.
 */
export async function deliverRecords(
  agent: RunningAgent,
  count: number,
  what: string,
  timed = false,
): Promise<void> {
  const url = `http://${agent.addresses().otlp?.http}/v1/logs`;
  for (let i = 0; i < count; i += 3) {
    const logRecords = Array.from({ length: Math.min(3, count - i) }, (_, k) => ({
      ...(timed
        ? { timeUnixNano: String(1_700_000_000_000_000_000n + BigInt(i + k) * 1_000_000n) }
        : {}),
      body: { stringValue: `record ${i + k}: user u-${i + k} changed a setting` },
      attributes: [
        { key: "audit", value: { boolValue: true } },
        { key: "rec.idx", value: { intValue: String(i + k) } },
      ],
    }));
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] }),
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`POST ${url} answered ${res.status}, not 200`);
  }
  await waitFor(() => agent.deliveries[0]?.deliveredThrough === count - 1, 20_000, what);
}

/**
 * `audit-agent verify` arguments for the file exporter's output under `dir` (`<dir>/out`),
 * trusting the test config's key (`<dir>/keys/signing.pub`), as JSON, without progress.
 */
export function verifyOutputArgs(dir: string, ...extra: string[]): string[] {
  return [
    "verify",
    "--source",
    `file:${join(dir, "out")}`,
    "--trust",
    join(dir, "keys", "signing.pub"),
    "--json",
    "--quiet",
    ...extra,
  ];
}

/**
 * `audit-agent ARGS` in a child process, asynchronously: for commands that talk to servers
 * running in the test's own process (a spawnSync would block them, and the command with it).
 */
export function runCli(
  args: string[],
  /** Its working directory, variables added to the test's, and a time limit (killed then). */
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        cwd: options.cwd,
        env: options.env ? { ...process.env, ...options.env } : undefined,
        timeout: options.timeoutMs,
      },
      (err, stdout, stderr) =>
        resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

// Starts the built agent as its own process on ephemeral ports with a temp data dir, and
// samples its CPU time, RSS and bytes written from /proc.
import { execSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const CLK_TCK = Number(execSync("getconf CLK_TCK").toString().trim()) || 100;
const ROOT = new URL("..", import.meta.url).pathname;

/**
 * The agent's config: defaults, a file exporter and the WAL under `dir`. With
 * `verification` (a duration such as "30s"), extensions.verification at that interval.
 */
export function configYaml(dir, { verification, grpcToken } = {}) {
  return `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
${grpcToken ? `        auth:\n          bearer_token: ${grpcToken}\n` : ""}      http:
        endpoint: 127.0.0.1:0
        max_request_body_size: 16777216
exporters:
  file:
    directory: ${join(dir, "out")}
extensions:
  wal:
    directory: ${join(dir, "wal")}
    max_size_mib: 1024
${process.env.BENCH_WAL_MEMORY_MIB ? `    memory_mib: ${process.env.BENCH_WAL_MEMORY_MIB}\n` : ""}  signing:
    key_file: ${join(dir, "keys", "signing.key")}
${verification ? `  verification:\n    interval: ${verification}\n` : ""}service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
    logs:
      level: warn
`;
}

/** Extra node flags for the agent, e.g. BENCH_AGENT_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
function nodeArgs() {
  return (process.env.BENCH_AGENT_NODE_ARGS ?? "").split(" ").filter(Boolean);
}

/**
 * The CLI's shebang (`#!/usr/bin/env -S [NAME=VALUE...] node FLAGS`): the environment and
 * node flags the agent runs with as deployed.
 */
function shebang(main) {
  const first = readFileSync(main, "utf8").split("\n", 1)[0];
  const words = (/^#!\/usr\/bin\/env -S (.*)$/.exec(first)?.[1] ?? "node")
    .split(" ")
    .filter(Boolean);
  const at = words.indexOf("node");
  const env = Object.fromEntries(words.slice(0, at).map((w) => w.split("=", 2)));
  return { env, args: words.slice(at + 1) };
}

/**
 * Starts the agent. Options: `dir`, a data dir an agent used before (its WAL, key and
 * output are kept; default a new one); `verification`, see configYaml; `onLog`, called with
 * each JSON log line the agent writes after it started.
 */
export async function startAgent({
  dir = mkdtempSync(join(tmpdir(), "audit-bench-")),
  verification,
  grpcToken,
  onLog,
} = {}) {
  const config = join(dir, "agent.yaml");
  writeFileSync(
    config,
    configYaml(dir, { verification, grpcToken }).replace("level: warn", "level: info"),
  );
  const main = join(ROOT, "dist/agent/cli/main.js");
  const { env, args } = shebang(main);
  const child = spawn(process.execPath, [...args, ...nodeArgs(), main, "run", "--config", config], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  const addresses = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stderr });
    let started = false;
    rl.on("line", (line) => {
      try {
        const e = JSON.parse(line);
        if (started) onLog?.(e);
        else if (e.msg === "audit agent started") {
          started = true;
          resolve({ ...e.addresses.otlp, metrics: e.addresses.metrics?.http });
        }
      } catch {
        // not a JSON log line
      }
    });
    child.once("exit", (code) => reject(new Error(`agent exited ${code}`)));
  });
  return {
    dir,
    pid: child.pid,
    http: addresses.http,
    grpc: addresses.grpc,
    /** The agent's Prometheus endpoint (host:port), for diagnostics. */
    metrics: addresses.metrics,
    sample: () => sampleProc(child.pid),
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
    outputRecords: () => countLines(join(dir, "out")),
    outputBytes: () => dirBytes(join(dir, "out")),
  };
}

export function sampleProc(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const writeBytes = Number(/write_bytes:\s+(\d+)/.exec(io)?.[1] ?? 0);
  return { at: performance.now(), cpuSeconds, rssMiB: rssKb / 1024, writeBytes };
}

function files(dir, re) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && re.test(entry.name))
      out.push(join(entry.parentPath ?? entry.path, entry.name));
  }
  return out;
}

export function countLines(dir) {
  let n = 0;
  try {
    for (const f of files(dir, /^records-.*\.ndjson$/)) {
      const buf = readFileSync(f);
      for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) n++;
    }
  } catch {
    return 0;
  }
  return n;
}

export function dirBytes(dir) {
  let n = 0;
  try {
    for (const f of files(dir, /./)) n += statSync(f).size;
  } catch {
    return 0;
  }
  return n;
}

// `npm run bench:sidecar [-- --quick]`: what the agent costs next to a pod at the loads
// services really send (issue 16), each on a fresh agent as installed (its shebang's flags):
// idle, a trickle of 20 requests/s of 1 record, 1,000 and 10,000 records/s in requests of
// 100, and 10,000 records/s right after a saturation run on the same agent (is memory given
// back?). Each loaded row runs its load WARM_UP seconds before it counts, and reports that
// warm-up's first request apart ("first ack"): the figures are the steady state. Prints a table with the issue's targets and writes the "Sidecar loads" section of
// RESULTS.md (unless --no-write). BENCH_WAL_MEMORY_MIB sets extensions.wal.memory_mib, for
// A/B runs; `--only NAME` runs one row and writes nothing.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { startAgent } from "./agent-proc.mjs";

const run = promisify(execFile);
const HERE = new URL(".", import.meta.url).pathname;
const quick = process.argv.includes("--quick");
const SECONDS = quick ? 8 : 20;
const WARM_UP = 2;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The issue's targets: null where it sets none. */
const TARGETS = {
  idle: { cpu: 0.5, rss: 55 },
  trickle: { p50: 1, p99: 5 },
  "1k/s": { cpu: 3, rss: 80, p99: 5 },
  "10k/s": { cpu: 15, rss: 100, p99: 10 },
  "10k/s over gRPC": { cpu: 15, rss: 100, p99: 10 },
  "10k/s after saturation": { cpu: 15, rss: 100, p99: 10 },
};

async function loadgen(options) {
  const { stdout } = await run(
    process.execPath,
    [join(HERE, "loadgen.mjs"), JSON.stringify(options)],
    {
      maxBuffer: 1 << 20,
    },
  );
  return JSON.parse(stdout);
}

/**
 * Load `c` on `agent`, sampling its CPU and RSS every 250 ms once the warm-up is over (the
 * load generator's own start-up is in the warm-up too).
 */
async function measure(agent, c) {
  const load = c
    ? loadgen({
        ...c,
        target: c.protocol === "grpc" ? agent.grpc : agent.http,
        duration: SECONDS,
        warmUp: WARM_UP,
      })
    : sleep(SECONDS * 1000);
  if (c) await sleep(WARM_UP * 1000 + 250);
  const samples = [agent.sample()];
  const timer = setInterval(() => samples.push(agent.sample()), 250);
  const r = await load;
  clearInterval(timer);
  const end = agent.sample();
  const first = samples[0];
  const rss = samples.map((s) => s.rssMiB).concat(end.rssMiB);
  return {
    cpu: ((end.cpuSeconds - first.cpuSeconds) / ((end.at - first.at) / 1000)) * 100,
    rss: Math.max(...rss),
    p50: r?.p50 ?? null,
    p99: r?.p99 ?? null,
    first: r?.first ?? null,
    recordsPerSec: r?.recordsPerSec ?? null,
    errors: r ? r.errors + r.refused : 0,
  };
}

const http = (size, rate, concurrency = 1) => ({
  protocol: "http-proto",
  size,
  concurrency,
  auditRatio: 1,
  rate,
});

async function fresh(name, c, before) {
  const agent = await startAgent();
  try {
    await sleep(2000);
    if (before) await loadgen({ ...before, target: agent.http, duration: quick ? 5 : 10 });
    return { name, ...(await measure(agent, c)) };
  } finally {
    await agent.stop();
    agent.cleanup();
  }
}

const ROWS = [
  ["idle", null],
  ["trickle", http(1, 20)],
  ["1k/s", http(100, 1000)],
  ["10k/s", http(100, 10_000, 2)],
  ["10k/s over gRPC", { ...http(100, 10_000, 2), protocol: "grpc" }],
  ["10k/s after saturation", http(100, 10_000, 2), http(512, undefined, 8)],
];
// `--only NAME` (repeatable): those rows alone, for A/B runs.
const only = process.argv.flatMap((a, i) => (process.argv[i - 1] === "--only" ? [a] : []));
const rows = [];
for (const [name, c, before] of ROWS)
  if (only.length === 0 || only.includes(name)) rows.push(await fresh(name, c, before));

const fmt = (n, d = 1) => (n === null || n === undefined ? "–" : Number(n).toFixed(d));
const verdict = (row) => {
  const t = TARGETS[row.name] ?? {};
  const missed = Object.entries(t).filter(([k, v]) => row[k] !== null && row[k] > v);
  return missed.length === 0
    ? "met"
    : `missed: ${missed.map(([k, v]) => `${k} ${fmt(row[k])} > ${v}`).join(", ")}`;
};
const target = (row) =>
  Object.entries(TARGETS[row.name] ?? {})
    .map(([k, v]) => `${k} ≤ ${v}${k === "rss" ? " MiB" : k === "cpu" ? " %" : " ms"}`)
    .join(", ");
const table = [
  "| load | records/s | CPU % of a core | peak RSS MiB | ack p50 ms | ack p99 ms | first ack ms | errors | targets | |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
  ...rows.map(
    (r) =>
      `| ${r.name} | ${fmt(r.recordsPerSec, 0)} | ${fmt(r.cpu)} | ${fmt(r.rss)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.first, 1)} | ${r.errors} | ${target(r)} | ${verdict(r)} |`,
  ),
].join("\n");
console.log(table);

if (!process.argv.includes("--no-write") && only.length === 0) {
  const memory = process.env.BENCH_WAL_MEMORY_MIB ?? "40 (default)";
  const section = `## Sidecar loads (issue 16)

\`npm run bench:sidecar${quick ? " -- --quick" : ""}\` on ${new Date().toISOString().slice(0, 10)} (2 cores, Node ${process.version}; ${SECONDS} s per row, a fresh agent per row as installed, OTLP/HTTP protobuf of ~400-byte records, \`extensions.wal.memory_mib\` ${memory}). Script: [sidecar-loads.mjs](sidecar-loads.mjs). "after saturation": the same agent first took ${quick ? 5 : 10} s of 512 × 8 as fast as it could. Each loaded row runs its load ${WARM_UP} s before it counts; "first ack" is the first request of that warm-up (a fresh agent's and client's cold path: JIT, connection set-up), which the other figures leave out.

${table}
`;
  const path = join(HERE, "RESULTS.md");
  const text = readFileSync(path, "utf8");
  const start = text.indexOf("## Sidecar loads (issue 16)");
  const next = start < 0 ? -1 : text.indexOf("\n## ", start + 1);
  const old = start < 0 ? "" : text.slice(start, next < 0 ? undefined : next + 1);
  // Notes written under the table by hand (A/B runs, findings) are kept.
  const lines = old.split("\n");
  const lastRow = lines.findLastIndex((l) => l.startsWith("|"));
  const notes =
    lastRow < 0
      ? ""
      : lines
          .slice(lastRow + 1)
          .join("\n")
          .trim();
  const body = notes ? `${section}\n${notes}\n` : section;
  const updated =
    start < 0
      ? `${text.trimEnd()}\n\n${body}`
      : `${text.slice(0, start)}${body}${next < 0 ? "" : `\n${text.slice(next + 1)}`}`;
  writeFileSync(path, updated);
}

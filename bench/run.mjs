// `npm run bench [-- --quick]`: end-to-end durable ingest of the built agent, driven by a
// load generator in its own process, against the floors measured in the same run.
// Then the witness under 1,000 add-checkpoint requests/s from 200 logs (witness-load.mjs),
// and last the sidecar's costs at the loads services send (sidecar-loads.mjs, issue 16's
// targets), which rewrites its own section of RESULTS.md.
// Prints a table and rewrites bench/RESULTS.md (keeping a history of headline numbers).
import { execFile } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { execSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { readTrustedKeys } from "../dist/agent/integrity/key-files.js";
import { fileSource } from "../dist/agent/exporters/file/reader.js";
import { verifySource } from "../dist/agent/verify/verify.js";
import { startAgent } from "./agent-proc.mjs";
import { measureFloors } from "./floors.mjs";
import { formatMarkdown } from "./micro/lib.mjs";
import {
  measureWitnessFloor,
  runWitnessLoad,
  witnessMisses,
  witnessSection,
} from "./witness-load.mjs";

const run = promisify(execFile);
const quick = process.argv.includes("--quick");
// `--case http-proto:512x8:all` (or `:10%`, optional `@10000` rate) runs that one case and
// prints it without rewriting RESULTS.md: for profiling and before/after comparisons.
const onlyCase = parseCase(process.argv[process.argv.indexOf("--case") + 1]);

function parseCase(spec) {
  if (!process.argv.includes("--case")) return null;
  const m = /^(http-proto|http-json|grpc):(\d+)x(\d+):(all|10%)(?:@(\d+))?$/.exec(spec ?? "");
  if (!m) {
    console.error(
      "--case takes protocol:SIZExCONCURRENCY:all|10%[@rate], e.g. http-proto:512x8:all",
    );
    process.exit(2);
  }
  return {
    protocol: m[1],
    size: Number(m[2]),
    concurrency: Number(m[3]),
    auditRatio: m[4] === "all" ? 1 : 0.1,
    ...(m[5] ? { rate: Number(m[5]) } : {}),
  };
}
const HERE = new URL(".", import.meta.url).pathname;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function loadgen(options) {
  const { stdout } = await run(
    process.execPath,
    [join(HERE, "loadgen.mjs"), JSON.stringify(options)],
    { maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout);
}

async function idle(seconds) {
  const agent = await startAgent();
  await sleep(2000);
  const a = agent.sample();
  await sleep(seconds * 1000);
  const b = agent.sample();
  await agent.stop();
  agent.cleanup();
  return {
    rssMiB: b.rssMiB,
    cpuPercent: ((b.cpuSeconds - a.cpuSeconds) / ((b.at - a.at) / 1000)) * 100,
  };
}

async function runCase(c, { verify = false } = {}) {
  const agent = await startAgent();
  const samples = [agent.sample()];
  const timer = setInterval(() => samples.push(agent.sample()), 250);
  const target = c.protocol === "grpc" ? agent.grpc : agent.http;
  const result = await loadgen({ ...c, target });
  clearInterval(timer);
  const end = agent.sample();
  // Taken with `end`, so WAL bytes are not charged for output written while catching up.
  const outBytes = agent.outputBytes();
  const ackedAudit = Math.round(result.requests * c.size * c.auditRatio);
  const backlogAtEnd = ackedAudit - agent.outputRecords();
  let caughtUp = backlogAtEnd <= 0;
  const waitStart = performance.now();
  while (!caughtUp && performance.now() - waitStart < 30_000) {
    await sleep(250);
    caughtUp = agent.outputRecords() >= ackedAudit;
  }
  const catchUpSec = (performance.now() - waitStart) / 1000;
  const first = samples[0];
  const cpu = end.cpuSeconds - first.cpuSeconds;
  const elapsed = (end.at - first.at) / 1000;
  const rss = samples.map((s) => s.rssMiB);
  const steady = rss.slice(Math.floor(rss.length / 2)).sort((x, y) => x - y);
  const records = result.requests * c.size;
  let verifyPerSec = null;
  await agent.stop();
  if (verify) {
    const trusted = readTrustedKeys([join(agent.dir, "keys", "signing.pub")]);
    const t0 = performance.now();
    const report = await verifySource(fileSource(join(agent.dir, "out")), trusted);
    const n = report.chains.reduce((s, ch) => s + ch.records, 0);
    verifyPerSec = {
      recordsPerSec: n / ((performance.now() - t0) / 1000),
      ok: report.ok,
      records: n,
    };
  }
  agent.cleanup();
  return {
    ...c,
    recordsPerSec: result.recordsPerSec,
    auditPerSec: result.auditPerSec,
    refused: result.refused,
    errors: result.errors,
    p50: result.p50,
    p99: result.p99,
    max: result.max,
    cpuPercent: (cpu / elapsed) * 100,
    cpuMsPer10k: records > 0 ? (cpu / records) * 10_000 * 1000 : 0,
    peakRssMiB: Math.max(...rss),
    steadyRssMiB: steady[Math.floor(steady.length / 2)] ?? 0,
    walBytesPerRecord:
      ackedAudit > 0 ? Math.max(0, end.writeBytes - first.writeBytes - outBytes) / ackedAudit : 0,
    backlogAtEnd: Math.max(0, backlogAtEnd),
    // Kept up: no more left at the end than arrives within the batch timeout (1 s) plus half
    // a second to seal and write it, and all of it out within the wait.
    keptUp: backlogAtEnd <= Math.max(c.size * 64, result.auditPerSec * 1.5) && caughtUp,
    catchUpSec: caughtUp ? catchUpSec : null,
    verify: verifyPerSec,
  };
}

function machine() {
  const cpuModel = cpus()[0]?.model ?? "unknown";
  let disk = "unknown";
  try {
    disk = execSync(`df -hT ${process.env.TMPDIR ?? "/tmp"} | tail -1`)
      .toString()
      .trim()
      .split(/\s+/)
      .slice(0, 3)
      .join(" ");
  } catch {
    // df unavailable: leave "unknown"
  }
  return {
    cores: cpus().length,
    cpuModel,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    disk,
  };
}

const fmt = (n, d = 0) =>
  n === null || n === undefined
    ? "–"
    : Number(n).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

async function main() {
  const duration = quick ? 5 : 20;
  if (onlyCase) {
    const r = await runCase(
      { ...onlyCase, duration },
      { verify: process.argv.includes("--verify") },
    );
    console.log(JSON.stringify(r, null, 1));
    return;
  }
  console.log(`benchmark (${quick ? "quick" : "full"}): ${duration} s per case`);
  const floors = await measureFloors(quick ? 1500 : 4000);
  console.log(
    `floors (records/s): decode ${fmt(floors.decode)}, canonicalize+hash ${fmt(floors.canonHash)}, synced LevelDB ${fmt(floors.leveldb)} → pipeline ${fmt(floors.pipeline)}; fast path ${fmt(floors.fastCanonHash)} → pipeline ${fmt(floors.fastPipeline)}`,
  );
  const idleResult = await idle(quick ? 5 : 15);
  console.log(`idle: RSS ${fmt(idleResult.rssMiB, 1)} MiB, CPU ${fmt(idleResult.cpuPercent, 2)} %`);

  const cases = [];
  if (quick) {
    cases.push(
      { protocol: "http-proto", size: 512, concurrency: 8, auditRatio: 1 },
      { protocol: "grpc", size: 512, concurrency: 8, auditRatio: 1 },
      { protocol: "http-json", size: 512, concurrency: 8, auditRatio: 1 },
      { protocol: "http-proto", size: 512, concurrency: 8, auditRatio: 0.1 },
      { protocol: "http-proto", size: 1, concurrency: 8, auditRatio: 1 },
    );
  } else {
    for (const protocol of ["http-proto", "http-json", "grpc"])
      for (const size of [1, 100, 512])
        for (const concurrency of [1, 8, 32])
          for (const auditRatio of [1, 0.1])
            cases.push({ protocol, size, concurrency, auditRatio });
  }
  const results = [];
  for (const c of cases) {
    const headline =
      c.protocol === "http-proto" && c.size === 512 && c.concurrency === 8 && c.auditRatio === 1;
    const r = await runCase({ ...c, duration }, { verify: headline });
    results.push(r);
    console.log(
      `${c.protocol.padEnd(10)} ${String(c.size).padStart(3)}×${String(c.concurrency).padEnd(2)} ${c.auditRatio === 1 ? "all" : "10%"}: ${fmt(r.recordsPerSec).padStart(7)} rec/s, p99 ${fmt(r.p99, 1)} ms, CPU ${fmt(r.cpuPercent)} %, RSS ${fmt(r.peakRssMiB)} MiB, backlog ${fmt(r.backlogAtEnd)}`,
    );
  }
  const steady = await runCase({
    protocol: "http-proto",
    size: 512,
    concurrency: 8,
    auditRatio: 1,
    rate: 10_000,
    duration: quick ? 10 : 30,
  });
  console.log(
    `steady 10k/s: p99 ${fmt(steady.p99, 1)} ms, CPU ${fmt(steady.cpuPercent, 1)} %, RSS ${fmt(steady.peakRssMiB)} MiB`,
  );
  // The witness (issue 15): 1,000 add-checkpoint requests/s from 200 logs, p99 < 50 ms.
  const witnessFloor = await measureWitnessFloor(quick ? 500 : 1000);
  const witness = await runWitnessLoad({ rate: 1000, logs: 200, duration: quick ? 5 : 10 });
  const witnessMissed = witnessMisses(witness);
  console.log(
    `witness 1k/s: ${fmt(witness.achievedPerSec)} req/s, p99 ${fmt(witness.p99, 1)} ms, not 200: ${fmt(witness.errors)}, CPU ${fmt(witness.cpuPercent)} %, RSS ${fmt(witness.peakRssMiB)} MiB: ${witnessMissed.length === 0 ? "target met" : `target missed (${witnessMissed.join("; ")})`}`,
  );
  await writeResults({
    floors,
    idle: idleResult,
    results,
    steady,
    quick,
    witness: witnessSection(witness, witnessFloor, `npm run bench${quick ? " -- --quick" : ""}`),
    witnessHeadline: `witness 1k/s p99 ${fmt(witness.p99, 1)} ms`,
  });
}

async function writeResults({
  floors,
  idle: idleResult,
  results,
  steady,
  quick: q,
  witness,
  witnessHeadline,
}) {
  const m = machine();
  const date = new Date().toISOString().slice(0, 10);
  const head = results.find(
    (r) =>
      r.protocol === "http-proto" && r.size === 512 && r.concurrency === 8 && r.auditRatio === 1,
  );
  const grpc = results.find(
    (r) => r.protocol === "grpc" && r.size === 512 && r.concurrency === 8 && r.auditRatio === 1,
  );
  const ratio = head ? head.auditPerSec / floors.pipeline : null;
  const fastRatio = head ? head.auditPerSec / floors.fastPipeline : null;
  const table = [
    "| protocol | size × conc | audit | records/s | audit/s | p50 ms | p99 ms | max ms | CPU % | CPU ms/10k | peak RSS MiB | steady RSS MiB | WAL B/rec | backlog at end | exporter kept up |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ...results.map(
      (r) =>
        `| ${r.protocol} | ${r.size} × ${r.concurrency} | ${r.auditRatio === 1 ? "all" : "10%"} | ${fmt(r.recordsPerSec)} | ${fmt(r.auditPerSec)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${fmt(r.max, 1)} | ${fmt(r.cpuPercent)} | ${fmt(r.cpuMsPer10k)} | ${fmt(r.peakRssMiB)} | ${fmt(r.steadyRssMiB)} | ${fmt(r.walBytesPerRecord)} | ${fmt(r.backlogAtEnd)} | ${r.keptUp ? "yes" : `no${r.catchUpSec ? ` (caught up in ${fmt(r.catchUpSec, 1)} s)` : ""}`} |`,
    ),
  ].join("\n");
  const headline = `${date} (${q ? "quick" : "full"}): HTTP/protobuf 512×8 ${fmt(head?.auditPerSec)} rec/s (${fmt(ratio, 2)} of floor ${fmt(floors.pipeline)}), gRPC ${fmt(grpc?.auditPerSec)} rec/s, 10k/s p99 ${fmt(steady.p99, 1)} ms at ${fmt(steady.cpuPercent, 1)} % CPU, idle ${fmt(idleResult.rssMiB)} MiB, verify ${fmt(head?.verify?.recordsPerSec)} rec/s, ${witnessHeadline}`;
  const path = join(HERE, "RESULTS.md");
  const previous = existsSync(path) ? readFileSync(path, "utf8") : "";
  const history = (previous.split("## History\n")[1] ?? "")
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("- "));
  // Sections other tools write (bench:micro, bench:verify, before/after comparisons) are kept
  // as they are; only this script's own sections are rewritten.
  const own = /^(Floors measured in this run|Headline|All cases|Witness under load|History)/;
  const micro = previous
    .split(/\n(?=## )/)
    .filter((section) => section.startsWith("## ") && !own.test(section.slice(3)))
    .map((section) => section.trimEnd())
    .join("\n\n");
  const md = `# Benchmark results

Generated by \`npm run bench${q ? " -- --quick" : ""}\` on ${date}. Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, disk ${m.disk}.
The agent runs as its own process (defaults, file exporter, signed batches); the load generator runs in another process.
Records are realistic audit records (8 attributes, a 200-byte body, a resource with 5 attributes): ${fmt(floors.recordBytes)} bytes of canonical JSON each.

Where a target is missed, [ANALYSIS.md](ANALYSIS.md) explains why, from CPU profiles, and what would close the gap.

## Floors measured in this run (records/s)

| stage | records/s | note |
| --- | ---: | --- |
| OTLP protobuf decode (protobufjs 7) | ${fmt(floors.decode)} | 512-record requests |
| canonicalize + leaf hash (node:crypto SHA-256) | ${fmt(floors.canonHash)} | schema-specific RFC 8785 writer |
| synced LevelDB batch write | ${fmt(floors.leveldb)} | batches of 512, \`sync: true\`; a single synced write: ${fmt(floors.singleSyncPerSec)}/s |
| **floor pipeline** (the three in sequence) | **${fmt(floors.pipeline)}** | end-to-end is reported as a ratio of this |
| OTLP protobuf → canonical record + leaf hash, fast path (ProtobufCanonicalizer) | ${fmt(floors.fastCanonHash)} | what the agent runs on OTLP/protobuf: decode, audit filter and canonical bytes in one pass; envelope and leaf hash as the WAL's chaining does |
| **floor pipeline, fast path** (that, then the synced LevelDB write) | **${fmt(floors.fastPipeline)}** | the agent's own path: the fair floor for the protobuf cases |
| SHA-256 of one record, node:crypto | ${fmt(floors.shaNode)} | chosen for the hot path |
| SHA-256 of one record, @noble/hashes | ${fmt(floors.shaNoble)} | pure JS: ${fmt(floors.shaNode / floors.shaNoble, 1)}× slower |
| generic RFC 8785 canonicalizer (parse + canonicalize) | ${fmt(floors.genericJcs)} | why the hot path writes canonical JSON directly |

## Headline

- Durable ingest, OTLP/HTTP protobuf, 512 records/request, concurrency 8, all audit: **${fmt(head?.auditPerSec)} records/s = ${fmt(ratio, 2)} of the floor pipeline** (target ≥ 50,000 and ≥ 0.6); ${fmt(fastRatio, 2)} of the fast-path floor pipeline.
- OTLP/gRPC, same case: **${fmt(grpc?.auditPerSec)} records/s** (target ≥ 35,000).
- Steady 10,000 records/s (512 per request): p99 ack ${fmt(steady.p99, 1)} ms, agent CPU ${fmt(steady.cpuPercent, 1)} % of one core, peak RSS ${fmt(steady.peakRssMiB)} MiB (targets < 20 ms, < 20 %, < 100 MiB); exporter kept up: ${steady.keptUp ? "yes" : "no"}.
- Idle after start-up: RSS ${fmt(idleResult.rssMiB, 1)} MiB, CPU ${fmt(idleResult.cpuPercent, 2)} % (targets < 60 MiB, < 1 %).
- \`verify\` over the headline case's output: ${fmt(head?.verify?.recordsPerSec)} records/s over ${fmt(head?.verify?.records)} records (${head?.verify?.ok ? "clean" : "FINDINGS"}) (target ≥ 100,000).

## All cases (${q ? "5" : "20"} s each)

${table}

WAL bytes per record are the agent's bytes written to disk (\`/proc/PID/io\`) minus the file exporter's output, per audit record: LevelDB's log and compaction writes.
"Exporter kept up" means that when the load stopped, the records not yet in the exporter's output were at most what arrives within the batch timeout (1 s) plus half a second, and all of them were out soon after; otherwise the time it took to catch up is given.

${witness.trimEnd()}

${micro ? `${micro}\n\n` : ""}## History

${[`- ${headline}`, ...history].slice(0, 20).join("\n")}
`;
  writeFileSync(path, await formatMarkdown(md, path));
  console.log(`\n${headline}\nwrote ${path}`);
}

await main();
if (!onlyCase) {
  const args = [join(HERE, "sidecar-loads.mjs"), ...(quick ? ["--quick"] : [])];
  const { stdout } = await run(process.execPath, args, { maxBuffer: 1 << 20 });
  console.log(`\nSidecar loads\n${stdout}`);
}

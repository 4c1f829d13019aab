// `npm run bench:witness [-- --quick] [--duration S] [--rate N] [--logs N] [--profile DIR] [--no-write]`:
// the witness (`audit-agent witness`, the built CLI run through its shebang as a user runs it)
// under a fixed offered load of add-checkpoint requests from many logs (issue 15: 1,000
// requests/s with p99 < 50 ms). The logs are the origins bench.example/log-<i> of one
// origin_prefix entry signed by one agent key; each request grows its log's tree by 1-4
// leaves, with the real consistency proof from the size the witness last cosigned. Bodies are
// made before the timed phase; requests are released on a fixed schedule whatever the
// responses (open loop), round-robin over the logs, each log on its own keep-alive
// connection (one agent each) and never with two requests of one log in flight (an agent
// waits for its answer; a log whose slot comes while its last request is still out sends
// right after it, and that wait counts in the latency from due). After a warm-up, latencies
// (send → response and due → response), the achieved rate, every answer but 200, and the
// witness's CPU and RSS (/proc) are measured; the floor is the same run's cost of what the
// witness must do per request whatever its HTTP and JS: one Ed25519 verify and sign, and its
// own durable save of the state file (StateStore.save: temporary file, fsync, rename, fsync of
// the directory). Prints a table, writes the "Witness under load" section of RESULTS.md
// (unless --no-write), and exits 1 when p99 ≥ 50 ms, the rate < 95 % of offered or any answer
// is not 200. With --profile DIR the witness runs with --cpu-prof (summarize with
// `node bench/verify-scale.mjs --summarize FILE`).
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Client } from "undici";
import { cosignerKeyOf } from "../dist/agent/integrity/cosignature.js";
import { leafHash } from "../dist/agent/integrity/format.js";
import { writeKeyPair } from "../dist/agent/integrity/key-files.js";
import { consistencyProof, memoLeavesSource, treeHash } from "../dist/agent/integrity/merkle.js";
import { checkpointText, signNote } from "../dist/agent/integrity/note.js";
import { generateSigningKey, signBytes, verifyBytes } from "../dist/agent/integrity/signing.js";
import { StateStore } from "../dist/agent/witness/state.js";
import { sampleProc } from "./agent-proc.mjs";

const HERE = new URL(".", import.meta.url).pathname;
const CLI = join(HERE, "..", "dist/agent/cli/main.js");
const PREFIX = "bench.example/";
export const TARGETS = { p99Ms: 50, rateShare: 0.95 };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (n, d = 0) =>
  n === null || n === undefined || Number.isNaN(n)
    ? "–"
    : Number(n).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const quantile = (sorted, p) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

/** mulberry32: the leaves each request adds, the same every run. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Log `i` with `steps` checkpoints after size 0, each 1-4 leaves larger, signed by `key`, and
 * the add-checkpoint body of each step from the one before.
 */
async function makeLog(i, steps, key) {
  const next = rng(i + 1);
  const sizes = [0];
  for (let k = 1; k <= steps; k++) sizes.push(sizes[k - 1] + 1 + Math.floor(next() * 4));
  const origin = `${PREFIX}log-${i}`;
  const leaves = Array.from({ length: sizes[steps] }, (_, j) =>
    leafHash(Buffer.from(`${origin} leaf ${j}`)),
  );
  const log = { origin, sizes, source: memoLeavesSource(leaves), notes: [""], bodies: [null] };
  for (let k = 1; k <= steps; k++) {
    const rootHash = Buffer.from(await treeHash(sizes[k], log.source));
    const text = checkpointText({ origin, size: sizes[k], rootHash, extensions: [] });
    log.notes.push(signNote(text, [key]));
    log.bodies.push(await bodyOf(log, sizes[k - 1], k));
  }
  return { ...log, step: 0, acked: 0, resync: false, tail: Promise.resolve() };
}

/** add-checkpoint from `oldSize` to the log's checkpoint of step `k`, with its proof. */
async function bodyOf(log, oldSize, k) {
  const proof = await consistencyProof(oldSize, log.sizes[k], log.source);
  const lines = proof.map((h) => `${Buffer.from(h).toString("base64")}\n`).join("");
  return Buffer.from(`old ${oldSize}\n${lines}\n${log.notes[k]}`);
}

function configYaml(dir, agentKey) {
  return `witness:
  key_file: ${JSON.stringify(join(dir, "witness.key"))}
  state_dir: ${JSON.stringify(join(dir, "state"))}
  listen: 127.0.0.1:0
  logs:
    - origin_prefix: ${JSON.stringify(PREFIX)}
      keys: [${JSON.stringify(agentKey.public.verifierKey)}]
`;
}

/** Runs the built CLI through its shebang; resolves once it logged "witness started". */
async function startWitness(dir, profileDir) {
  const config = join(dir, "witness.yaml");
  const args = ["witness", "--config", config];
  // Profiled: the shebang's command (`/usr/bin/env -S … node FLAGS`) with --cpu-prof added,
  // which NODE_OPTIONS does not take.
  const shebang = readFileSync(CLI, "utf8").split("\n", 1)[0].slice(2);
  const at = shebang.indexOf(" ");
  const child = profileDir
    ? spawn(
        shebang.slice(0, at),
        [`${shebang.slice(at + 1)} --cpu-prof --cpu-prof-dir=${profileDir}`, CLI, ...args],
        { stdio: ["ignore", "ignore", "pipe"] },
      )
    : spawn(CLI, args, { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise((r) => child.once("exit", (code, signal) => r(code ?? signal)));
  const lines = [];
  const address = await new Promise((resolve, reject) => {
    createInterface({ input: child.stderr }).on("line", (line) => {
      lines.push(line);
      if (line.includes('"witness started"')) resolve(JSON.parse(line).address);
    });
    exited.then((how) => reject(new Error(`the witness exited (${how}):\n${lines.join("\n")}`)));
  });
  return {
    pid: child.pid,
    address,
    /** Its log lines after "witness started" that are warnings or errors. */
    problems: () => lines.filter((l) => /"level":(40|50|60)/.test(l)),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

/** The witness's costs per request that no implementation avoids, each alone, in this process. */
export async function measureWitnessFloor(ms = 1000) {
  const key = generateSigningKey(`${PREFIX}floor`);
  const origin = `${PREFIX}floor`;
  const rootHash = leafHash(Buffer.from("x"));
  const text = Buffer.from(checkpointText({ origin, size: 1, rootHash, extensions: [] }));
  const signature = signBytes(key, text);
  const perOpUs = (fn) => {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms / 4) {
      fn();
      n++;
    }
    return ((performance.now() - t0) * 1000) / n;
  };
  const signUs = perOpUs(() => signBytes(key, text));
  const verifyUs = perOpUs(() => verifyBytes(key.public, text, signature));

  const dir = mkdtempSync(join(tmpdir(), "bench-witness-floor-"));
  try {
    const store = await StateStore.open(dir);
    // A state as large as the load's: the log's note and the witness's cosignature line.
    const note = `${signNote(text.toString(), [key])}\u2014 ${PREFIX}witness ${"A".repeat(104)}\n`;
    const state = (origin, size) => ({ origin, size, rootHash: Buffer.alloc(32), time: 1, note });
    const saves = [];
    let size = 0;
    let t0 = performance.now();
    while (performance.now() - t0 < ms / 2) {
      const t = performance.now();
      await store.save(state(origin, ++size));
      saves.push(performance.now() - t);
    }
    saves.sort((a, b) => a - b);
    // Saves of different logs in parallel, as the witness's requests of different logs are.
    let parallel = 0;
    t0 = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        while (performance.now() - t0 < ms / 4) {
          await store.save(state(`${origin}-${w}`, ++size));
          parallel++;
        }
      }),
    );
    const parallelPerSec = parallel / ((performance.now() - t0) / 1000);
    const saveMeanMs = saves.reduce((s, x) => s + x, 0) / saves.length;
    return {
      signUs,
      verifyUs,
      saveP50Ms: quantile(saves, 0.5),
      saveP99Ms: quantile(saves, 0.99),
      /** One request after another: verify, sign, save. */
      serialPerSec: 1000 / (saveMeanMs + (signUs + verifyUs) / 1000),
      parallelSavesPerSec: parallelPerSec,
      stateBytes: statSync(join(dir, readdirSync(dir)[0])).size,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs the load: `rate` add-checkpoint requests/s over `logs` logs for `warmup` + `duration`
 * seconds; only requests due after the warm-up are measured.
 */
export async function runWitnessLoad({
  rate = 1000,
  logs: logCount = 200,
  warmup = 2,
  duration = 10,
  profileDir = null,
} = {}) {
  const dir = mkdtempSync(join(tmpdir(), "bench-witness-"));
  const agentKey = generateSigningKey(PREFIX.slice(0, -1));
  const total = Math.round(rate * (warmup + duration));
  const steps = Math.ceil(total / logCount);
  let witness = null;
  const clients = [];
  try {
    const witnessKey = generateSigningKey(`${PREFIX}witness`);
    writeKeyPair(join(dir, "witness.key"), witnessKey, cosignerKeyOf(witnessKey).verifierKey);
    writeFileSync(join(dir, "witness.yaml"), configYaml(dir, agentKey));
    const t = performance.now();
    const logs = [];
    for (let i = 0; i < logCount; i++) logs.push(await makeLog(i, steps, agentKey));
    const prepSeconds = (performance.now() - t) / 1000;
    if (profileDir) mkdirSync(profileDir, { recursive: true });
    witness = await startWitness(dir, profileDir);
    for (let i = 0; i < logCount; i++)
      clients.push(new Client(`http://${witness.address}`, { pipelining: 1 }));
    const result = await drive({ witness, logs, clients, rate, total, warmupMs: warmup * 1000 });
    const problems = witness.problems();
    await witness.stop();
    return {
      rate,
      logs: logCount,
      warmup,
      duration,
      prepSeconds,
      maxTreeSize: Math.max(...logs.map((l) => l.sizes[l.step])),
      witnessProblems: problems,
      ...result,
    };
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await witness?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The open-loop schedule: request i is due at start + i / rate, to log i mod logs. */
async function drive({ witness, logs, clients, rate, total, warmupMs }) {
  const interval = 1000 / rate;
  const start = performance.now() + 20;
  const windowStart = start + warmupMs;
  const measured = []; // { due, sent, done, status }
  const answers = new Map(); // status → count, measured requests only
  const send = (i, due) => {
    const log = logs[i % logs.length];
    const client = clients[i % logs.length];
    const k = ++log.step;
    const entry = { due, sent: 0, done: 0, status: 0 };
    if (due >= windowStart) measured.push(entry);
    log.tail = log.tail.then(async () => {
      let text = "";
      try {
        const body = log.resync ? await bodyOf(log, log.acked, k) : log.bodies[k];
        entry.sent = performance.now();
        const res = await client.request({
          path: "/add-checkpoint",
          method: "POST",
          headers: { "content-type": "text/plain" },
          body,
        });
        text = await res.body.text();
        entry.status = res.statusCode;
      } catch (err) {
        entry.status = err.code ?? "error";
      }
      entry.done = performance.now();
      if (entry.status === 200) log.acked = log.sizes[k];
      else if (entry.status === 409) log.acked = Number(text);
      // Anything else: the next request of the log starts from what the witness said it has.
      log.resync = entry.status !== 200;
    });
  };

  const samples = [];
  let first = null;
  let nextSample = 0;
  let next = 0;
  let lateMs = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      if (first === null && now >= windowStart) first = sampleProc(witness.pid);
      if (first !== null && now >= nextSample) {
        samples.push(sampleProc(witness.pid).rssMiB);
        nextSample = now + 250;
      }
      while (next < total && start + next * interval <= now) {
        const due = start + next * interval;
        lateMs = Math.max(lateMs, now - due);
        send(next++, due);
      }
      if (next < total) setTimeout(tick, Math.max(0, Math.min(start + next * interval - now, 250)));
      else resolve();
    };
    setTimeout(tick, Math.max(0, start - performance.now()));
  });
  // Every log's last request answered (or 30 s: then they count as not answered).
  await Promise.race([Promise.all(logs.map((l) => l.tail)), sleep(30_000)]);
  const end = sampleProc(witness.pid);
  samples.push(end.rssMiB);

  for (const m of measured) answers.set(m.status, (answers.get(m.status) ?? 0) + 1);
  const ok = measured.filter((m) => m.status === 200);
  const latency = ok.map((m) => m.done - m.sent).sort((a, b) => a - b);
  const fromDue = ok.map((m) => m.done - m.due).sort((a, b) => a - b);
  const lastDone = Math.max(...measured.map((m) => m.done || Infinity));
  const seconds = (Math.max(lastDone, windowStart) - windowStart) / 1000;
  return {
    offered: measured.length,
    ok: ok.length,
    errors: measured.length - ok.length,
    answers: Object.fromEntries(answers),
    achievedPerSec: ok.length / seconds,
    windowSeconds: seconds,
    p50: quantile(latency, 0.5),
    p99: quantile(latency, 0.99),
    max: latency[latency.length - 1] ?? 0,
    dueP99: quantile(fromDue, 0.99),
    dueMax: fromDue[fromDue.length - 1] ?? 0,
    generatorLateMs: lateMs,
    cpuPercent: ((end.cpuSeconds - first.cpuSeconds) / ((end.at - first.at) / 1000)) * 100,
    peakRssMiB: Math.max(...samples),
  };
}

/** What the targets say about `r`: the list of misses (empty when all are met). */
export function witnessMisses(r) {
  return [
    r.p99 >= TARGETS.p99Ms && `p99 ${fmt(r.p99, 1)} ms ≥ ${TARGETS.p99Ms} ms`,
    r.achievedPerSec < TARGETS.rateShare * r.rate &&
      `${fmt(r.achievedPerSec)} requests/s < ${100 * TARGETS.rateShare} % of ${fmt(r.rate)}`,
    r.errors > 0 &&
      `${fmt(r.errors)} answers not 200 (${Object.entries(r.answers)
        .filter(([s]) => s !== "200")
        .map(([s, n]) => `${s}: ${n}`)
        .join(", ")})`,
  ].filter(Boolean);
}

/** The two tables: the load, and the floor measured in the same run. */
export function witnessTables(r, floor) {
  const load = `| offered | logs | measured | achieved req/s | not 200 | p50 ms | p99 ms | max ms | p99 from due ms | witness CPU % | witness peak RSS MiB | target met |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
| ${fmt(r.rate)}/s | ${fmt(r.logs)} | ${fmt(r.windowSeconds, 1)} s, ${fmt(r.offered)} req | ${fmt(r.achievedPerSec)} | ${fmt(r.errors)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${fmt(r.max, 1)} | ${fmt(r.dueP99, 1)} | ${fmt(r.cpuPercent)} | ${fmt(r.peakRssMiB)} | ${witnessMisses(r).length === 0 ? "yes" : "**no**"} |`;
  const floors = `| floor (same run, this process, no HTTP) | cost | note |
| --- | ---: | --- |
| Ed25519 verify (the log's signature) | ${fmt(floor.verifyUs)} µs | node:crypto |
| Ed25519 sign (the cosignature) | ${fmt(floor.signUs)} µs | node:crypto |
| durable save of a ${fmt(floor.stateBytes)}-byte state file, one after another | p50 ${fmt(floor.saveP50Ms, 2)} ms, p99 ${fmt(floor.saveP99Ms, 2)} ms | the witness's StateStore.save: temp file, fsync, rename, fsync of the directory |
| **serial floor**: verify + sign + save, one request after another | **${fmt(floor.serialPerSec)} req/s** | what one log at a time could get |
| saves of 8 logs in parallel | ${fmt(floor.parallelSavesPerSec)} saves/s | the disk's ceiling for requests of different logs |`;
  return { load, floors };
}

function meta() {
  return {
    date: new Date().toISOString().slice(0, 10),
    cores: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    memGiB: Math.round(totalmem() / 2 ** 30),
    load: loadavg()[0],
  };
}

/** The "Witness under load" section of RESULTS.md. */
export function witnessSection(r, floor, command, m = meta()) {
  const { load, floors } = witnessTables(r, floor);
  const misses = witnessMisses(r);
  return `## Witness under load

\`${command}\` on ${m.date} (${m.cores} cores, ${m.cpu}, ${m.memGiB} GiB, Node ${process.version}; 1-minute load average ${fmt(m.load, 1)} at the start). Script: [witness-load.mjs](witness-load.mjs).
The built witness (\`dist/agent/cli/main.js witness --config FILE\`, through its shebang) with one \`origin_prefix\` entry and one agent key; ${fmt(r.logs)} logs (origins \`${PREFIX}log-<i>\`), each on its own keep-alive connection, never two requests of one log in flight. ${fmt(r.rate)} add-checkpoint requests/s, open loop (released on a fixed schedule, round-robin over the logs), each growing its log by 1–4 leaves with the real consistency proof from the size last cosigned (tree sizes up to ${fmt(r.maxTreeSize)}); bodies made before the load (${fmt(r.prepSeconds, 1)} s). ${fmt(r.warmup)} s of warm-up, then ${fmt(r.duration)} s measured. Target (issue 15): p99 < ${TARGETS.p99Ms} ms at ${fmt(r.rate)} requests/s, every answer 200.

${load}

${floors}

- Target: ${misses.length === 0 ? "**met**" : `**missed**: ${misses.join("; ")}`}. Latency is send → response of the 200s; "from due" counts from the instant the schedule released the request (the generator was at most ${fmt(r.generatorLateMs, 1)} ms late), so a log's request waiting for its previous one counts too. Achieved is the 200s of the requests due in the measured window over the time until the last of them was answered. CPU is the witness's user + system time over the window (/proc/PID/stat, 100 % = one core: the main thread plus the libuv threads' fsyncs); RSS the peak of VmRSS samples.
- ${PROFILE_NOTE}
`;
}

/** What the witness's CPU profile showed when this benchmark was written (kept with its date). */
const PROFILE_NOTE =
  "Profile (`--profile DIR`, 2026-12-07, 1,000 requests/s). Before the fix the target was missed (p99 119–267 ms, p50 up to 177 ms, the 10-s run falling 1.4 s behind): the witness's main thread had no idle time, and 15 % of it went to `createPublicKey`, because cosignature.ts's `cosign()` derives the witness's key id from its key on every call, building a KeyObject each time (as long as the Ed25519 verify itself). `cosign()` now derives the key id from the raw key, without a key object (agent/integrity/cosignature.ts). After it the main thread is about 65 % busy at 1,000 requests/s; of that busy time: 35 % issuing the nine fs calls of each state save (open, chmod, write, fsync, close, rename, open, fsync, close of the directory; the fsyncs themselves run on libuv's threads), 25 % Ed25519 verify of the log's signature, 15 % HTTP, 10 % parsing and checks, 6 % Ed25519 sign, 5 % GC. Headroom beyond this target would come from fewer fs calls per save and from verifying on libuv's threads (the async `crypto.verify`).";

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

/**
 * RESULTS.md with `section` in place of its "## Witness under load", or where bench/run.mjs
 * puts it: after "## All cases" (else before "## History", else at the end).
 */
function withSection(section) {
  const path = join(HERE, "RESULTS.md");
  const text = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmark results\n";
  const next = (from) => (from < 0 ? -1 : text.indexOf("\n## ", from + 1) + 1 || text.length);
  let at = text.indexOf("## Witness under load\n");
  let end = next(at);
  if (at < 0) {
    at = next(text.indexOf("## All cases"));
    if (at < 0) at = text.indexOf("## History\n");
    if (at < 0) at = text.length;
    end = at;
  }
  return { path, text: `${text.slice(0, at)}${section.trimEnd()}\n\n${text.slice(end)}` };
}

async function main() {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: npm run build first`);
  const quick = process.argv.includes("--quick");
  const options = {
    rate: Number(arg("--rate", 1000)),
    logs: Number(arg("--logs", 200)),
    warmup: 2,
    duration: Number(arg("--duration", quick ? 5 : 10)),
    profileDir: arg("--profile", null),
  };
  const m = meta();
  const floor = await measureWitnessFloor(quick ? 500 : 1000);
  const r = await runWitnessLoad(options);
  const { load, floors } = witnessTables(r, floor);
  console.log(`${load}\n\n${floors}\n`);
  if (r.witnessProblems.length > 0)
    console.log(`witness warnings/errors:\n${r.witnessProblems.slice(0, 10).join("\n")}`);
  const misses = witnessMisses(r);
  console.log(misses.length === 0 ? "target met" : `target missed: ${misses.join("; ")}`);
  if (options.profileDir) console.log(`CPU profile of the witness in ${options.profileDir}`);
  if (!process.argv.includes("--no-write")) {
    const args = process.argv.slice(2).filter((a) => a !== "--no-write");
    const command = ["npm run bench:witness", ...(args.length ? ["--", ...args] : [])].join(" ");
    const { path, text } = withSection(witnessSection(r, floor, command, m));
    const { formatMarkdown } = await import("./micro/lib.mjs");
    writeFileSync(path, await formatMarkdown(text, path));
    console.log(`wrote the Witness under load section of ${path}`);
  }
  process.exitCode = misses.length === 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

// `npm run bench:verify [-- --sizes 1e6,1e7] [--profile] [--keep] [--no-write]`:
// `audit-agent verify` over a genuine file-exporter output of N realistic records (~1.5 KB
// each, signed batches of 1,000; bench/chain-gen.mjs), run as the real CLI in a child
// process, timed, with its peak RSS (VmHWM); against a floor measured in the same run on the
// same bytes: one process streaming the segment files and computing every line's RFC 6962
// leaf hash, SHA-256(0x00 ‖ line), as fast as it can. The chains are written under $TMPDIR
// (free space checked first) and deleted afterwards. Prints a table and puts it in the
// "Verification at scale" section of bench/RESULTS.md. With --profile, the verify child of the
// smallest size is run once more under --cpu-prof and the functions it spends its time in listed.
//
// `--incremental [--incremental-size N]` (issue 12) measures `verify --state FILE` instead: a
// clean full run over the first N records (default 1,000,000) of a chain, then an incremental
// run with the same state over the whole chain, 1 % longer; see measureIncremental.
// `--in-agent [--in-agent-records N] [--in-agent-seconds S] [--in-agent-interval D]` measures
// the agent's own continuous verification (extensions.verification): ack p99 and RSS at a
// steady 1,000 records/s for S seconds (default 150) over a backend pre-filled with N records
// (default 1,000,000), without it and with it every D (default 30s); see measureInAgent.
// Each writes its own sub-table of "Verification at scale" and keeps the rest of the file.
//
// `node bench/verify-scale.mjs --floor DIR` is the floor program itself (used as a child);
// `--summarize FILE.cpuprofile` prints a saved profile of the verifier by stage.
import { execFileSync, spawn } from "node:child_process";
import { hash } from "node:crypto";
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";

const HERE = new URL(".", import.meta.url).pathname;
const CLI = join(HERE, "..", "dist", "agent", "cli", "main.js");
const TARGETS = { rssMiB: 200, recordsPerSec: 150_000, ofFloor: 0.5 };
/** Bytes a record takes on disk (its line and its share of the manifests), with room to spare. */
const BYTES_PER_RECORD = 1700;

function arg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

// ---------------------------------------------------------------------------------------
// The floor: stream the record segments, leaf-hash every line

/**
 * Reads each records segment of `chainDir` in 8 MiB pieces, the next piece read while this
 * one is hashed, and hashes each line in place: the byte before a line (the previous line's
 * newline, or room left before the piece) is set to 0x00, so SHA-256(0x00 ‖ line) is one
 * call over the buffer, no copy. A line cut by a piece boundary is carried to the room
 * before the next piece.
 */
async function leafHashFloor(chainDir) {
  const ROOM = 1 << 20;
  const READ = 8 << 20;
  const bufs = [Buffer.allocUnsafe(ROOM + READ), Buffer.allocUnsafe(ROOM + READ)];
  const names = readdirSync(chainDir)
    .filter((n) => /^records-\d{20}\.ndjson$/.test(n))
    .sort();
  let records = 0;
  let bytes = 0;
  let check = 0;
  const t0 = performance.now();
  for (const name of names) {
    const fh = await open(join(chainDir, name), "r");
    try {
      let cur = 0;
      let carry = Buffer.alloc(0);
      let reading = fh.read(bufs[0], ROOM, READ, null);
      for (;;) {
        const { bytesRead } = await reading;
        const buf = bufs[cur];
        if (carry.length >= ROOM) throw new Error(`${name}: a line longer than ${ROOM} bytes`);
        let from = ROOM - carry.length;
        carry.copy(buf, from);
        if (bytesRead === 0) break; // an unterminated last line is not a record
        const end = ROOM + bytesRead;
        bytes += bytesRead;
        // The other buffer's carried bytes are copied out: read the next piece into it.
        reading = fh.read(bufs[1 - cur], ROOM, READ, null);
        for (
          let nl = buf.indexOf(0x0a, from);
          nl !== -1 && nl < end;
          nl = buf.indexOf(0x0a, from)
        ) {
          buf[from - 1] = 0x00;
          // As a latin1 string: the fastest form Node makes a hash in (no Buffer per hash).
          check ^= hash("sha256", buf.subarray(from - 1, nl), "latin1").charCodeAt(0);
          records++;
          from = nl + 1;
        }
        carry = buf.subarray(from, end);
        cur = 1 - cur;
      }
    } finally {
      await fh.close();
    }
  }
  return { records, bytes, seconds: (performance.now() - t0) / 1000, check };
}

if (process.argv.includes("--floor")) {
  process.stdout.write(JSON.stringify(await leafHashFloor(arg("--floor"))));
  process.exit(0);
}

// ---------------------------------------------------------------------------------------
// Children, timed, with their peak RSS

/** Clock ticks per second of /proc/PID/stat's CPU times (USER_HZ: 100 on Linux). */
const CLOCK_TICKS = 100;

/**
 * VmHWM and VmRSS of a live process, in KiB, and the CPU seconds it has used (all its
 * threads, user and system); null once it is gone.
 */
function sampleOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpu = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    return { hwm: kib("VmHWM"), rss: kib("VmRSS"), cpu };
  } catch {
    return null;
  }
}

/**
 * Runs `node args…` to completion, polling its peak RSS every 20 ms (VmHWM: the kernel's
 * high-water mark, so a peak between polls is still seen at the next one) and its CPU time
 * (as of the last poll before it exits: up to 20 ms short).
 */
function runNode(args) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    let peakKiB = 0;
    let cpuSeconds = 0;
    const poll = setInterval(() => {
      const m = sampleOf(child.pid);
      if (m === null) return;
      peakKiB = Math.max(peakKiB, m.hwm || m.rss || 0);
      cpuSeconds = Math.max(cpuSeconds, m.cpu);
    }, 20);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearInterval(poll);
      resolve({
        code,
        stdout,
        stderr,
        seconds: (performance.now() - t0) / 1000,
        peakMiB: peakKiB / 1024,
        cpuSeconds,
      });
    });
  });
}

// ---------------------------------------------------------------------------------------
// A CPU profile, summed by function

/** The functions with the most self and total time in a .cpuprofile, with their share. */
function profileSummary(path, top = 14) {
  const p = JSON.parse(readFileSync(path, "utf8"));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ticks = new Map();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    ticks.set(id, (ticks.get(id) ?? 0) + dt);
    total += dt;
  });
  const name = (n) => {
    const { functionName, url, lineNumber } = n.callFrame;
    const file = url.replace(/^.*\/dist\/agent\//, "").replace(/^node:/, "node:");
    const fn = functionName.startsWith("RegExp:") ? "RegExp (envelope pattern)" : functionName;
    return `${fn || "(anonymous)"}${file ? ` ${file.split("/").slice(-2).join("/")}:${lineNumber + 1}` : ""}`;
  };
  const self = new Map();
  const inclusive = new Map();
  for (const [id, t] of ticks) {
    const key = name(byId.get(id));
    self.set(key, (self.get(key) ?? 0) + t);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = name(byId.get(cur));
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + t);
    }
  }
  const stages = new Map();
  for (const [id, t] of ticks) {
    const stack = [];
    for (let cur = id; cur !== undefined; cur = parent.get(cur))
      stack.push(byId.get(cur).callFrame.functionName || "(anonymous)");
    const stage = STAGES.find(([, test]) => test(stack))?.[0] ?? "other";
    stages.set(stage, (stages.get(stage) ?? 0) + t);
  }
  const rows = (m, n = top) =>
    [...m]
      .filter(([k]) => k !== "(root)")
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, t]) => ({ fn: k, ms: t / 1000, share: t / total }));
  return {
    totalMs: total / 1000,
    self: rows(self),
    inclusive: rows(inclusive),
    stages: rows(stages, stages.size),
  };
}

/**
 * The verifier's stages, told apart by the functions on a sample's stack (innermost first);
 * a sample counts for the first stage whose test it passes. Names are those of
 * verify/stream-chain.ts, record-window.ts, integrity/ and the file reader.
 */
const STAGES = [
  ["garbage collection", (s) => s[0] === "(garbage collector)"],
  ["idle: waiting for reads or the other thread", (s) => s[0] === "(idle)"],
  [
    "leaf hashes (SHA-256 of each line)",
    (s) => s.some((f) => ["hashInPlace", "hashCopied", "leafHashOf"].includes(f)),
  ],
  [
    "Merkle trees: node hashes (Frontier, batch roots)",
    (s) => s.some((f) => ["nodeHashLatin1", "merkleRootOf", "nodeHash"].includes(f)),
  ],
  ["envelope check (canonical form, regular expression)", (s) => s.includes("checkEnvelope")],
  ["per line: UTF-8 decoding, results (checkLineBytes)", (s) => s.includes("checkLineBytes")],
  ["kept records: trees, batches, summary (keep)", (s) => s.includes("keep")],
  [
    "window: copies, order, links (record-window, take)",
    (s) => s.some((f) => ["judge", "judgeUpTo", "hold", "link", "add", "take"].includes(f)),
  ],
  ["signatures (manifests, checkpoints)", (s) => s.includes("verifyBytes")],
  [
    "reading: segment pages, line splitting",
    (s) => s.some((f) => ["segmentPieces", "recordBytes", "records", "read"].includes(f)),
  ],
  [
    "between threads: messages, structured clone",
    (s) => s.some((f) => ["postMessage", "dispatch", "check"].includes(f)),
  ],
  [
    "start-up: loading modules",
    (s) => s.some((f) => ["Module._load", "loadAndTranslate", "evaluate"].includes(f)),
  ],
];

// ---------------------------------------------------------------------------------------

const fmt = (n, digits = 0) =>
  n === null || n === undefined || Number.isNaN(n)
    ? "–"
    : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const mib = (bytes) => bytes / 2 ** 20;

async function measure(n, sizes, root, profile) {
  const { writeChain } = await import("./chain-gen.mjs");
  const dir = mkdtempSync(join(root, "verify-scale-"));
  try {
    const out = join(dir, "out");
    const t0 = performance.now();
    let shown = 0;
    const { chainId, key, bytes } = await writeChain({
      directory: out,
      records: n,
      onProgress: (done) => {
        if (process.stdout.isTTY && (done - shown >= n / 10 || done === n)) {
          shown = done;
          process.stdout.write(`\r  writing: ${fmt(done)} / ${fmt(n)} records`);
        }
      },
    });
    const genSeconds = (performance.now() - t0) / 1000;
    const chainDir = join(out, chainId);
    const diskBytes = readdirSync(chainDir).reduce(
      (s, f) => s + statSync(join(chainDir, f)).size,
      0,
    );
    console.log(
      `${process.stdout.isTTY ? "\r" : ""}  wrote ${fmt(n)} records (${fmt(mib(diskBytes))} MiB, ${fmt(bytes / n)} B/record) in ${fmt(genSeconds, 1)} s`,
    );
    const pub = join(dir, "bench.pub");
    writeFileSync(pub, `${key.public.verifierKey}\n`);
    const verifyArgs = [CLI, "verify", "--source", `file:${out}`, "--trust", pub];

    // The floor first and the verifier after it: both read the files from the page cache.
    const floorRun = await runNode([join(HERE, "verify-scale.mjs"), "--floor", chainDir]);
    if (floorRun.code !== 0) throw new Error(`floor failed: ${floorRun.stderr}`);
    const floor = JSON.parse(floorRun.stdout);
    if (floor.records !== n) throw new Error(`floor hashed ${floor.records} lines, not ${n}`);
    const floorPerSec = floor.records / floor.seconds;
    console.log(
      `  floor: ${fmt(floor.records)} leaf hashes in ${fmt(floor.seconds, 2)} s = ${fmt(floorPerSec)} records/s (${fmt(mib(floor.bytes) / floor.seconds)} MiB/s), ${fmt(floorRun.cpuSeconds, 1)} CPU s, peak RSS ${fmt(floorRun.peakMiB)} MiB`,
    );

    const verify = await runNode(verifyArgs);
    const clean = verify.code === 0 && /OK: no findings/.test(verify.stdout);
    const counted = /: (\d+) records/.exec(verify.stdout)?.[1];
    if (!clean || Number(counted) !== n)
      throw new Error(
        `verify did not pass (exit ${verify.code}, ${counted} records):\n${verify.stdout.slice(0, 2000)}${verify.stderr.slice(0, 2000)}`,
      );
    const perSec = n / verify.seconds;
    console.log(
      `  verify: ${fmt(verify.seconds, 1)} s = ${fmt(perSec)} records/s, ${fmt(verify.cpuSeconds, 1)} CPU s, peak RSS ${fmt(verify.peakMiB)} MiB, ${fmt(perSec / floorPerSec, 2)} of the floor`,
    );

    let prof = null;
    if (profile && n === Math.min(...sizes)) {
      const profDir = join(root, `verify-scale-profile-${n}`);
      rmSync(profDir, { recursive: true, force: true });
      mkdirSync(profDir);
      const profiled = await runNode(["--cpu-prof", "--cpu-prof-dir", profDir, ...verifyArgs]);
      if (profiled.code !== 0) throw new Error(`profiled verify failed: ${profiled.stderr}`);
      // One profile per thread (verify may judge on a worker): the busiest one is shown.
      const threads = readdirSync(profDir)
        .filter((f) => f.endsWith(".cpuprofile"))
        .map((f) => ({ file: join(profDir, f), ...profileSummary(join(profDir, f)) }));
      const busy = (x) => x.totalMs - (x.stages.find((st) => st.fn.startsWith("idle"))?.ms ?? 0);
      threads.sort((a, b) => busy(b) - busy(a));
      prof = { seconds: profiled.seconds, threads: threads.length, ...threads[0] };
      console.log(
        `  profile (${fmt(profiled.seconds, 1)} s under --cpu-prof, ${threads.length} threads, the busiest): ${prof.file}`,
      );
      for (const r of prof.stages)
        console.log(`    ${fmt(r.ms)} ms ${fmt(100 * r.share, 1).padStart(5)} %  ${r.fn}`);
    }
    return {
      n,
      diskBytes,
      genSeconds,
      seconds: verify.seconds,
      perSec,
      cpuSeconds: verify.cpuSeconds,
      floorCpuSeconds: floorRun.cpuSeconds,
      peakMiB: verify.peakMiB,
      floorPerSec,
      floorMiBps: mib(floor.bytes) / floor.seconds,
      floorPeakMiB: floorRun.peakMiB,
      ratio: perSec / floorPerSec,
      prof,
    };
  } finally {
    if (!process.argv.includes("--keep")) rmSync(dir, { recursive: true, force: true });
    else console.log(`  kept ${dir}`);
  }
}

// ---------------------------------------------------------------------------------------
// Incremental verification (issue 12): `verify --state FILE` after a clean full run

const INCREMENTAL_TARGET = 0.05;
const SEGMENT_RE = /^records-(\d{20})\.ndjson$/;

/**
 * Writes into `toChainDir` the chain in `fromChainDir` as it stood when its first `n`
 * records had been written (`n` a whole number of batches): the segment pairs wholly before
 * seq `n` hard-linked, the pair holding seq `n` cut after its last record below `n` and the
 * last manifest of those records, the later pairs left out. The agent only ever appends
 * (docs/integrity-format.md §6), so the longer chain is this prefix with lines appended to
 * its newest pair and new pairs after it: what the agent makes of the prefix by running on.
 */
function writePrefix(fromChainDir, toChainDir, n) {
  mkdirSync(toChainDir, { recursive: true });
  const firsts = readdirSync(fromChainDir)
    .map((name) => SEGMENT_RE.exec(name)?.[1])
    .filter(Boolean)
    .sort();
  for (const [i, first] of firsts.entries()) {
    const firstSeq = Number(first);
    if (firstSeq >= n) break;
    const records = `records-${first}.ndjson`;
    const manifests = `manifests-${first}.ndjson`;
    const next = firsts[i + 1];
    if (next !== undefined && Number(next) <= n) {
      for (const f of [records, manifests]) linkSync(join(fromChainDir, f), join(toChainDir, f));
      continue;
    }
    // The pair seq n falls in: its first n − firstSeq record lines, and the manifest lines
    // of the batches that end below n.
    const buf = readFileSync(join(fromChainDir, records));
    let end = 0;
    for (let k = firstSeq; k < n; k++) {
      const nl = buf.indexOf(0x0a, end);
      if (nl === -1) throw new Error(`${records} ends before seq ${n}`);
      end = nl + 1;
    }
    writeFileSync(join(toChainDir, records), buf.subarray(0, end));
    const kept = readFileSync(join(fromChainDir, manifests), "utf8")
      .split("\n")
      .filter((line) => line !== "" && Number(JSON.parse(line).manifest.lastSeq) < n);
    writeFileSync(join(toChainDir, manifests), kept.map((l) => `${l}\n`).join(""));
  }
}

/** Runs `verify` over `out` (with `--state`), and fails unless it exits 0 with no findings. */
async function verifyClean(what, out, pub, state) {
  const run = await runNode([
    CLI,
    "verify",
    "--source",
    `file:${out}`,
    "--trust",
    pub,
    "--state",
    state,
    "--quiet",
  ]);
  const clean = run.code === 0 && /OK: no findings/.test(run.stdout);
  if (!clean)
    throw new Error(
      `${what} verify did not pass (exit ${run.code}):\n${run.stdout.slice(0, 2000)}${run.stderr.slice(0, 2000)}`,
    );
  return run;
}

/**
 * Writes a chain of n × 1.01 records, and a second file-exporter directory holding the same
 * chain as it stood after its first n records (writePrefix). Then `verify --state S` over the
 * prefix (a full run: S does not exist yet) and `verify --state S` over the whole chain (an
 * incremental run: it reads the records from seq n on, and the manifests). Both must exit 0
 * with no findings.
 */
async function measureIncremental(n, root) {
  const { writeChain } = await import("./chain-gen.mjs");
  const total = n + Math.ceil(n / 100 / 1000) * 1000; // 1 %, in whole batches
  const dir = mkdtempSync(join(root, "verify-incremental-"));
  try {
    const out = join(dir, "out");
    const t0 = performance.now();
    const { chainId, key } = await writeChain({ directory: out, records: total });
    const genSeconds = (performance.now() - t0) / 1000;
    const prefixOut = join(dir, "prefix");
    writePrefix(join(out, chainId), join(prefixOut, chainId), n);
    const chainDir = join(out, chainId);
    const diskBytes = readdirSync(chainDir).reduce(
      (s, f) => s + statSync(join(chainDir, f)).size,
      0,
    );
    console.log(
      `  wrote ${fmt(total)} records (${fmt(mib(diskBytes))} MiB) in ${fmt(genSeconds, 1)} s, and the chain's first ${fmt(n)} records in ${prefixOut}`,
    );
    const pub = join(dir, "bench.pub");
    writeFileSync(pub, `${key.public.verifierKey}\n`);
    const state = join(dir, "verify-state.json");
    const full = await verifyClean("full", prefixOut, pub, state);
    const fullCount = Number(/: (\d+) records/.exec(full.stdout)?.[1]);
    if (fullCount !== n) throw new Error(`the full run verified ${fullCount} records, not ${n}`);
    console.log(
      `  full run over ${fmt(n)} records: ${fmt(full.seconds, 2)} s, ${fmt(full.cpuSeconds, 1)} CPU s, peak RSS ${fmt(full.peakMiB)} MiB, exit ${full.code}`,
    );
    const incr = await verifyClean("incremental", out, pub, state);
    console.log(
      `  incremental run over ${fmt(total)} records (${fmt(total - n)} new): ${fmt(incr.seconds, 2)} s, ${fmt(incr.cpuSeconds, 1)} CPU s, peak RSS ${fmt(incr.peakMiB)} MiB, exit ${incr.code}`,
    );
    console.log(`  its report: ${incr.stdout.trim().split("\n").join(" | ")}`);
    // Once more, nothing new: what an incremental run costs whatever it has to read.
    const again = await verifyClean("repeated incremental", out, pub, state);
    console.log(
      `  incremental run again, nothing new: ${fmt(again.seconds, 2)} s, ${fmt(again.cpuSeconds, 1)} CPU s, peak RSS ${fmt(again.peakMiB)} MiB, exit ${again.code}`,
    );
    return {
      n,
      total,
      diskBytes,
      stateBytes: statSync(state).size,
      full,
      incr,
      again,
      ratio: incr.seconds / full.seconds,
    };
  } finally {
    if (!process.argv.includes("--keep")) rmSync(dir, { recursive: true, force: true });
    else console.log(`  kept ${dir}`);
  }
}

// ---------------------------------------------------------------------------------------
// In-agent verification (issue 12): extensions.verification under a steady load

const IN_AGENT_TARGETS = { rssMiB: 150, p99Ratio: 1.2 };
const STEADY = { protocol: "http-proto", size: 100, concurrency: 8, auditRatio: 1, rate: 1000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** bench/loadgen.mjs in its own process; its JSON result. */
async function loadgen(options) {
  const r = await runNode([join(HERE, "loadgen.mjs"), JSON.stringify(options)]);
  if (r.code !== 0) throw new Error(`loadgen failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/**
 * One steady run: the agent restarted on `dir` (its WAL, key and pre-filled output), with
 * extensions.verification at `interval` or without it, bench/loadgen.mjs at 1,000 records/s
 * for `seconds`; the agent's RSS every 250 ms, its VmHWM, and its verification log lines.
 */
async function steadyRun(dir, seconds, interval) {
  const { startAgent } = await import("./agent-proc.mjs");
  const logs = [];
  const agent = await startAgent({
    dir,
    verification: interval,
    onLog: (e) => {
      if (/verification/i.test(e.msg ?? "")) {
        logs.push({ at: performance.now(), ...e });
        console.log(
          `    agent: ${e.msg} ${JSON.stringify({ ...e, msg: undefined, time: undefined, level: undefined, pid: undefined, hostname: undefined })}`,
        );
      }
    },
  });
  const t0 = performance.now();
  try {
    const samples = [agent.sample()];
    const timer = setInterval(() => samples.push(agent.sample()), 250);
    const result = await loadgen({ ...STEADY, target: agent.http, duration: seconds });
    clearInterval(timer);
    const hwm = sampleOf(agent.pid)?.hwm ?? 0;
    const rss = samples.map((s) => s.rssMiB);
    const steady = rss.slice(Math.floor(rss.length / 2)).sort((x, y) => x - y);
    const cpu = samples.at(-1).cpuSeconds - samples[0].cpuSeconds;
    const elapsed = (samples.at(-1).at - samples[0].at) / 1000;
    return {
      interval,
      result,
      peakSampledMiB: Math.max(...rss),
      hwmMiB: hwm / 1024,
      steadyMiB: steady[Math.floor(steady.length / 2)] ?? 0,
      cpuPercent: (cpu / elapsed) * 100,
      runs: logs.map((e) => ({
        atSeconds: (e.at - t0) / 1000,
        msg: e.msg,
        seconds: e.seconds,
        verifiedRecords: e.verifiedRecords,
        checked: e.checked,
        err: e.err?.message,
      })),
    };
  } finally {
    await agent.stop();
  }
}

/**
 * Pre-fills an agent's file backend with `records` records at saturation (512 × 8,
 * HTTP/protobuf), waits for the exporter to write them all, stops it; then on the same data
 * dir: a steady run at 1,000 records/s without extensions.verification, and one with it
 * (interval 30 s: its first run, 30 s in, is a full run over the whole backend, the agent
 * having no verification state yet; later runs are incremental).
 */
async function measureInAgent(records, seconds, interval) {
  const { startAgent } = await import("./agent-proc.mjs");
  const agent = await startAgent();
  const dir = agent.dir;
  try {
    const t0 = performance.now();
    let acked = 0;
    while (acked < records) {
      const r = await loadgen({
        protocol: "http-proto",
        size: 512,
        concurrency: 8,
        auditRatio: 1,
        target: agent.http,
        duration: Math.max(2, Math.min(20, (records - acked) / 30_000)),
      });
      acked += r.requests * 512;
      process.stdout.write(`  pre-fill: ${fmt(acked)} records acked\n`);
    }
    let written = agent.outputRecords();
    while (written < acked) {
      await sleep(5000); // counting reads every segment
      written = agent.outputRecords();
    }
    const fillSeconds = (performance.now() - t0) / 1000;
    console.log(`  pre-filled ${fmt(written)} records in ${fmt(fillSeconds, 1)} s`);
    await agent.stop();
    const runs = [];
    for (const iv of [undefined, interval]) {
      console.log(
        `  steady 1,000 records/s for ${seconds} s, verification ${iv ? `every ${iv}` : "off"}`,
      );
      const r = await steadyRun(dir, seconds, iv);
      console.log(
        `    ${fmt(r.result.recordsPerSec)} records/s, p99 ${fmt(r.result.p99, 1)} ms, max ${fmt(r.result.max, 1)} ms, RSS peak ${fmt(r.hwmMiB)} MiB (VmHWM; sampled ${fmt(r.peakSampledMiB)}), steady ${fmt(r.steadyMiB)} MiB, CPU ${fmt(r.cpuPercent)} %`,
      );
      runs.push(r);
    }
    return { records: written, fillSeconds, seconds, interval, off: runs[0], on: runs[1] };
  } finally {
    if (!process.argv.includes("--keep")) agent.cleanup();
    else console.log(`  kept ${dir}`);
  }
}

/** A note when no verification run established a state (each one read the whole backend). */
function stuck(runs) {
  const passed = runs.filter((v) => v.seconds !== undefined);
  if (passed.length < 2 || passed.some((v) => v.verifiedRecords > 0)) return "";
  return `Every run logged \`verifiedRecords\` 0 and \`checked\` the whole backend: the agent kept no verification state, so no run was incremental. `;
}

function inAgentSection(r, meta) {
  const row = (what, x) =>
    `| ${what} | ${fmt(x.result.recordsPerSec)} | ${fmt(x.result.p50, 1)} | ${fmt(x.result.p99, 1)} | ${fmt(x.result.max, 1)} | ${fmt(x.hwmMiB)} | ${fmt(x.steadyMiB)} | ${fmt(x.cpuPercent)} | ${x.runs.length ? x.runs.map((v) => `${fmt(v.atSeconds)} s: ${v.msg.replace("continuous verification ", "")}${v.seconds !== undefined ? ` in ${fmt(v.seconds, 1)} s (checked ${fmt(v.checked)}, verifiedRecords ${fmt(v.verifiedRecords)})` : ""}${v.err ? ` (${v.err})` : ""}`).join("; ") : "–"} |`;
  const p99Ratio = r.on.result.p99 / r.off.result.p99;
  const rssOk = r.on.hwmMiB <= IN_AGENT_TARGETS.rssMiB;
  return `### In-agent verification (\`extensions.verification\`)

Generated by \`node bench/verify-scale.mjs --in-agent\` on ${meta.date} (${meta.cores} cores, ${meta.cpu}, ${meta.memGiB} GiB, Node ${process.version}; HEAD ${meta.commit}, dist/ built ${meta.built}; 1-minute load average ${fmt(meta.loadBefore, 1)} before, ${fmt(meta.loadAfter, 1)} after).
The agent (bench/agent-proc.mjs: defaults, file exporter, signed batches of 1,000) was pre-filled at saturation with ${fmt(r.records)} records (HTTP/protobuf, 512 × 8; ${fmt(r.fillSeconds)} s), then restarted on the same data dir twice, each time under a steady ${fmt(STEADY.rate)} records/s (bench/loadgen.mjs, HTTP/protobuf, ${STEADY.size} records per request, ${STEADY.concurrency} in flight) for ${r.seconds} s: first without \`extensions.verification\`, then with it at \`interval: ${r.interval}\` (other settings default: a 128 MiB worker heap, 16 spot-checked batches). The agent has no verification state yet at that restart, so its first run, ${r.interval} in, is a full run over the whole backend; later ones are meant to be incremental.
Targets: with verification, the agent's peak RSS ≤ ${IN_AGENT_TARGETS.rssMiB} MiB and its ack p99 within ${fmt(100 * (IN_AGENT_TARGETS.p99Ratio - 1))} % of the run without.

| verification | records/s | ack p50 ms | ack p99 ms | ack max ms | peak RSS MiB | steady RSS MiB | CPU % | verification runs (logged at s into the run) |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${row("off", r.off)}
${row(`every ${r.interval}`, r.on)}

- With verification: p99 **${fmt(p99Ratio, 2)}×** the run without (target ≤ ${IN_AGENT_TARGETS.p99Ratio}: ${p99Ratio <= IN_AGENT_TARGETS.p99Ratio ? "met" : "**missed**"}), peak RSS **${fmt(r.on.hwmMiB)} MiB** (target ≤ ${IN_AGENT_TARGETS.rssMiB}: ${rssOk ? "met" : "**missed**"}). ${stuck(r.on.runs)}Peak RSS is the agent's VmHWM at the end of the run (its start-up included); steady RSS the median of the second half of VmRSS samples taken every 250 ms; CPU % of one core over the run.
`;
}

async function runInAgent() {
  const records = Math.round(Number(arg("--in-agent-records") ?? 1e6));
  const seconds = Math.round(Number(arg("--in-agent-seconds") ?? 150));
  const interval = arg("--in-agent-interval") ?? "30s";
  const root = tmpdir();
  const { bavail, bsize } = statfsSync(root);
  const need = records * 1.2 * (BYTES_PER_RECORD + 800) * 1.1;
  console.log(
    `\nin-agent verification over ${fmt(records)} records: needs about ${fmt(need / 2 ** 30, 1)} GiB under ${root}, ${fmt((bavail * bsize) / 2 ** 30, 1)} GiB free`,
  );
  if (bavail * bsize < need) throw new Error("not enough free space (set TMPDIR to a larger disk)");
  const meta = runMeta();
  const r = await measureInAgent(records, seconds, interval);
  meta.loadAfter = loadavg()[0];
  console.log(
    `\n| verification | records/s | p99 ms | peak RSS MiB | steady RSS MiB | runs |\n| --- | ---: | ---: | ---: | ---: | ---: |`,
  );
  for (const [what, x] of [
    ["off", r.off],
    [`every ${interval}`, r.on],
  ])
    console.log(
      `| ${what} | ${fmt(x.result.recordsPerSec)} | ${fmt(x.result.p99, 1)} | ${fmt(x.hwmMiB)} | ${fmt(x.steadyMiB)} | ${x.runs.length} |`,
    );
  console.log(
    `p99 with / without: ${fmt(r.on.result.p99 / r.off.result.p99, 2)} (target ≤ ${IN_AGENT_TARGETS.p99Ratio}); peak RSS with: ${fmt(r.on.hwmMiB)} MiB (target ≤ ${IN_AGENT_TARGETS.rssMiB})`,
  );
  if (!process.argv.includes("--no-write")) await writeSubsection(inAgentSection(r, meta));
}

function section(results, meta) {
  const ok = (pass) => (pass ? "yes" : "**no**");
  const rows = results.map(
    (r) =>
      `| ${fmt(r.n)} | ${fmt(mib(r.diskBytes) / 1024, 2)} | ${fmt(r.seconds, 1)} | ${fmt(r.perSec)} | ${fmt(r.cpuSeconds, 1)} | ${fmt(r.peakMiB)} | ${fmt(r.floorPerSec)} | ${fmt(r.floorCpuSeconds, 1)} | ${fmt(r.ratio, 2)} | ${ok(r.peakMiB <= TARGETS.rssMiB)} · ${ok(r.perSec >= TARGETS.recordsPerSec)} · ${ok(r.ratio >= TARGETS.ofFloor)} |`,
  );
  const profiles = results
    .filter((r) => r.prof)
    .map((r) => {
      const list = (rows) =>
        rows
          .slice(0, 10)
          .map((x) => `${fmt(100 * x.share, 1)} % ${x.fn.replace(/\|/g, "\\|")}`)
          .join("; ");
      return `- CPU profile of the ${fmt(r.n)}-record run (\`node --cpu-prof\` on the verify child, ${fmt(r.prof.seconds, 1)} s under the profiler; of its ${r.prof.threads} threads, the one that did the work). By stage: ${list(r.prof.stages)}. Self time: ${list(r.prof.self)}. Including callees: ${list(r.prof.inclusive)}.`;
    });
  return `## Verification at scale

Generated by \`npm run bench:verify\` on ${meta.date} (${meta.cores} cores, ${meta.cpu}, ${meta.memGiB} GiB, Node ${process.version}; ${meta.commit}; 1-minute load average ${fmt(meta.loadBefore, 1)} before, ${fmt(meta.loadAfter, 1)} after). Script: [verify-scale.mjs](verify-scale.mjs).
\`audit-agent verify --source file:DIR --trust KEY.pub\`, the real CLI in a child process, over a genuine file-exporter output written for the run ([chain-gen.mjs](chain-gen.mjs): bench/records.mjs's realistic records chained by the WAL's chaining, sealed and signed in batches of 1,000 as the Sealer does, written by the file exporter in 64 MiB segments) under \`$TMPDIR\`, from the page cache.
The floor is one process streaming the same record segments and computing each line's leaf hash, SHA-256(0x00 ‖ line), as fast as it can (8 MiB reads overlapped with hashing, no copies, each hash made as a latin1 string: the fastest form Node has, about 25 % faster than a Buffer per hash): ${results.map((r) => `${fmt(r.floorMiBps)} MiB/s at ${fmt(r.n)}`).join(", ")}.
Targets: peak RSS ≤ ${TARGETS.rssMiB} MiB at every size, ≥ ${fmt(TARGETS.recordsPerSec)} records/s and ≥ ${TARGETS.ofFloor} of the floor.

| records | GiB on disk | verify s | records/s | verify CPU s | peak RSS MiB | floor records/s | floor CPU s | ratio to floor | targets met: RSS · rate · ratio |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${rows.join("\n")}

- Records/s is records over the verify child's wall time, start-up included; its CPU seconds (all threads, user + system, /proc/PID/stat) and peak RSS (VmHWM, /proc/PID/status) are polled every 20 ms. The floor's rate is timed inside it, start-up excluded. CPU seconds well below wall seconds mean the process waited: for the disk, or for a core (other processes on this VM).
${profiles.join("\n")}
`;
}

/** The commit built into dist/, and whether agent/ had uncommitted changes. */
function gitCommit() {
  try {
    const git = (...a) => execFileSync("git", a, { cwd: HERE, encoding: "utf8" }).trim();
    const dirty = git("status", "--porcelain", "--", "../agent") !== "";
    return `${git("rev-parse", "--short", "HEAD")}${dirty ? " with uncommitted changes in agent/" : ""}`;
  } catch {
    return "unknown commit";
  }
}

/**
 * Puts `body` in place of the "Verification at scale" section, or before "## History"; the
 * section's "### " sub-tables (--incremental, --in-agent) are kept after it.
 */
function replaceSection(text, body) {
  const title = "## Verification at scale\n";
  const start = text.indexOf(title);
  if (start >= 0) {
    const next = text.indexOf("\n## ", start + 1);
    const old = text.slice(start, next >= 0 ? next : text.length);
    const subs = old.indexOf("\n### ");
    const kept = subs >= 0 ? `\n${old.slice(subs + 1).trimEnd()}\n` : "";
    return `${text.slice(0, start)}${body.trimEnd()}\n${kept}${next >= 0 ? text.slice(next) : ""}`;
  }
  const history = text.indexOf("## History\n");
  if (history >= 0) return `${text.slice(0, history)}${body.trimEnd()}\n\n${text.slice(history)}`;
  return `${text.trimEnd()}\n\n${body}`;
}

/**
 * Puts `body`, a sub-table whose first line is its "### " heading, in place of the
 * sub-section of "Verification at scale" with that heading, or at the end of the section.
 */
function replaceSubsection(text, body) {
  const title = "## Verification at scale\n";
  if (!text.includes(title)) text = replaceSection(text, `${title}\n`);
  const start = text.indexOf(title);
  const next = text.indexOf("\n## ", start + 1);
  const end = next >= 0 ? next + 1 : text.length;
  const heading = body.slice(0, body.indexOf("\n") + 1);
  const at = text.indexOf(`\n${heading}`, start);
  const block = `${body.trimEnd()}\n\n`;
  if (at >= 0 && at < end) {
    const after = text.indexOf("\n### ", at + 1);
    const stop = after >= 0 && after < end ? after + 1 : end;
    return `${text.slice(0, at + 1)}${block}${text.slice(stop)}`;
  }
  return `${text.slice(0, end).trimEnd()}\n\n${block}${text.slice(end)}`;
}

/** Writes `body` into bench/RESULTS.md as a sub-table of "Verification at scale", prettier'd. */
async function writeSubsection(body) {
  const path = join(HERE, "RESULTS.md");
  const text = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmark results\n";
  const { formatMarkdown } = await import("./micro/lib.mjs");
  writeFileSync(path, await formatMarkdown(replaceSubsection(text, body), path));
  console.log(`\nwrote the sub-table ${body.split("\n", 1)[0]} of ${path}`);
}

/** The machine and the code measured, for a table's caption. */
function runMeta() {
  return {
    date: new Date().toISOString().slice(0, 10),
    cores: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    memGiB: Math.round(totalmem() / 2 ** 30),
    loadBefore: loadavg()[0],
    commit: gitCommit(),
    /** When dist/ was built: HEAD can move on while it stays as it was. */
    built: `${statSync(CLI).mtime.toISOString().slice(0, 16).replace("T", " ")} UTC`,
  };
}

function incrementalSection(r, meta) {
  const row = (what, records, run) =>
    `| ${what} | ${fmt(records)} | ${fmt(run.seconds, 2)} | ${fmt(run.cpuSeconds, 1)} | ${fmt(run.peakMiB)} | ${run.code} |`;
  return `### Incremental verification (\`--state\`)

Generated by \`node bench/verify-scale.mjs --incremental${r.n === 1_000_000 ? "" : ` --incremental-size ${r.n}`}\` on ${meta.date} (${meta.cores} cores, ${meta.cpu}, ${meta.memGiB} GiB, Node ${process.version}; HEAD ${meta.commit}, dist/ built ${meta.built}; 1-minute load average ${fmt(meta.loadBefore, 1)} before, ${fmt(meta.loadAfter, 1)} after).
A chain of ${fmt(r.total)} records (${fmt(mib(r.diskBytes) / 1024, 2)} GiB, written as above), and a second exporter directory holding the same chain as it stood after its first ${fmt(r.n)} records (the segment pairs before hard-linked, the pair holding seq ${fmt(r.n)} cut after the last record and manifest below it): the agent only appends, so the longer chain is that directory with ${fmt(r.total - r.n)} records (1 %) appended. \`verify --source file:PREFIX --trust KEY.pub --state S\` (a full run: S does not exist), then \`verify --source file:WHOLE --trust KEY.pub --state S\` (incremental: the records from seq ${fmt(r.n)} on, every manifest again). Target: the incremental run ≤ ${100 * INCREMENTAL_TARGET} % of the full run's time.

| run | records in the backend | wall s | CPU s | peak RSS MiB | exit |
| --- | ---: | ---: | ---: | ---: | ---: |
${row("full, `--state` not yet written", r.n, r.full)}
${row("incremental, same `--state`", r.total, r.incr)}
${row("incremental again, nothing new", r.total, r.again)}

- Incremental over full: **${fmt(100 * r.ratio, 1)} %** of the wall time (target ≤ ${100 * INCREMENTAL_TARGET} %: ${r.ratio <= INCREMENTAL_TARGET ? "met" : "**missed**"}); both exit 0 with no findings. Wall time includes the child's start-up (Node and module loading, the same in every run). The last row, a third run once the state covers the whole chain, is what an incremental run costs before any new record: start-up and every manifest read and checked again; the new records' share of the incremental run is the difference (${fmt(r.incr.seconds - r.again.seconds, 2)} s for ${fmt(r.total - r.n)} records). The state file is ${fmt(r.stateBytes / 1024, 1)} KiB.
`;
}

async function runIncremental() {
  const n = Math.round(Number(arg("--incremental-size") ?? 1e6));
  if (!Number.isInteger(n) || n < 1000 || n % 1000 !== 0)
    throw new Error("--incremental-size takes a whole number of batches of 1,000, e.g. 1e6");
  const root = tmpdir();
  const meta = runMeta();
  const { bavail, bsize } = statfsSync(root);
  const need = n * 1.01 * BYTES_PER_RECORD * 1.1 + (64 << 20);
  console.log(
    `\nincremental, ${fmt(n)} + 1 % records: needs about ${fmt(need / 2 ** 30, 1)} GiB under ${root}, ${fmt((bavail * bsize) / 2 ** 30, 1)} GiB free`,
  );
  if (bavail * bsize < need) throw new Error("not enough free space (set TMPDIR to a larger disk)");
  const r = await measureIncremental(n, root);
  meta.loadAfter = loadavg()[0];
  console.log(
    `\n| run | records | wall s | CPU s | peak RSS MiB | exit |\n| --- | ---: | ---: | ---: | ---: | ---: |`,
  );
  for (const [what, records, run] of [
    ["full", r.n, r.full],
    ["incremental", r.total, r.incr],
    ["incremental, nothing new", r.total, r.again],
  ])
    console.log(
      `| ${what} | ${fmt(records)} | ${fmt(run.seconds, 2)} | ${fmt(run.cpuSeconds, 1)} | ${fmt(run.peakMiB)} | ${run.code} |`,
    );
  console.log(
    `incremental / full: ${fmt(100 * r.ratio, 1)} % (target ≤ ${100 * INCREMENTAL_TARGET} %: ${r.ratio <= INCREMENTAL_TARGET ? "met" : "missed"})`,
  );
  if (!process.argv.includes("--no-write")) await writeSubsection(incrementalSection(r, meta));
}

async function main() {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: npm run build first`);
  if (process.argv.includes("--incremental")) return runIncremental();
  if (process.argv.includes("--in-agent")) return runInAgent();
  const sizes = (arg("--sizes") ?? "1e6,1e7").split(",").map((s) => Math.round(Number(s)));
  if (sizes.some((n) => !Number.isInteger(n) || n < 1000))
    throw new Error("--sizes takes record counts of at least 1000, e.g. --sizes 1e6,1e7");
  const root = tmpdir();
  const profile = process.argv.includes("--profile");
  const meta = runMeta();
  const results = [];
  for (const n of sizes) {
    const { bavail, bsize } = statfsSync(root);
    const free = bavail * bsize;
    const need = n * BYTES_PER_RECORD * 1.1;
    console.log(
      `\n${fmt(n)} records: needs about ${fmt(need / 2 ** 30, 1)} GiB under ${root}, ${fmt(free / 2 ** 30, 1)} GiB free`,
    );
    if (free < need) {
      console.log("  skipped: not enough free space (set TMPDIR to a larger disk)");
      continue;
    }
    results.push(await measure(n, sizes, root, profile));
  }
  meta.loadAfter = loadavg()[0];
  if (results.length === 0) return;

  console.log(
    `\n| records | verify s | records/s | peak RSS MiB | floor records/s | ratio to floor |\n| ---: | ---: | ---: | ---: | ---: | ---: |`,
  );
  for (const r of results)
    console.log(
      `| ${fmt(r.n)} | ${fmt(r.seconds, 1)} | ${fmt(r.perSec)} | ${fmt(r.peakMiB)} | ${fmt(r.floorPerSec)} | ${fmt(r.ratio, 2)} |`,
    );
  for (const r of results) {
    const missed = [
      r.peakMiB > TARGETS.rssMiB && `peak RSS ${fmt(r.peakMiB)} MiB > ${TARGETS.rssMiB}`,
      r.perSec < TARGETS.recordsPerSec &&
        `${fmt(r.perSec)} records/s < ${fmt(TARGETS.recordsPerSec)}`,
      r.ratio < TARGETS.ofFloor && `${fmt(r.ratio, 2)} of the floor < ${TARGETS.ofFloor}`,
    ].filter(Boolean);
    console.log(
      `${fmt(r.n)}: ${missed.length ? `targets missed: ${missed.join("; ")}` : "all targets met"}`,
    );
  }
  if (process.argv.includes("--no-write")) return;
  const path = join(HERE, "RESULTS.md");
  const text = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmark results\n";
  const { formatMarkdown } = await import("./micro/lib.mjs");
  writeFileSync(path, await formatMarkdown(replaceSection(text, section(results, meta)), path));
  console.log(`\nwrote the Verification at scale section of ${path}`);
}

if (process.argv.includes("--summarize")) {
  // `node bench/verify-scale.mjs --summarize FILE.cpuprofile`: a saved profile by stage.
  const { totalMs, stages, self } = profileSummary(arg("--summarize"));
  console.log(`${(totalMs / 1000).toFixed(1)} s profiled`);
  for (const r of [...stages, { fn: "-- self time --", ms: 0, share: 0 }, ...self])
    console.log(
      `${r.ms.toFixed(0).padStart(8)} ms ${(100 * r.share).toFixed(1).padStart(5)} %  ${r.fn}`,
    );
  process.exit(0);
}

await main();

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
// `node bench/verify-scale.mjs --floor DIR` is the floor program itself (used as a child);
// `--summarize FILE.cpuprofile` prints a saved profile of the verifier by stage.
import { execFileSync, spawn } from "node:child_process";
import { hash } from "node:crypto";
import {
  existsSync,
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
          check ^= hash("sha256", buf.subarray(from - 1, nl), "buffer")[0];
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
  ["idle: waiting for reads", (s) => s[0] === "(idle)"],
  ["leaf hashes (SHA-256 of each line)", (s) => s[0] === "hash" && s.includes("parse")],
  ["Merkle trees: node hashes (Frontier)", (s) => s.includes("nodeHash")],
  ["Merkle trees: the rest of Frontier.append", (s) => s.includes("append") && s.includes("keep")],
  ["envelope check (canonical form, regular expression)", (s) => s.includes("checkEnvelope")],
  ["per line: UTF-8 encoding and Buffers (parse)", (s) => s.includes("parse")],
  ["kept records: batches, summary (keep)", (s) => s.includes("keep")],
  [
    "window: copies, order, links (record-window)",
    (s) => s.some((f) => ["judge", "judgeUpTo", "hold", "link", "remember", "add"].includes(f)),
  ],
  ["signatures (manifests, checkpoints)", (s) => s.includes("verifyBytes")],
  [
    "reading: file streams, UTF-8 decoding, line splitting",
    (s) =>
      s.some((f) =>
        ["segmentLines", "records", "Readable.read", "ReadStream._read", "read"].includes(f),
      ),
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
The floor is one process streaming the same record segments and computing each line's leaf hash, SHA-256(0x00 ‖ line), as fast as it can (8 MiB reads overlapped with hashing, no copies): ${results.map((r) => `${fmt(r.floorMiBps)} MiB/s at ${fmt(r.n)}`).join(", ")}.
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

/** Puts `body` in place of the "Verification at scale" section, or before "## History". */
function replaceSection(text, body) {
  const title = "## Verification at scale\n";
  const start = text.indexOf(title);
  if (start >= 0) {
    const next = text.indexOf("\n## ", start + 1);
    return `${text.slice(0, start)}${body.trimEnd()}\n${next >= 0 ? text.slice(next) : ""}`;
  }
  const history = text.indexOf("## History\n");
  if (history >= 0) return `${text.slice(0, history)}${body.trimEnd()}\n\n${text.slice(history)}`;
  return `${text.trimEnd()}\n\n${body}`;
}

async function main() {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: npm run build first`);
  const sizes = (arg("--sizes") ?? "1e6,1e7").split(",").map((s) => Math.round(Number(s)));
  if (sizes.some((n) => !Number.isInteger(n) || n < 1000))
    throw new Error("--sizes takes record counts of at least 1000, e.g. --sizes 1e6,1e7");
  const root = tmpdir();
  const profile = process.argv.includes("--profile");
  const meta = {
    date: new Date().toISOString().slice(0, 10),
    cores: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    memGiB: Math.round(totalmem() / 2 ** 30),
    loadBefore: loadavg()[0],
    commit: gitCommit(),
  };
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

// `npm run bench:crash -- [--kills N] [--seed S] [--clients C] [--keep]`: a crash-loop soak of
// the built agent, test/integration/crash.test.ts at scale. The agent (`node
// dist/agent/cli/main.js run`, file exporter, the default audit filter) is SIGKILLed N times
// (default 100) at random instants — mostly while C clients (default 8) send a mix of
// OTLP/HTTP JSON, OTLP/HTTP protobuf and OTLP/gRPC requests of 1–500 records, audit and
// non-audit mixed, some while it is still starting up — and restarted each time on the same
// WAL, key and output directory. Every request's outcome is kept: acked (HTTP 200, gRPC OK),
// refused (a status the agent chose) or unknown (the connection died with the agent).
//
// At the end one more agent is started, left to deliver everything to the file exporter,
// and stopped with SIGTERM; then the output must hold every acknowledged audit record exactly
// once, each unacknowledged request's audit records all or none, no refused request's
// records, no non-audit record, one chain with seqs 0..N-1, each request's records together
// and in order, and `audit-agent verify --source file:<out> --trust <key>` must exit 0.
// Prints a table (markdown) and exits 1 on any violation (the temp directory is then kept),
// 2 when the soak itself could not run.
//
// Every random choice comes from the seed (printed; `--seed` replays it): the schedule (kill
// instants) from one stream, each request's shape from a stream derived from (kill, client,
// request number). How many requests fit before a kill depends on timing, so a replay sends
// the same requests in the same shapes but not necessarily as many of them.
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import {
  createReadStream,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import { Pool } from "undici";
import { otlpTypes } from "../dist/agent/otlp/protobuf-codec.js";
import { dirBytes } from "./agent-proc.mjs";

const ROOT = new URL("..", import.meta.url).pathname;
const CLI = join(ROOT, "dist", "agent", "cli", "main.js");
const EXPORT_PATH = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const TRANSPORTS = ["http-json", "http-proto", "grpc"];
const REQUEST_TIMEOUT_MS = 30_000;
const DELIVERY_TIMEOUT_MS = 15 * 60_000;
const FILLER =
  "User alice.example changed the role of account 481516 from viewer to admin via the console; ticket SEC-2342, approved by bob. ";

// ---------------------------------------------------------------------------------------
// Options, seeded randomness

function parseOptions(argv) {
  const value = (name, fallback) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : fallback;
  };
  const kills = Number(value("--kills", "100"));
  const clients = Number(value("--clients", "8"));
  const seedText = value("--seed");
  const seed = seedText === undefined ? randomInt(0x1_0000_0000) : Number(seedText);
  const bad = [
    !Number.isInteger(kills) || kills < 1 ? "--kills takes a whole number ≥ 1" : "",
    !Number.isInteger(clients) || clients < 1 ? "--clients takes a whole number ≥ 1" : "",
    !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff
      ? "--seed takes an integer in [0, 2^32), decimal or 0x-hex"
      : "",
  ].filter(Boolean);
  if (bad.length > 0) {
    console.error(
      `${bad.join("\n")}\nusage: npm run bench:crash -- [--kills N] [--seed S] [--clients C] [--keep]`,
    );
    process.exit(2);
  }
  return { kills, clients, seed, keep: argv.includes("--keep") };
}

/** mulberry32: small, fast and seedable. */
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  return {
    next,
    int,
    /** A whole number in [min, max]. */
    range: (min, max) => min + int(max - min + 1),
    chance: (p) => next() < p,
    pick: (xs) => xs[int(xs.length)],
  };
}

/** A seed for an independent stream, from `seed` and `keys` (a kill, a client, a request). */
function deriveSeed(seed, ...keys) {
  let h = seed >>> 0;
  for (const k of keys) {
    h = Math.imul(h ^ (k >>> 0), 0x9e3779b1);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** A broken promise of the agent's: reported with the seed, exit status 1. */
class Violation extends Error {}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (n) => Number(n).toLocaleString("en-US");
const hex32 = (n) => `0x${n.toString(16).padStart(8, "0")}`;

// ---------------------------------------------------------------------------------------
// Children: every process started is tracked and killed on the way out, whatever the way

const children = new Set();

function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function killChildren() {
  for (const child of children) child.kill("SIGKILL");
}

// ---------------------------------------------------------------------------------------
// The agent

/** The test config (crash.test.ts): ephemeral loopback ports, the default audit filter. */
function configYaml(dir) {
  return `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
processors:
  audit_filter:
    match: any
exporters:
  file:
    directory: ${join(dir, "out")}
    rotation:
      max_megabytes: 1
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
extensions:
  signing:
    key_file: ${join(dir, "keys", "signing.key")}
    batch:
      timeout: 20ms
  wal:
    directory: ${join(dir, "wal")}
    max_size_mib: 512
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [audit_filter]
      exporters: [file]
  telemetry:
    metrics:
      address: 127.0.0.1:0
    logs:
      level: info
`;
}

/**
 * Starts `audit-agent run` on the config. `started` resolves with its addresses once it
 * serves and rejects if it exits first; its log lines feed `logStats`.
 */
function spawnAgent(ctx) {
  const child = track(
    spawn(process.execPath, [CLI, "run", "--config", ctx.configPath, "--grace", "120"], {
      cwd: ctx.dir,
      stdio: ["ignore", "ignore", "pipe"],
    }),
  );
  const tail = [];
  let stopped = null;
  const exited = new Promise((res) => child.once("exit", (code, signal) => res({ code, signal })));
  const started = new Promise((res, rej) => {
    createInterface({ input: child.stderr }).on("line", (line) => {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      let e;
      try {
        e = JSON.parse(line);
      } catch {
        return;
      }
      noteLog(ctx.logStats, e);
      if (e.msg === "audit agent started") {
        res({
          chainId: e.chainId ?? "",
          http: e.addresses?.otlp?.http ?? "",
          grpc: e.addresses?.otlp?.grpc ?? "",
          metrics: e.addresses?.metrics?.http ?? "",
        });
      } else if (e.msg === "stopped") stopped = e;
    });
    exited.then(({ code, signal }) =>
      rej(new Error(`agent exited (${code ?? signal}) before serving:\n${tail.join("\n")}`)),
    );
  });
  started.catch(() => {}); // a start-up kill leaves it rejected on purpose
  return {
    child,
    exited,
    started,
    tail,
    stoppedLog: () => stopped,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Counts the log lines worth reporting: recovery steps and every warning or error. */
function noteLog(stats, e) {
  if (typeof e.msg !== "string") return;
  if (e.msg.includes("torn final line")) stats.tornLinesCut++;
  if (e.msg.includes("backend already holds")) stats.resumedPastCursor++;
  if (["warn", "error", "fatal"].includes(e.level)) {
    const key = `${e.level}: ${e.msg}`;
    stats.warnings.set(key, (stats.warnings.get(key) ?? 0) + 1);
  }
}

// ---------------------------------------------------------------------------------------
// Requests

/**
 * A request of 1–500 records (often a few), a random share of them audit records by each of
 * the default rule's ways (audit=true, audit="true", an `audit.` event name) and the rest
 * non-audit ones (audit=false, audit="yes", an `app.` event name, nothing), over 1–3
 * resources. Each record carries req.id and rec.idx and a body `<id>#<idx> <filler>`.
 */
function buildRequest(rng, id) {
  const transport = rng.pick(TRANSPORTS);
  const count = rng.chance(0.3) ? rng.range(1, 20) : rng.range(1, 500);
  const auditShare = rng.chance(0.1) ? 0 : rng.chance(0.2) ? 1 : rng.next();
  const audit = [];
  const records = [];
  const now = `${Date.now()}000000`;
  for (let idx = 0; idx < count; idx++) {
    const isAudit = rng.next() < auditShare;
    const attributes = [
      { key: "req.id", value: { stringValue: id } },
      { key: "rec.idx", value: { intValue: transport === "http-json" ? String(idx) : idx } },
    ];
    const flavour = rng.int(isAudit ? 3 : 4);
    const marker = isAudit
      ? [{ boolValue: true }, { stringValue: "true" }, null][flavour]
      : [{ boolValue: false }, { stringValue: "yes" }, null, null][flavour];
    if (marker) attributes.push({ key: "audit", value: marker });
    const record = {
      timeUnixNano: now,
      severityNumber: 9,
      severityText: "INFO",
      body: { stringValue: `${id}#${idx} ${FILLER.slice(0, rng.int(FILLER.length))}` },
      attributes,
    };
    if (flavour === 2) record.eventName = isAudit ? "audit.crash_loop" : "app.crash_loop";
    if (isAudit) audit.push(idx);
    records.push(record);
  }
  const cuts = [0, ...Array.from({ length: rng.int(3) }, () => rng.int(count + 1)), count];
  cuts.sort((x, y) => x - y);
  const resourceLogs = [];
  for (let g = 0; g + 1 < cuts.length; g++) {
    if (cuts[g] === cuts[g + 1]) continue;
    resourceLogs.push({
      resource: {
        attributes: [{ key: "service.name", value: { stringValue: `crash-loop-${g}` } }],
      },
      scopeLogs: [
        {
          scope: { name: "crash-loop", version: "1" },
          logRecords: records.slice(cuts[g], cuts[g + 1]),
        },
      ],
    });
  }
  const body = { resourceLogs };
  const payload =
    transport === "http-json"
      ? Buffer.from(JSON.stringify(body))
      : Buffer.from(otlpTypes.RequestType.encode(otlpTypes.RequestType.fromObject(body)).finish());
  const sent = { id, transport, count, audit, outcome: "pending", detail: "", rejected: 0 };
  return { sent, payload };
}

/**
 * The rejectedLogRecords of a success response (partial success): 0 when there is none, -1
 * when the response cannot be read.
 */
function rejectedIn(bytes, json) {
  if (bytes.length === 0) return 0;
  try {
    const partial = json
      ? JSON.parse(bytes.toString("utf8")).partialSuccess
      : otlpTypes.ResponseType.decode(bytes).partialSuccess;
    return Number(partial?.rejectedLogRecords ?? 0);
  } catch {
    return -1;
  }
}

async function sendHttp(pool, sent, payload) {
  const json = sent.transport === "http-json";
  let res;
  try {
    res = await pool.request({
      path: "/v1/logs",
      method: "POST",
      headers: { "content-type": json ? "application/json" : "application/x-protobuf" },
      body: payload,
      headersTimeout: REQUEST_TIMEOUT_MS,
      bodyTimeout: REQUEST_TIMEOUT_MS,
    });
  } catch (err) {
    sent.outcome = "unknown";
    sent.detail = String(err?.message ?? err);
    return;
  }
  // The status line alone is the acknowledgement: 200 means the records are durable.
  sent.outcome = res.statusCode === 200 ? "acked" : "refused";
  try {
    const bytes = Buffer.from(await res.body.arrayBuffer());
    if (sent.outcome === "acked") sent.rejected = rejectedIn(bytes, json);
    else sent.detail = `HTTP ${res.statusCode} ${bytes.toString("utf8").slice(0, 200)}`;
  } catch {
    // the agent died after answering: the answer still counts
    if (sent.outcome === "refused") sent.detail = `HTTP ${res.statusCode}`;
  }
}

function sendGrpc(client, sent, payload) {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      EXPORT_PATH,
      (b) => b,
      (b) => b,
      payload,
      new grpc.Metadata(),
      { deadline: Date.now() + REQUEST_TIMEOUT_MS },
      (err, response) => {
        if (!err) {
          sent.outcome = "acked";
          sent.rejected = rejectedIn(response ?? Buffer.alloc(0), false);
        } else {
          // A status the agent chose carries google.rpc.Status details; a transport failure
          // (the agent was killed) does not, and leaves the outcome unknown.
          const chosen = err.metadata?.get("grpc-status-details-bin").length > 0;
          sent.outcome = chosen ? "refused" : "unknown";
          sent.detail = `gRPC ${err.code}: ${err.details}`;
        }
        resolve();
      },
    );
  });
}

// ---------------------------------------------------------------------------------------
// The crash loop

/** One kill: start the agent, load it (or not: a start-up kill), SIGKILL it, settle all. */
async function crashOnce(ctx, kill) {
  // Drawn in a fixed order whatever the branch, so that a replay keeps the schedule.
  const duringStartup = kill > 0 && ctx.schedule.chance(0.08);
  const startupDelayMs = ctx.schedule.range(0, 600);
  const band = ctx.schedule.next();
  const loadMs =
    band < 0.25
      ? ctx.schedule.range(0, 150)
      : band < 0.8
        ? ctx.schedule.range(150, 1500)
        : ctx.schedule.range(1500, 4000);
  const agent = spawnAgent(ctx);
  if (duringStartup) {
    await Promise.race([agent.started.catch(() => {}), sleep(startupDelayMs)]);
    const exit = await agent.kill("SIGKILL");
    if (exit.signal !== "SIGKILL")
      throw new Violation(
        `kill ${kill}: the agent exited (${exit.code}) while starting:\n${agent.tail.join("\n")}`,
      );
    ctx.stats.startupKills++;
    return;
  }
  const info = await agent.started.catch((err) => {
    throw new Violation(`kill ${kill}: the agent did not come back: ${err.message}`);
  });
  ctx.chainId ||= info.chainId;
  if (info.chainId !== ctx.chainId)
    throw new Violation(`kill ${kill}: restarted on chain ${info.chainId}, not ${ctx.chainId}`);
  const pool = new Pool(`http://${info.http}`, { connections: ctx.clients, pipelining: 1 });
  // No retries: an RPC the agent never saw must not be replayed behind our back.
  const client = new grpc.Client(info.grpc, grpc.credentials.createInsecure(), {
    "grpc.enable_retries": 0,
  });
  const state = { stop: false, inFlight: 0 };
  const loop = async (c) => {
    for (let n = 0; !state.stop; n++) {
      const rng = prng(deriveSeed(ctx.seed, kill, c, n));
      const { sent, payload } = buildRequest(rng, `${kill}-${c}-${n}`);
      ctx.requests.push(sent);
      state.inFlight++;
      if (sent.transport === "grpc") await sendGrpc(client, sent, payload);
      else await sendHttp(pool, sent, payload);
      state.inFlight--;
      if (sent.outcome === "refused") await sleep(rng.range(50, 200));
    }
  };
  const loops = Array.from({ length: ctx.clients }, (_, c) => loop(c));
  await sleep(loadMs);
  // No new request starts once the kill is decided; those under way stay under way.
  state.stop = true;
  if (state.inFlight > 0) ctx.stats.killsUnderLoad++;
  await agent.kill("SIGKILL");
  await Promise.all(loops);
  client.close();
  await pool.destroy();
}

/** Polls the agent's metrics until the file exporter has delivered the whole WAL. */
async function waitForDelivery(metrics) {
  const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
  let lag = "?";
  while (Date.now() < deadline) {
    const text = await (await fetch(`http://${metrics}/metrics`)).text();
    lag = /^audit_agent_exporter_lag_records\{[^}]*exporter="file"[^}]*\} (\S+)$/m.exec(text)?.[1];
    if (lag === "0") return;
    await sleep(500);
  }
  throw new Error(`the file exporter still lags ${lag} records after ${DELIVERY_TIMEOUT_MS} ms`);
}

/** One last start, full delivery, SIGTERM; the clean stop is checked. */
async function finalStop(ctx) {
  const agent = spawnAgent(ctx);
  const info = await agent.started.catch((err) => {
    throw new Violation(`final start: the agent did not come back: ${err.message}`);
  });
  ctx.chainId ||= info.chainId;
  if (info.chainId !== ctx.chainId)
    ctx.violations.push(`final start: chain ${info.chainId}, not ${ctx.chainId}`);
  await waitForDelivery(info.metrics);
  const exit = await agent.kill("SIGTERM");
  const stopped = agent.stoppedLog();
  if (exit.code !== 0 || exit.signal !== null)
    ctx.violations.push(
      `final agent exited ${exit.code ?? exit.signal}, not 0:\n${agent.tail.join("\n")}`,
    );
  if (stopped?.drained !== true)
    ctx.violations.push(`final agent did not log a drained stop (${JSON.stringify(stopped)})`);
  return { headSeq: typeof stopped?.headSeq === "number" ? stopped.headSeq : null };
}

// ---------------------------------------------------------------------------------------
// Reading the output back

function isAuditRecord(logRecord, attrs) {
  const mark = attrs.get("audit");
  return (
    mark?.boolValue === true ||
    mark?.stringValue === "true" ||
    (typeof logRecord.eventName === "string" && logRecord.eventName.startsWith("audit."))
  );
}

/**
 * Streams every line of the chain's record segments: seqs must run 0..N-1 on one chain id;
 * each record is filed under its request as { idx, seq }.
 */
async function readOutput(ctx) {
  const outDir = join(ctx.dir, "out");
  const chains = existsSync(outDir) ? readdirSync(outDir) : [];
  if (chains.length !== 1 || chains[0] !== ctx.chainId)
    ctx.violations.push(`output holds chains [${chains}], expected [${ctx.chainId}]`);
  const byRequest = new Map();
  const out = { lines: 0, strangers: 0, nonAudit: 0, seqErrors: 0, byRequest };
  const chainDir = join(outDir, ctx.chainId);
  const segments = existsSync(chainDir)
    ? readdirSync(chainDir)
        .filter((n) => /^records-\d+\.ndjson$/.test(n))
        .sort()
    : [];
  out.segments = segments.length;
  const problem = (text) => {
    if (ctx.violations.length < 10_000) ctx.violations.push(text);
  };
  for (const name of segments) {
    const lines = createInterface({
      input: createReadStream(join(chainDir, name)),
      crlfDelay: Infinity,
    });
    for await (const line of lines) {
      if (line.length === 0) continue;
      let e;
      try {
        e = JSON.parse(line);
      } catch {
        problem(`${name}: line ${out.lines} is not JSON`);
        continue;
      }
      if (e.seq !== String(out.lines) || e.chainId !== ctx.chainId) {
        out.seqErrors++;
        problem(`${name}: seq ${e.seq} of chain ${e.chainId} where seq ${out.lines} was due`);
      }
      out.lines++;
      const lr = e.record?.logRecord ?? {};
      const attrs = new Map((lr.attributes ?? []).map((a) => [a.key, a.value ?? {}]));
      const id = attrs.get("req.id")?.stringValue;
      const idx = Number(attrs.get("rec.idx")?.intValue);
      const sent = ctx.byId.get(id);
      if (
        !sent ||
        !Number.isInteger(idx) ||
        !String(lr.body?.stringValue).startsWith(`${id}#${idx} `)
      ) {
        out.strangers++;
        problem(`seq ${e.seq}: a record no request sent (req.id ${id}, rec.idx ${idx})`);
        continue;
      }
      if (!isAuditRecord(lr, attrs) || !sent.auditSet.has(idx)) {
        out.nonAudit++;
        problem(`seq ${e.seq}: non-audit record ${id}#${idx} stored`);
      }
      let list = byRequest.get(id);
      if (!list) byRequest.set(id, (list = []));
      list.push({ idx, seq: Number(e.seq) });
    }
  }
  return out;
}

/** Judges every request against what the output holds. */
function judge(ctx, out) {
  const r = { lost: 0, duplicated: 0, partial: 0, refusedStored: 0, split: 0, unsettled: 0 };
  r.unknownWhole = 0;
  r.unknownAbsent = 0;
  r.ackedWithRejected = 0;
  const problem = (text) => {
    if (ctx.violations.length < 10_000) ctx.violations.push(text);
  };
  for (const sent of ctx.requests) {
    const list = out.byRequest.get(sent.id) ?? [];
    const present = new Set(list.map((x) => x.idx));
    const dups = list.length - present.size;
    if (dups > 0) problem(`${sent.id} (${sent.outcome}): ${dups} record(s) stored twice`);
    r.duplicated += dups;
    const presentAudit = sent.audit.filter((i) => present.has(i)).length;
    // A request's records are written together, in order, in consecutive seqs.
    const first = list[0]?.seq;
    if (dups === 0 && list.some((x, i) => x.seq !== first + i || x.idx !== sent.audit[i])) {
      r.split++;
      problem(`${sent.id}: records not together/in order: ${list.map((x) => `${x.seq}:${x.idx}`)}`);
    }
    if (sent.outcome === "acked") {
      if (sent.rejected !== 0) {
        r.ackedWithRejected++;
        problem(`${sent.id}: acked with ${sent.rejected} rejected record(s) (-1: unreadable)`);
      }
      r.lost += sent.audit.length - presentAudit;
      if (presentAudit < sent.audit.length)
        problem(
          `acked ${sent.id} (${sent.transport}): ${presentAudit}/${sent.audit.length} present`,
        );
    } else if (sent.outcome === "unknown") {
      if (presentAudit > 0 && presentAudit < sent.audit.length) {
        r.partial++;
        problem(`unknown ${sent.id}: partial ${presentAudit}/${sent.audit.length}`);
      }
      if (sent.audit.length > 0 && presentAudit === sent.audit.length) r.unknownWhole++;
      else if (sent.audit.length > 0 && presentAudit === 0) r.unknownAbsent++;
    } else if (sent.outcome === "refused") {
      if (present.size > 0) {
        r.refusedStored++;
        problem(`refused ${sent.id} (${sent.detail}) was stored`);
      }
    } else {
      r.unsettled++;
      problem(`${sent.id} never settled`);
    }
  }
  return r;
}

function runVerify(ctx) {
  const args = [CLI, "verify", "--source", `file:${join(ctx.dir, "out")}`];
  args.push("--trust", join(ctx.dir, "keys", "signing.pub"), "--quiet");
  const child = track(spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] }));
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  return new Promise((res) =>
    child.once("exit", (code, signal) => res({ code: code ?? signal, output })),
  );
}

// ---------------------------------------------------------------------------------------
// Main

function printTable(rows) {
  const width = Math.max(...rows.map(([k]) => k.length));
  const valueWidth = Math.max(...rows.map(([, v]) => String(v).length));
  const lines = [
    `| ${"metric".padEnd(width)} | ${"value".padStart(valueWidth)} |`,
    `| ${"-".repeat(width)} | ${"-".repeat(valueWidth - 1)}: |`,
    ...rows.map(([k, v]) => `| ${k.padEnd(width)} | ${String(v).padStart(valueWidth)} |`),
  ];
  console.log(lines.join("\n"));
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (!existsSync(CLI)) {
    console.error(`${CLI} is missing: run \`npm run build\` (npm run bench:crash builds first)`);
    process.exit(2);
  }
  const dir = mkdtempSync(join(tmpdir(), "audit-crash-loop-"));
  const ctx = {
    ...options,
    dir,
    configPath: join(dir, "agent.yaml"),
    schedule: prng(options.seed),
    chainId: "",
    requests: [],
    byId: new Map(),
    violations: [],
    stats: { startupKills: 0, killsUnderLoad: 0 },
    logStats: { tornLinesCut: 0, resumedPastCursor: 0, warnings: new Map() },
  };
  let keepDir = options.keep;
  const cleanup = () => {
    killChildren();
    if (keepDir) return;
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      console.error(`could not remove ${dir}: ${err.message}`);
    }
  };
  process.on("exit", killChildren);
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping the agent and removing ${dir}`);
      cleanup();
      process.exit(130);
    });
  }
  writeFileSync(ctx.configPath, configYaml(dir));
  const replay = `npm run bench:crash -- --kills ${options.kills} --seed ${hex32(options.seed)} --clients ${options.clients}`;
  console.log(`crash loop: seed ${hex32(options.seed)} (replay: ${replay})`);
  console.log(`${options.kills} kills, ${options.clients} clients, data in ${dir}`);
  const t0 = performance.now();
  try {
    const every = Math.max(1, Math.round(options.kills / 10));
    for (let kill = 0; kill < options.kills; kill++) {
      await crashOnce(ctx, kill);
      if ((kill + 1) % every === 0 || kill + 1 === options.kills) {
        const acked = ctx.requests.filter((s) => s.outcome === "acked");
        console.log(
          `kill ${kill + 1}/${options.kills}: ${fmt(ctx.requests.length)} requests, ${fmt(acked.length)} acked (${fmt(acked.reduce((n, s) => n + s.audit.length, 0))} audit records), output ${fmt(Math.round(dirBytes(join(dir, "out")) / 2 ** 20))} MiB, ${fmt(Math.round((performance.now() - t0) / 1000))} s`,
        );
      }
    }
    const loopSec = (performance.now() - t0) / 1000;
    console.log("final start: delivering everything, then SIGTERM");
    const { headSeq } = await finalStop(ctx);
    for (const sent of ctx.requests) {
      sent.auditSet = new Set(sent.audit);
      ctx.byId.set(sent.id, sent);
    }
    const out = await readOutput(ctx);
    if (headSeq !== null && out.lines !== headSeq + 1)
      ctx.violations.push(`output holds ${out.lines} records, the WAL's head is seq ${headSeq}`);
    const verdict = judge(ctx, out);
    const tv = performance.now();
    const verify = await runVerify(ctx);
    const verifySec = (performance.now() - tv) / 1000;
    if (verify.code !== 0)
      ctx.violations.push(`verify exited ${verify.code}:\n${verify.output.slice(0, 4000)}`);
    const seconds = (performance.now() - t0) / 1000;
    report(ctx, out, verdict, { verify, verifySec, loopSec, seconds });
  } catch (err) {
    keepDir = true;
    cleanup();
    if (err instanceof Violation) {
      console.error(`VIOLATION: ${err.message}\nseed ${hex32(options.seed)}; data kept in ${dir}`);
      process.exit(1);
    }
    console.error(
      `crash loop failed: ${err?.stack ?? err}\nseed ${hex32(options.seed)}; data kept in ${dir}`,
    );
    process.exit(2);
  }
  if (ctx.violations.length > 0) keepDir = true;
  cleanup();
  if (ctx.violations.length > 0) {
    console.error(`\n${ctx.violations.length} violation(s); the first ones:`);
    for (const v of ctx.violations.slice(0, 30)) console.error(`  ${v}`);
    console.error(`seed ${hex32(options.seed)}; data kept in ${dir}`);
    process.exit(1);
  }
  console.log(keepDir ? `data kept in ${dir}` : "no violations");
}

function report(ctx, out, v, t) {
  const count = (outcome) => ctx.requests.filter((s) => s.outcome === outcome);
  const acked = count("acked");
  const ackedRecords = acked.reduce((n, s) => n + s.audit.length, 0);
  const sentRecords = ctx.requests.reduce((n, s) => n + s.count, 0);
  const byTransport = TRANSPORTS.map(
    (tr) => `${fmt(acked.filter((s) => s.transport === tr).length)} ${tr}`,
  );
  const verifyLine = t.verify.output.split("\n").find((l) => /^(OK|FAILED)/.test(l)) ?? "";
  const minutes = `${Math.floor(t.seconds / 60)} min ${Math.round(t.seconds % 60)} s`;
  console.log("");
  printTable([
    ["seed", hex32(ctx.seed)],
    ["clients", ctx.clients],
    ["kills (SIGKILL)", fmt(ctx.kills)],
    ["… with requests in flight", fmt(ctx.stats.killsUnderLoad)],
    ["… during start-up", fmt(ctx.stats.startupKills)],
    ["requests sent", fmt(ctx.requests.length)],
    ["records sent (audit and not)", fmt(sentRecords)],
    ["requests acked", fmt(acked.length)],
    ["… by transport", byTransport.join(", ")],
    ["requests refused", fmt(count("refused").length)],
    ["requests unknown (connection died)", fmt(count("unknown").length)],
    ["… stored whole / absent", `${fmt(v.unknownWhole)} / ${fmt(v.unknownAbsent)}`],
    ["acknowledged audit records", fmt(ackedRecords)],
    ["records in the output (seq 0..N-1)", fmt(out.lines)],
    ["record segments", fmt(out.segments)],
    ["lost (acknowledged, absent)", fmt(v.lost)],
    ["duplicated", fmt(v.duplicated)],
    ["partial requests", fmt(v.partial)],
    ["refused but stored", fmt(v.refusedStored)],
    ["non-audit or unknown records stored", fmt(out.nonAudit + out.strangers)],
    ["requests split or reordered", fmt(v.split)],
    ["acked with rejected records", fmt(v.ackedWithRejected)],
    ["seq / chain id errors", fmt(out.seqErrors)],
    ["torn lines cut at restart", fmt(ctx.logStats.tornLinesCut)],
    ["restarts resuming past the cursor", fmt(ctx.logStats.resumedPastCursor)],
    [
      "verify",
      `exit ${t.verify.code}${verifyLine ? ` (${verifyLine.trim()})` : ""}, ${t.verifySec.toFixed(1)} s`,
    ],
    ["violations", fmt(ctx.violations.length)],
    ["duration (crash loop / total)", `${Math.round(t.loopSec)} s / ${minutes}`],
  ]);
  if (ctx.logStats.warnings.size > 0) {
    console.log("\nagent warnings and errors logged (count):");
    for (const [msg, n] of ctx.logStats.warnings) console.log(`  ${n} × ${msg}`);
  }
}

await main();

import { createHash, createPrivateKey } from "node:crypto";
import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SealedBatch } from "../../agent/exporters/api.js";
import { fileExporterConfigSchema } from "../../agent/exporters/file/config.js";
import { FileSink } from "../../agent/exporters/file/file-sink.js";
import { fileSource } from "../../agent/exporters/file/reader.js";
import { type ChainReader, readChains } from "../../agent/exporters/source.js";
import { LineCheckers } from "../../agent/verify/line-checkers.js";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import {
  type PublicKey,
  type SigningKey,
  signingKeyFromPem,
} from "../../agent/integrity/signing.js";
import { Sealer } from "../../agent/sealing/sealer.js";
import { openWal } from "../../agent/store/wal.js";
import { verifyChainStream } from "../../agent/verify/stream-chain.js";
import type { ChainSummary, Finding } from "../../agent/verify/types.js";
import { verifyChain } from "../../agent/verify/verify-chain.js";
import { verifySource } from "../../agent/verify/verify.js";
import { makeTempDir } from "../helpers/agent.js";
import { deriveSeed, prng, type Rng, testSeed } from "../helpers/prng.js";

/**
 * The streaming verifier (verify/stream-chain.ts, what `audit-agent verify` runs) against
 * the whole-chain verifier (verify/verify-chain.ts) on a real signed chain: records
 * appended to a write-ahead log, sealed by the Sealer in small batches with a key rotation
 * in the middle, and written by the file exporter in small segments. For hundreds of
 * seeded random tamperings of that output both must report the same findings, in the same
 * order, and the same summaries. With a window far smaller than the distances a record is
 * moved or copied over, the streaming verifier must still report every tampering. And a
 * chain of 200,000 realistic records verifies clean without the verifier holding it.
 */

const FILE = "test/unit/stream-verify.test.ts";
const SEED = testSeed(FILE);
const silent = pino({ level: "silent" });
const CHAIN_ID = "stream-verify-chain";

// ---------------------------------------------------------------------------------------
// A real chain: WAL, Sealer, FileSink

/** An Ed25519 key made from the run's seed, so a replay signs with the same keys. */
function seededKey(name: string): SigningKey {
  const raw = createHash("sha256").update(`${FILE}/${name}/${SEED.seed}`).digest();
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), raw]);
  const pem = createPrivateKey({ key: der, format: "der", type: "pkcs8" })
    .export({ format: "pem", type: "pkcs8" })
    .toString();
  return signingKeyFromPem(name, pem);
}

const NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];
const ROLES = ["viewer", "editor", "admin", "owner", "auditor", "billing"];

/**
 * The canonical text of audit record `i` in the shape the agent writes (logRecord,
 * resource, scope), its body `bodyChars` long; with `unusual`, non-ASCII characters and
 * escapes as well.
 */
function auditRecord(i: number, bodyChars: number, unusual: boolean): string {
  const who = `${NAMES[i % NAMES.length]}.${(i * 7919) % 9973}@example.com`;
  const [from, to] = [ROLES[i % ROLES.length], ROLES[(i * 5 + 1) % ROLES.length]];
  const odd = unusual && i % 3 === 0 ? ` "quoted"\\ é ü 😀 日本語 \u2028 tab\t` : "";
  const body =
    `User ${who} changed role of account ${100_000 + i} from ${from} to ${to}${odd}; ticket SEC-${1000 + (i % 9000)}. `.padEnd(
      bodyChars,
      ".",
    );
  const str = (key: string, value: string) => ({ key, value: { stringValue: value } });
  const record = {
    logRecord: {
      attributes: [
        { key: "audit", value: { boolValue: true } },
        str("user.email", who),
        { key: "account.id", value: { intValue: String(100_000 + i) } },
        str("role.old", from as string),
        str("role.new", to as string),
        str("client.address", `10.${i % 256}.${(i >> 8) % 256}.${(i * 13) % 256}`),
      ],
      body: { stringValue: body },
      eventName: "audit.user.role_changed",
      flags: 1,
      severityNumber: 9,
      severityText: "INFO",
      spanId: (0x1000000000000000n + BigInt(i)).toString(16),
      timeUnixNano: String(1_700_000_000_000_000_000n + BigInt(i) * 1_000_000n),
      traceId: createHash("md5").update(String(i)).digest("hex"),
    },
    resource: {
      attributes: [
        str("service.name", "accounts-api"),
        str("service.version", "4.12.0"),
        str("service.namespace", "identity"),
        str("deployment.environment.name", "prod"),
        str("k8s.pod.name", "accounts-api-7d9f8b6c5-x2k4p"),
      ],
    },
    scope: { name: "com.example.audit", version: "1.3.0" },
  };
  return canonicalize(record as unknown as JsonValue);
}

/** One signing period: its key, the outgoing key when it starts with a rotation, appends. */
interface Period {
  key: SigningKey;
  previousKey?: SigningKey;
  /** Records per append; the Sealer seals everything after each. */
  appends: readonly number[];
}

/**
 * Appends and seals `periods` in a new WAL under `dir`, then writes every sealed entry with
 * the file exporter to `dir`/out, as delivery hands them over (a few batches per write).
 * Returns the output directory.
 */
async function writeChain(
  dir: string,
  o: {
    periods: readonly Period[];
    batchRecords: number;
    segmentMiB: number;
    record: (i: number) => string | Buffer;
  },
): Promise<string> {
  const wal = await openWal({ directory: join(dir, "wal"), maxBytes: 1 << 30, chainId: CHAIN_ID });
  const out = join(dir, "out");
  try {
    let next = 0;
    for (const period of o.periods) {
      const sealer = await Sealer.open({
        log: wal.log,
        sealed: wal.sealed,
        key: period.key,
        previousKey: period.previousKey,
        origin: `otel-audit-agent/${CHAIN_ID}`,
        policy: { maxRecords: o.batchRecords, maxBytes: 64 << 20, timeoutMs: 60_000 },
        logger: silent,
      });
      for (const n of period.appends) {
        const texts = Array.from({ length: n }, () => o.record(next++));
        await wal.log.append(texts, String(BigInt(Date.now()) * 1_000_000n));
        await sealer.sealAll();
      }
      await sealer.stop();
    }
    const sink = new FileSink(
      fileExporterConfigSchema.parse({ directory: out, rotation: { max_megabytes: o.segmentMiB } }),
      silent,
    );
    await sink.open(CHAIN_ID);
    let group: SealedBatch[] = [];
    for (let i = 0; i < wal.sealed.entryCount; i++) {
      const entry = await wal.sealed.readEntry(i);
      if (entry === null) throw new Error(`sealed entry ${i} is missing`);
      const records =
        entry.count > 0 ? await wal.log.read(entry.firstSeq - 1, entry.count, Infinity) : [];
      if (records.length !== entry.count) throw new Error(`records of entry ${i} are missing`);
      group.push({ ...entry, records });
      if (group.length >= 4 || i === wal.sealed.entryCount - 1) {
        await sink.writeAll(group);
        group = [];
      }
    }
    await sink.close();
  } finally {
    await wal.close();
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The two verifiers

interface ChainOutcome {
  findings: Finding[];
  summary: ChainSummary;
  usedCheckpoints: number[];
}

type Known = { note: string; location: string }[];

/** verifyChain over each chain read whole (readChains). */
async function verifyWhole(
  out: string,
  trusted: PublicKey[],
  known: Known,
): Promise<ChainOutcome[]> {
  const results: ChainOutcome[] = [];
  for (const data of await readChains(fileSource(out))) {
    const r = await verifyChain(data, { trusted, knownCheckpoints: known });
    results.push({
      findings: r.findings,
      summary: r.summary,
      usedCheckpoints: [...r.usedCheckpoints].sort((a, b) => a - b),
    });
  }
  return results;
}

/**
 * How the lines reach the verifier: as bytes checked on the judging thread (the default), as
 * bytes checked on worker threads, or as text (the path of readers that hold text).
 */
type LinePath = "bytes" | "threads" | "text";
const threaded = new LineCheckers(2);
afterAll(() => threaded.close());

/** verifyChainStream over each chain as the file reader streams it. */
async function verifyStreamed(
  out: string,
  trusted: PublicKey[],
  known: Known,
  window?: number,
  path: LinePath = "bytes",
): Promise<ChainOutcome[]> {
  const results: ChainOutcome[] = [];
  for await (const chain of fileSource(out).chains()) {
    const reader: ChainReader =
      path === "text"
        ? { chainId: chain.chainId, records: chain.records, manifests: chain.manifests }
        : chain;
    const r = await verifyChainStream(reader, {
      trusted,
      knownCheckpoints: known,
      window,
      ...(path === "threads" ? { lineCheckers: threaded } : {}),
    });
    results.push({
      findings: r.findings,
      summary: r.summary,
      usedCheckpoints: [...r.usedCheckpoints].sort((a, b) => a - b),
    });
  }
  return results;
}

/** Where two outcomes first differ, for the failure message (null when they are equal). */
function firstDifference(whole: ChainOutcome[], streamed: ChainOutcome[]): string | null {
  const show = (f: Finding | undefined) =>
    f === undefined
      ? "(none)"
      : `${f.category} ${f.location} seq=${f.seq} manifest=${f.manifest}: ${f.detail}`;
  if (whole.length !== streamed.length)
    return `${whole.length} chains read whole, ${streamed.length} streamed`;
  for (let c = 0; c < whole.length; c++) {
    const [w, s] = [whole[c] as ChainOutcome, streamed[c] as ChainOutcome];
    const n = Math.max(w.findings.length, s.findings.length);
    for (let i = 0; i < n; i++) {
      if (!isDeepStrictEqual(w.findings[i], s.findings[i]))
        return `finding ${i} of ${w.findings.length} whole / ${s.findings.length} streamed:\n      whole:    ${show(w.findings[i])}\n      streamed: ${show(s.findings[i])}`;
    }
    if (!isDeepStrictEqual(w.summary, s.summary))
      return `summaries:\n      whole:    ${JSON.stringify(w.summary)}\n      streamed: ${JSON.stringify(s.summary)}`;
    if (!isDeepStrictEqual(w.usedCheckpoints, s.usedCheckpoints))
      return `checkpoints used: whole ${w.usedCheckpoints}, streamed ${s.usedCheckpoints}`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Tampering with the output

/** A file's lines, each with its newline (a final line without one kept as it is). */
function splitLines(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < b.length; i++)
    if (b[i] === 0x0a) {
      out.push(b.subarray(start, i + 1));
      start = i + 1;
    }
  if (start < b.length) out.push(b.subarray(start));
  return out;
}

type Kind = "records" | "manifests";
const kindOf = (name: string): Kind => (name.startsWith("records-") ? "records" : "manifests");

/** The chain directory's segment files, as lines, for one tampering. */
class Segments {
  readonly lines = new Map<string, Buffer[]>();
  readonly removed = new Set<string>();
  readonly truncated = new Map<string, Buffer>();

  constructor(pristine: ReadonlyMap<string, Buffer>) {
    for (const [name, bytes] of pristine) this.lines.set(name, splitLines(bytes));
  }

  names(kind?: Kind): string[] {
    return [...this.lines.keys()].filter((n) => kind === undefined || kindOf(n) === kind);
  }

  /** Every line of a kind (or all) in storage order, as [file, index]. */
  positions(kind?: Kind): [string, number][] {
    const out: [string, number][] = [];
    for (const name of this.names(kind).sort())
      (this.lines.get(name) as Buffer[]).forEach((_, i) => out.push([name, i]));
    return out;
  }

  line([name, i]: [string, number]): Buffer {
    return (this.lines.get(name) as Buffer[])[i] as Buffer;
  }

  /** Whether every kind's lines are still the pristine bytes in the pristine order. */
  sameOrder(pristine: ReadonlyMap<string, Buffer>): boolean {
    if (this.truncated.size > 0) return false;
    return (["records", "manifests"] as const).every((kind) => {
      const names = [...pristine.keys()].filter((n) => kindOf(n) === kind).sort();
      const before = Buffer.concat(names.map((n) => pristine.get(n) as Buffer));
      const after = Buffer.concat(this.positions(kind).map((p) => this.line(p)));
      return before.equals(after);
    });
  }

  /** The files as they are to be written: name → bytes, or null when removed. */
  changed(pristine: ReadonlyMap<string, Buffer>): Map<string, Buffer | null> {
    const out = new Map<string, Buffer | null>();
    for (const name of this.removed) out.set(name, null);
    for (const [name, ls] of this.lines) {
      const bytes = this.truncated.get(name) ?? Buffer.concat(ls);
      if (!bytes.equals(pristine.get(name) as Buffer)) out.set(name, bytes);
    }
    return out;
  }
}

const OPS = [
  "flip",
  "delete",
  "duplicate",
  "swap",
  "truncate",
  "insert",
  "move",
  "remove-file",
] as const;
type Op = (typeof OPS)[number];

/** A position to insert at in file `name`: before line `at` (at = length: at the end). */
function insertAt(s: Segments, rng: Rng, kind?: Kind): [string, number] {
  const name = rng.pick(s.names(kind));
  return [name, rng.int((s.lines.get(name) as Buffer[]).length + 1)];
}

/** Applies one random tampering of kind `op` to `s`; returns what it did. */
function tamper(s: Segments, op: Op, rng: Rng): string {
  const kind: Kind = rng.chance(0.6) ? "records" : "manifests";
  const all = s.positions(kind);
  const pos = rng.pick(all);
  const [name, i] = pos;
  const ls = s.lines.get(name) as Buffer[];
  switch (op) {
    case "flip": {
      const l = Buffer.from(s.line(pos));
      const at = rng.int(Math.max(1, l.length - 1)); // not the newline
      const old = l[at] as number;
      l[at] = (old + 1 + rng.int(255)) % 256;
      ls[i] = l;
      return `flip ${name}:${i + 1} byte ${at} ${old}→${l[at]}`;
    }
    case "delete":
      ls.splice(i, 1);
      return `delete ${name}:${i + 1}`;
    case "duplicate": {
      const line = s.line(pos);
      const [to, at] = rng.chance(0.5) ? [name, i + 1] : insertAt(s, rng, kind);
      (s.lines.get(to) as Buffer[]).splice(at, 0, line);
      return `duplicate ${name}:${i + 1} before ${to}:${at + 1}`;
    }
    case "swap": {
      const candidates = rng.chance(0.5) ? ls.map((_, k) => [name, k] as [string, number]) : all;
      const other = rng.pick(candidates.filter(([n, k]) => n !== name || k !== i));
      if (other === undefined) return `swap ${name}:${i + 1} with nothing (a one-line file)`;
      const [a, b] = [s.line(pos), s.line(other)];
      ls[i] = b;
      (s.lines.get(other[0]) as Buffer[])[other[1]] = a;
      return `swap ${name}:${i + 1} ${other[0]}:${other[1] + 1}`;
    }
    case "truncate": {
      const bytes = Buffer.concat(ls);
      const at = rng.int(bytes.length);
      s.truncated.set(name, bytes.subarray(0, at));
      return `truncate ${name} at ${at}/${bytes.length}`;
    }
    case "insert": {
      const from = rng.pick(s.positions());
      const line = s.line(from);
      const [to, at] = insertAt(s, rng);
      (s.lines.get(to) as Buffer[]).splice(at, 0, line);
      return `insert ${from[0]}:${from[1] + 1} before ${to}:${at + 1}`;
    }
    case "move": {
      const [line] = ls.splice(i, 1) as [Buffer];
      const [to, at] = insertAt(s, rng, kind);
      (s.lines.get(to) as Buffer[]).splice(at, 0, line);
      return `move ${name}:${i + 1} before ${to}:${at + 1} (after removing it)`;
    }
    case "remove-file":
      s.lines.delete(name);
      s.removed.add(name);
      return `remove ${name}`;
  }
}

/** Writes `changes` into `chainDir`; returns how to put the pristine files back. */
function apply(
  chainDir: string,
  changes: ReadonlyMap<string, Buffer | null>,
  pristine: ReadonlyMap<string, Buffer>,
): () => void {
  for (const [name, bytes] of changes) {
    if (bytes === null) rmSync(join(chainDir, name));
    else writeFileSync(join(chainDir, name), bytes);
  }
  return () => {
    for (const name of changes.keys())
      writeFileSync(join(chainDir, name), pristine.get(name) as Buffer);
  };
}

function readFiles(chainDir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const name of readdirSync(chainDir).sort())
    files.set(name, readFileSync(join(chainDir, name)));
  return files;
}

function tally(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

// ---------------------------------------------------------------------------------------

describe(`streaming verification (seed ${SEED.hex})`, () => {
  const tmp = makeTempDir("stream-verify-");
  const keyA = seededKey("stream-a");
  const keyB = seededKey("stream-b");
  const trusted = [keyA.public, keyB.public];
  let work = "";
  let chainDir = "";
  let pristine = new Map<string, Buffer>();
  let known: Known = [];
  const BATCH = 20;

  beforeAll(async () => {
    // 280 records (~1 KB each) in batches of at most 20 (each append sealed at once, so
    // some are partial), key A then a rotation to key B; 32 KiB segments: ten file pairs or so.
    const out = await writeChain(join(tmp.path, "small"), {
      periods: [
        { key: keyA, appends: [7, 23, 40, 13, 61, 9] },
        { key: keyB, previousKey: keyA, appends: [17, 50, 33, 27] },
      ],
      batchRecords: BATCH,
      segmentMiB: 32 / 1024,
      record: (i) => auditRecord(i, 60 + ((i * 37) % 200), true),
    });
    work = join(tmp.path, "work");
    cpSync(out, work, { recursive: true });
    chainDir = join(work, CHAIN_ID);
    pristine = readFiles(chainDir);
    // The newest checkpoint, as a verifier would have kept it from an earlier run.
    const manifests = [...pristine.keys()].filter((n) => kindOf(n) === "manifests");
    const lastLine = splitLines(pristine.get(manifests[manifests.length - 1] as string) as Buffer)
      .pop()
      ?.toString("utf8");
    known = [
      {
        note: (JSON.parse(lastLine as string) as { checkpoint: string }).checkpoint,
        location: "earlier.checkpoint",
      },
    ];
  });

  afterAll(() => tmp.cleanup());

  it("the chain has what the tamperings need: segments of both kinds, a key rotation, partial batches", async () => {
    const names = [...pristine.keys()];
    expect(names.filter((n) => kindOf(n) === "records").length).toBeGreaterThanOrEqual(6);
    expect(names.filter((n) => kindOf(n) === "manifests").length).toBe(
      names.filter((n) => kindOf(n) === "records").length,
    );
    const entries = names
      .filter((n) => kindOf(n) === "manifests")
      .flatMap((n) => splitLines(pristine.get(n) as Buffer))
      .map(
        (l) =>
          (JSON.parse(l.toString("utf8")) as { manifest: { type: string; count?: number } })
            .manifest,
      );
    expect(entries.filter((m) => m.type === "key-rotation")).toHaveLength(1);
    expect(entries.some((m) => m.type === "batch" && (m.count ?? 0) < BATCH)).toBe(true);
    // Pristine: both verifiers clean and in agreement, with and without the checkpoint.
    for (const k of [[], known]) {
      const whole = await verifyWhole(work, trusted, k);
      expect(whole[0]?.findings).toEqual([]);
      expect(whole[0]?.summary.records).toBe(280);
      expect(await verifyStreamed(work, trusted, k)).toStrictEqual(whole);
      expect(await verifyStreamed(work, trusted, k, 8)).toStrictEqual(whole);
      expect(await verifyStreamed(work, trusted, k, undefined, "threads")).toStrictEqual(whole);
      expect(await verifyStreamed(work, trusted, k, undefined, "text")).toStrictEqual(whole);
    }
    const report = await verifySource(fileSource(work), trusted, known);
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
  });

  const ITERATIONS = 300;
  it(`reports exactly what the whole-chain verifier reports for ${ITERATIONS} random tamperings (seed ${SEED.hex})`, async () => {
    const rng = prng(deriveSeed(SEED.seed, 1));
    const mismatches: string[] = [];
    const undetected: string[] = [];
    const byOp = new Map<string, number>();
    const byCategory = new Map<string, number>();
    const times = { whole: 0, stream: 0 };
    for (let n = 0; n < ITERATIONS; n++) {
      const s = new Segments(pristine);
      const op = rng.pick(OPS);
      const what = tamper(s, op, rng);
      const withKnown = rng.chance(0.5);
      const k = withKnown ? known : [];
      const restore = apply(chainDir, s.changed(pristine), pristine);
      try {
        const t0 = performance.now();
        const whole = await verifyWhole(work, trusted, k);
        const t1 = performance.now();
        // Every third tampering through each way lines reach the verifier.
        const path = (["bytes", "threads", "text"] as const)[n % 3];
        const streamed = await verifyStreamed(work, trusted, k, undefined, path);
        times.whole += t1 - t0;
        times.stream += performance.now() - t1;
        const label = `#${n} ${what}${withKnown ? " (with a checkpoint seen earlier)" : ""} (lines as ${path})`;
        const diff = firstDifference(whole, streamed);
        if (diff !== null) mismatches.push(`${label}: ${diff}`);
        const findings = whole.flatMap((c) => c.findings);
        // Lines moved across a segment boundary, order kept: nothing to detect.
        const relocated = s.sameOrder(pristine);
        if (findings.length === 0 && !relocated) undetected.push(label);
        tally(byOp, relocated ? `${op} (order kept)` : op);
        for (const c of new Set(findings.map((f) => f.category))) tally(byCategory, c);
        // What `audit-agent verify` reports: the same chains, and the chain's findings first.
        if (n % 4 === 0) {
          const report = await verifySource(fileSource(work), trusted, k);
          expect(report.chains, label).toStrictEqual(whole.map((c) => c.summary));
          expect(report.findings.slice(0, findings.length), label).toStrictEqual(findings);
          expect(report.ok, label).toBe(findings.length === 0);
        }
      } finally {
        restore();
      }
    }
    console.log(
      `[stream-verify] ${ITERATIONS} tamperings (seed ${SEED.hex}): by operation ${JSON.stringify(Object.fromEntries(byOp))}; reports naming each category ${JSON.stringify(Object.fromEntries(byCategory))}; ${mismatches.length} mismatches, ${undetected.length} undetected; ${(times.whole / 1000).toFixed(1)} s reading and verifying whole, ${(times.stream / 1000).toFixed(1)} s streaming`,
    );
    expect(mismatches, `replay: ${SEED.replay}`).toEqual([]);
    expect(undetected, `replay: ${SEED.replay}`).toEqual([]);
    expect((await verifyWhole(work, trusted, known))[0]?.findings).toEqual([]);
  });

  const WINDOW = 8;
  it(`with a window of ${WINDOW}, reports copies and reorders further apart than the window (seed ${SEED.hex})`, async () => {
    const rng = prng(deriveSeed(SEED.seed, 2));
    const undetected: string[] = [];
    const byCategory = new Map<string, number>();
    const far = (s: Segments): [[string, number], [string, number], number] => {
      const all = s.positions("records");
      for (;;) {
        const a = rng.int(all.length);
        const b = rng.int(all.length);
        if (Math.abs(a - b) > 2 * WINDOW + 1)
          return [all[a] as [string, number], all[b] as [string, number], b - a];
      }
    };
    const ops = {
      "move far": (s: Segments) => {
        const [from, to, d] = far(s);
        const line = s.line(from);
        (s.lines.get(from[0]) as Buffer[]).splice(from[1], 1);
        const at = from[0] === to[0] && to[1] > from[1] ? to[1] - 1 : to[1];
        (s.lines.get(to[0]) as Buffer[]).splice(at, 0, line);
        return `move ${from[0]}:${from[1] + 1} ${d} lines, before ${to[0]}:${to[1] + 1}`;
      },
      "copy far": (s: Segments) => {
        const [from, to, d] = far(s);
        (s.lines.get(to[0]) as Buffer[]).splice(to[1], 0, s.line(from));
        return `copy ${from[0]}:${from[1] + 1} ${d} lines away, before ${to[0]}:${to[1] + 1}`;
      },
      "swap far": (s: Segments) => {
        const [a, b, d] = far(s);
        const [la, lb] = [s.line(a), s.line(b)];
        (s.lines.get(a[0]) as Buffer[])[a[1]] = lb;
        (s.lines.get(b[0]) as Buffer[])[b[1]] = la;
        return `swap ${a[0]}:${a[1] + 1} ${b[0]}:${b[1] + 1} (${d} lines apart)`;
      },
      "move a run far": (s: Segments) => {
        const [from, to, d] = far(s);
        const src = s.lines.get(from[0]) as Buffer[];
        const run = src.splice(from[1], Math.min(1 + rng.int(WINDOW * 2), src.length - from[1]));
        const dst = s.lines.get(to[0]) as Buffer[];
        dst.splice(Math.min(to[1], dst.length), 0, ...run);
        return `move ${run.length} lines from ${from[0]}:${from[1] + 1} about ${d} lines, before ${to[0]}:${to[1] + 1}`;
      },
    };
    const names = Object.keys(ops) as (keyof typeof ops)[];
    const CASES = 120;
    for (let n = 0; n < CASES; n++) {
      const s = new Segments(pristine);
      // Mostly far moves and copies; a quarter of the random tamperings above as well.
      const what = n % 4 === 3 ? tamper(s, rng.pick(OPS), rng) : ops[rng.pick(names)](s);
      const restore = apply(chainDir, s.changed(pristine), pristine);
      try {
        const streamed = await verifyStreamed(work, trusted, [], WINDOW);
        const findings = streamed.flatMap((c) => c.findings);
        if (findings.length === 0 && !s.sameOrder(pristine)) undetected.push(`#${n} ${what}`);
        for (const c of new Set(findings.map((f) => f.category))) tally(byCategory, c);
        if (n % 8 === 0) {
          const report = await verifySource(fileSource(work), trusted, [], { window: WINDOW });
          expect(report.ok, what).toBe(findings.length === 0);
        }
      } finally {
        restore();
      }
    }
    console.log(
      `[stream-verify] window ${WINDOW}, ${CASES} far tamperings (seed ${SEED.hex}): reports naming each category ${JSON.stringify(Object.fromEntries(byCategory))}; ${undetected.length} undetected`,
    );
    expect(undetected, `replay: ${SEED.replay}`).toEqual([]);
    // The pristine copy, restored, is clean with the small window too.
    const clean = await verifySource(fileSource(work), trusted, known, { window: WINDOW });
    expect(clean.findings).toEqual([]);
    expect(clean.ok).toBe(true);
  });

  it("verifies a chain of 200,000 realistic records clean without holding it", async () => {
    const RECORDS = 200_000;
    // A pool of realistic records (~1.4 KB of canonical JSON each), cycled: every line still
    // differs (seq, prev, receive time).
    const pool = Array.from({ length: 997 }, (_, i) =>
      Buffer.from(auditRecord(i, 200 + (i % 40), false), "utf8"),
    );
    const key = seededKey("stream-big");
    const made = performance.now();
    const out = await writeChain(join(tmp.path, "big"), {
      periods: [{ key, appends: Array.from({ length: RECORDS / 2000 }, () => 2000) }],
      batchRecords: 1000,
      segmentMiB: 64,
      record: (i) => pool[i % pool.length] as Buffer,
    });
    rmSync(join(tmp.path, "big", "wal"), { recursive: true, force: true });
    const dir = join(out, CHAIN_ID);
    const diskBytes = readdirSync(dir).reduce((sum, n) => sum + statSync(join(dir, n)).size, 0);
    const madeIn = (performance.now() - made) / 1000;

    // Live memory after a full collection, sampled as the records stream.
    const gc = ((globalThis as { gc?: () => void }).gc ??
      (setFlagsFromString("--expose-gc"), runInNewContext("gc"))) as () => void;
    const live = () => {
      gc();
      const m = process.memoryUsage();
      return { heap: m.heapUsed, buffers: m.arrayBuffers };
    };
    const base = live();
    const peak = { heap: 0, total: 0 };
    // A sample every SAMPLE_RECORDS records read, whatever the reader's page size.
    const SAMPLE_RECORDS = 16_384;
    let samples = 0;
    const t0 = performance.now();
    const results = [];
    for await (const reader of fileSource(out).chains())
      results.push(
        await verifyChainStream(reader, {
          trusted: [key.public],
          knownCheckpoints: [],
          onRecords: (_chainId, read) => {
            if (Math.floor(read / SAMPLE_RECORDS) <= samples) return;
            samples++;
            const now = live();
            peak.heap = Math.max(peak.heap, now.heap - base.heap);
            peak.total = Math.max(peak.total, now.heap - base.heap + now.buffers - base.buffers);
          },
        }),
      );
    const seconds = (performance.now() - t0) / 1000;
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    console.log(
      `[stream-verify] ${RECORDS} records, ${mib(diskBytes)} on disk (written in ${madeIn.toFixed(1)} s): verified in ${seconds.toFixed(1)} s with ${samples} memory samples; live heap grew at most ${mib(peak.heap)}, heap + array buffers ${mib(peak.total)} (limit ${mib(diskBytes / 2)})`,
    );
    expect(results).toHaveLength(1);
    expect(results[0]?.findings).toEqual([]);
    expect(results[0]?.summary.records).toBe(RECORDS);
    expect(results[0]?.summary.batches).toBe(RECORDS / 1000);
    expect(samples).toBeGreaterThanOrEqual(10);
    // Holding the chain would take more than its bytes on disk (the whole-chain verifier
    // takes several times them); half leaves room for what a collection has not freed yet.
    expect(peak.heap).toBeLessThan(diskBytes / 2);
    expect(peak.total).toBeLessThan(diskBytes / 2);
  });
});

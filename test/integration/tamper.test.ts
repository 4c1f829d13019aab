import { spawnSync } from "node:child_process";
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leafHash } from "../../agent/integrity/format.js";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import { readTrustedKeys, writeKeyPair } from "../../agent/integrity/key-files.js";
import {
  checkManifestSignature,
  type Manifest,
  manifestKeyId,
  type SignedManifest,
  signManifest,
} from "../../agent/integrity/manifest.js";
import { parseNote } from "../../agent/integrity/note.js";
import {
  generateSigningKey,
  type PublicKey,
  type SigningKey,
} from "../../agent/integrity/signing.js";
import { parseConfig } from "../../agent/config/load.js";
import { fileSource } from "../../agent/exporters/file/reader.js";
import { startAgent } from "../../agent/service/agent.js";
import type { FindingCategory, VerifyReport } from "../../agent/verify/types.js";
import { formatReport, verifySource } from "../../agent/verify/verify.js";
import {
  CLI,
  type InProcessAgent,
  makeTempDir,
  startInProcessAgent,
  type TestConfigOptions,
  testConfigYaml,
  waitFor,
} from "../helpers/agent.js";
import { prng } from "../helpers/prng.js";

/**
 * Tamper-evidence of real agent output. An in-process agent receives audit records from
 * the OpenTelemetry JS SDK and writes them, sealed in small signed batches, with the file
 * exporter. Each test then alters a copy of that output in exactly one way and checks that
 * the verifier, given only the trusted public key (and, for truncation, a checkpoint seen
 * earlier), reports exactly the expected kind of finding at the right place, and that the
 * untouched output verifies clean.
 */

const RECORDS = 60;
const BATCH = 10;

// ---------------------------------------------------------------------------------------
// Producing output

async function sendAuditRecords(url: string, from: number, count: number): Promise<void> {
  const exporter = new OTLPLogExporter({ url });
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": "tamper-test", "service.version": "1.0" }),
    processors: [new SimpleLogRecordProcessor({ exporter })],
  });
  const logger = provider.getLogger("tamper.audit", "1.0.0");
  for (let i = from; i < from + count; i++) {
    logger.emit({
      severityNumber: SeverityNumber.INFO,
      severityText: "INFO",
      eventName: "audit.setting.changed",
      body: `audit event ${i}: user u-${i % 7} changed setting s-${i}`,
      attributes: { audit: true, "event.idx": i, "user.id": `u-${i % 7}` },
    });
    // The exporter drops exports beyond its concurrency limit (30): keep few in flight.
    // (The simple processor's own forceFlush does not wait for exports; the exporter's does.)
    if ((i - from) % 5 === 4) await exporter.forceFlush();
  }
  await exporter.forceFlush();
  await provider.shutdown();
}

/** Waits until every record through `lastSeq` is sealed and written by the file exporter. */
async function waitDelivered(agent: InProcessAgent["agent"], lastSeq: number): Promise<void> {
  await waitFor(
    () =>
      agent.sealed.sealedThrough === lastSeq && agent.deliveries[0]?.deliveredThrough === lastSeq,
    15_000,
    `records through seq ${lastSeq} sealed and delivered`,
  ).catch((err: Error) => {
    const d = agent.deliveries[0];
    throw new Error(
      `${err.message}: WAL head ${agent.wal.headSeq}, sealed through ${agent.sealed.sealedThrough}, exporter ${d?.state} delivered through ${d?.deliveredThrough} (${d?.lastError ?? "no error"})`,
    );
  });
}

async function runAgent(o: TestConfigOptions, from: number, count: number): Promise<void> {
  const agent = await startInProcessAgent({ grpc: false, batchMaxRecords: BATCH, ...o });
  try {
    await sendAuditRecords(agent.httpUrl, from, count);
    await waitDelivered(agent.agent, from + count - 1);
  } finally {
    await agent.stop();
  }
}

// ---------------------------------------------------------------------------------------
// Reading and rewriting the file exporter's output

interface Output {
  chainDir: string;
  recordsName: string;
  manifestsName: string;
  records: string[];
  manifests: string[];
}

function lines(path: string): string[] {
  const text = readFileSync(path, "utf8");
  expect(text.endsWith("\n"), `${path} ends with a newline`).toBe(true);
  return text.slice(0, -1).split("\n");
}

/** The one chain under `outDir`, written as one records and one manifests segment. */
function readOutput(outDir: string): Output {
  const chains = readdirSync(outDir);
  expect(chains).toHaveLength(1);
  const chainDir = join(outDir, chains[0] as string);
  const names = readdirSync(chainDir).sort();
  const recordsNames = names.filter((n) => /^records-\d{20}\.ndjson$/.test(n));
  const manifestsNames = names.filter((n) => /^manifests-\d{20}\.ndjson$/.test(n));
  expect(recordsNames).toHaveLength(1);
  expect(manifestsNames).toHaveLength(1);
  const recordsName = recordsNames[0] as string;
  const manifestsName = manifestsNames[0] as string;
  return {
    chainDir,
    recordsName,
    manifestsName,
    records: lines(join(chainDir, recordsName)),
    manifests: lines(join(chainDir, manifestsName)),
  };
}

function writeOutput(o: Output): void {
  const text = (l: string[]) => (l.length ? `${l.join("\n")}\n` : "");
  writeFileSync(join(o.chainDir, o.recordsName), text(o.records));
  writeFileSync(join(o.chainDir, o.manifestsName), text(o.manifests));
}

interface ManifestLine {
  checkpoint: string | null;
  manifest: SignedManifest;
}

function parseManifestLine(line: string): ManifestLine {
  return JSON.parse(line) as ManifestLine;
}

/** A manifests line exactly as the file exporter writes it. */
function manifestLine(checkpoint: string | null, manifestText: string): string {
  return `{"checkpoint":${checkpoint === null ? "null" : JSON.stringify(checkpoint)},"manifest":${manifestText}}`;
}

interface BatchInfo {
  index: number;
  firstSeq: number;
  lastSeq: number;
  count: number;
}

function batchesOf(o: Output): BatchInfo[] {
  return o.manifests.map((line) => {
    const m = parseManifestLine(line).manifest;
    if (m.type !== "batch") throw new Error(`unexpected ${m.type} manifest`);
    return {
      index: Number(m.index),
      firstSeq: Number(m.firstSeq),
      lastSeq: Number(m.lastSeq),
      count: m.count,
    };
  });
}

/** The manifest minus its signature, re-signed by `key` under that key's id. */
function resign(line: string, key: SigningKey): string {
  const { checkpoint, manifest } = parseManifestLine(line);
  const { signature: _signature, ...unsigned } = manifest;
  const text = signManifest({ ...unsigned, keyId: manifestKeyId(key.public) } as Manifest, key);
  return manifestLine(checkpoint, text);
}

/** A canonical record line with a different body, claiming the same seq and prev. */
function forgeBody(line: string, body: string): string {
  const env = JSON.parse(line) as { record: { logRecord: { body: unknown } } };
  env.record.logRecord.body = { stringValue: body };
  return canonicalize(env as unknown as JsonValue);
}

/**
 * The same bytes in a different base64 spelling: the last character before the padding
 * carries bits that decoders ignore. One byte of the stored text changes, the decoded
 * signature does not.
 */
function respell(b64: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const at = b64.replace(/=+$/, "").length - 1;
  for (const c of alphabet) {
    const other = `${b64.slice(0, at)}${c}${b64.slice(at + 1)}`;
    if (other !== b64 && Buffer.from(other, "base64").equals(Buffer.from(b64, "base64")))
      return other;
  }
  throw new Error(`${b64} has no other spelling`);
}

// ---------------------------------------------------------------------------------------
// Judging reports

const categoriesOf = (r: VerifyReport): FindingCategory[] =>
  [...new Set(r.findings.map((f) => f.category))].sort();

function expectOnly(report: VerifyReport, expected: FindingCategory[]): void {
  const text = formatReport(report);
  expect(report.ok, text).toBe(false);
  expect(categoriesOf(report), text).toEqual([...expected].sort());
}

function expectFinding(
  report: VerifyReport,
  match: { category: FindingCategory; seq?: number; manifest?: number; location?: string },
  detail?: RegExp,
): void {
  const hit = report.findings.find(
    (f) =>
      f.category === match.category &&
      (match.seq === undefined || f.seq === match.seq) &&
      (match.manifest === undefined || f.manifest === match.manifest) &&
      (match.location === undefined || f.location === match.location) &&
      (detail === undefined || detail.test(f.detail)),
  );
  expect(
    hit,
    `no finding ${JSON.stringify(match)} ${detail ?? ""} in\n${formatReport(report)}`,
  ).toBeDefined();
}

// ---------------------------------------------------------------------------------------

describe("tampering with real agent output", () => {
  const tmp = makeTempDir("audit-agent-tamper-");
  const cleanups: Array<() => void> = [];
  let pristineOut = "";
  let pristine: Output;
  let batches: BatchInfo[];
  let trusted: PublicKey[];
  let trustFile = "";
  /** The checkpoint of the last batch, as a monitor would have saved it. */
  let savedCheckpoint = "";
  /** A middle batch with at least three records, and a record inside it. */
  let mid: BatchInfo;
  let k = 0;

  const recLoc = (o: Output, line0: number) => `${o.recordsName}:${line0 + 1}`;
  const manLoc = (o: Output, line0: number) => `${o.manifestsName}:${line0 + 1}`;

  /** Copies the pristine output, applies `tamper` to the copy, and verifies it. */
  async function verifyTampered(
    tamper: (o: Output) => void,
    known: { note: string; location: string }[] = [],
  ): Promise<{ report: VerifyReport; o: Output }> {
    const work = makeTempDir("audit-agent-tamper-case-");
    cleanups.push(work.cleanup);
    cpSync(pristineOut, work.path, { recursive: true });
    const o = readOutput(work.path);
    tamper(o);
    writeOutput(o);
    return { report: await verifySource(fileSource(work.path), trusted, known), o };
  }

  beforeAll(async () => {
    await runAgent({ dir: tmp.path }, 0, RECORDS);
    pristineOut = join(tmp.path, "out");
    pristine = readOutput(pristineOut);
    batches = batchesOf(pristine);
    trustFile = join(tmp.path, "keys", "signing.pub");
    trusted = readTrustedKeys([trustFile]);
    savedCheckpoint = parseManifestLine(pristine.manifests.at(-1) as string).checkpoint as string;
    const candidates = batches.filter(
      (b) => b.count >= 3 && b.index > 0 && b.index < batches.length - 1,
    );
    mid = candidates[Math.floor(candidates.length / 2)] as BatchInfo;
    k = (mid?.firstSeq ?? 0) + 1;
  });

  afterAll(() => {
    for (const c of cleanups) c();
    tmp.cleanup();
  });

  it("the agent wrote every record once, in seq order, sealed in signed batches of at most 10", async () => {
    expect(pristine.records).toHaveLength(RECORDS);
    pristine.records.forEach((line, i) => {
      expect((JSON.parse(line) as { seq: string }).seq).toBe(String(i));
    });
    expect(batches.length).toBeGreaterThanOrEqual(RECORDS / BATCH);
    let next = 0;
    batches.forEach((b, i) => {
      expect(b.index).toBe(i);
      expect(b.firstSeq).toBe(next);
      expect(b.count).toBeLessThanOrEqual(BATCH);
      next = b.lastSeq + 1;
    });
    expect(next).toBe(RECORDS);
    // The rewriting helpers reproduce the exporter's bytes exactly.
    for (const line of pristine.manifests) {
      const { checkpoint, manifest } = parseManifestLine(line);
      expect(manifestLine(checkpoint, canonicalize(manifest as unknown as JsonValue))).toBe(line);
    }
    expect(mid, "a middle batch of 3+ records").toBeDefined();
    expect(parseNote(savedCheckpoint).text.split("\n")[1]).toBe(String(RECORDS));
  });

  it("the untouched output verifies clean", async () => {
    const { report } = await verifyTampered(() => undefined);
    expect(report.findings, formatReport(report)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.chains[0]).toMatchObject({
      records: RECORDS,
      firstSeq: 0,
      lastSeq: RECORDS - 1,
      batches: batches.length,
      sealedThrough: RECORDS - 1,
      checkpoints: batches.length,
      latestCheckpoint: { size: RECORDS },
    });
    // The saved checkpoint is consistent with the untouched output too.
    const withCheckpoint = await verifyTampered(
      () => undefined,
      [{ note: savedCheckpoint, location: "saved.checkpoint" }],
    );
    expect(withCheckpoint.report.ok, formatReport(withCheckpoint.report)).toBe(true);
  });

  describe("tamper matrix", () => {
    it("one byte of a record's body changed → modified, at that seq", async () => {
      const { report, o } = await verifyTampered((o) => {
        const line = o.records[k] as string;
        const at = line.indexOf(`"stringValue":"audit event ${k}:`) + `"stringValue":"a`.length;
        expect(line[at]).toBe("u");
        o.records[k] = `${line.slice(0, at)}U${line.slice(at + 1)}`;
      });
      expectOnly(report, ["modified"]);
      expectFinding(report, { category: "modified", seq: k, location: recLoc(o, k) });
      // Any other finding is a signed checkpoint whose tree includes seq k.
      for (const f of report.findings.filter((f) => f.seq !== k))
        expect(f.detail, formatReport(report)).toMatch(/signed tree root/);
    });

    it("one record line deleted → missing, that seq", async () => {
      const { report, o } = await verifyTampered((o) => {
        o.records.splice(k, 1);
      });
      expectOnly(report, ["missing"]);
      expectFinding(
        report,
        { category: "missing", seq: k, location: recLoc(o, k) },
        new RegExp(`records ${k} are absent`),
      );
    });

    it("a whole middle batch deleted (records and manifest) → missing", async () => {
      const { report, o } = await verifyTampered((o) => {
        o.records.splice(mid.firstSeq, mid.count);
        o.manifests.splice(mid.index, 1);
      });
      expectOnly(report, ["missing"]);
      expectFinding(
        report,
        { category: "missing", seq: mid.firstSeq, location: recLoc(o, mid.firstSeq) },
        new RegExp(`records ${mid.firstSeq}\\.\\.${mid.lastSeq} are absent`),
      );
      expectFinding(
        report,
        { category: "missing", manifest: mid.index, location: manLoc(o, mid.index) },
        new RegExp(`manifests ${mid.index} are absent`),
      );
    });

    it("two adjacent record lines swapped → reordered", async () => {
      const { report, o } = await verifyTampered((o) => {
        [o.records[k], o.records[k + 1]] = [o.records[k + 1] as string, o.records[k] as string];
      });
      expectOnly(report, ["reordered"]);
      expectFinding(report, { category: "reordered", seq: k, location: recLoc(o, k + 1) });
    });

    it("a forged record claiming an existing seq, next to the original → inserted", async () => {
      const { report, o } = await verifyTampered((o) => {
        o.records.splice(k + 1, 0, forgeBody(o.records[k] as string, "nothing happened here"));
      });
      expectOnly(report, ["inserted"]);
      expect(report.findings).toHaveLength(1);
      expectFinding(report, { category: "inserted", seq: k, location: recLoc(o, k + 1) });
    });

    it("the same forgery placed before the original → inserted, the original is kept", async () => {
      const { report, o } = await verifyTampered((o) => {
        o.records.splice(k, 0, forgeBody(o.records[k] as string, "nothing happened here"));
      });
      expectOnly(report, ["inserted"]);
      expect(report.findings).toHaveLength(1);
      expectFinding(report, { category: "inserted", seq: k, location: recLoc(o, k) });
    });

    it("a forged, correctly chained record appended after the last → inserted", async () => {
      const { report, o } = await verifyTampered((o) => {
        const last = o.records.at(-1) as string;
        const env = JSON.parse(last) as Record<string, unknown>;
        env.seq = String(RECORDS);
        env.prev = leafHash(Buffer.from(last, "utf8")).toString("hex");
        o.records.push(
          forgeBody(canonicalize(env as unknown as JsonValue), "audit event: all is well"),
        );
      });
      expectOnly(report, ["inserted"]);
      expect(report.findings).toHaveLength(1);
      expectFinding(
        report,
        { category: "inserted", seq: RECORDS, location: recLoc(o, RECORDS) },
        /not covered by any signed batch/,
      );
    });

    it("the tail truncated (last batch's records and manifest) → truncated, given a saved checkpoint", async () => {
      const last = batches.at(-1) as BatchInfo;
      const tamper = (o: Output) => {
        o.records.splice(last.firstSeq);
        o.manifests.splice(last.index);
      };
      const { report } = await verifyTampered(tamper, [
        { note: savedCheckpoint, location: "saved.checkpoint" },
      ]);
      expectOnly(report, ["truncated"]);
      expect(report.findings).toHaveLength(1);
      expectFinding(report, {
        category: "truncated",
        seq: last.firstSeq,
        location: "saved.checkpoint",
      });
      // Without the checkpoint seen earlier the cut is undetectable (by design).
      const blind = await verifyTampered(tamper);
      expect(blind.report.ok, formatReport(blind.report)).toBe(true);
    });

    it("a middle manifest line dropped → missing, that manifest index", async () => {
      const { report, o } = await verifyTampered((o) => {
        o.manifests.splice(mid.index, 1);
      });
      expectOnly(report, ["missing"]);
      expect(report.findings).toHaveLength(1);
      expectFinding(
        report,
        { category: "missing", manifest: mid.index, location: manLoc(o, mid.index) },
        new RegExp(`manifests ${mid.index} are absent`),
      );
    });

    it("a manifest re-signed with an untrusted key → unknown-key", async () => {
      const mallory = generateSigningKey("audit-agent");
      const { report, o } = await verifyTampered((o) => {
        o.manifests[mid.index] = resign(o.manifests[mid.index] as string, mallory);
      });
      expectOnly(report, ["unknown-key"]);
      expect(report.findings).toHaveLength(1);
      expectFinding(
        report,
        { category: "unknown-key", manifest: mid.index, location: manLoc(o, mid.index) },
        new RegExp(manifestKeyId(mallory.public).replace("+", "\\+")),
      );
    });

    it("a manifest field altered without re-signing → bad-signature", async () => {
      const { report, o } = await verifyTampered((o) => {
        const { checkpoint, manifest } = parseManifestLine(o.manifests[mid.index] as string);
        if (manifest.type !== "batch") throw new Error("not a batch");
        manifest.lastSeq = String(Number(manifest.lastSeq) - 1);
        manifest.count -= 1;
        o.manifests[mid.index] = manifestLine(
          checkpoint,
          canonicalize(manifest as unknown as JsonValue),
        );
      });
      expectOnly(report, ["bad-signature"]);
      expect(report.findings).toHaveLength(1);
      expectFinding(report, {
        category: "bad-signature",
        manifest: mid.index,
        location: manLoc(o, mid.index),
      });
    });

    it("the last manifest's signature re-spelled in base64 (same bytes) → bad-signature", async () => {
      const last = batches.at(-1) as BatchInfo;
      const { report, o } = await verifyTampered((o) => {
        const { checkpoint, manifest } = parseManifestLine(o.manifests[last.index] as string);
        manifest.signature = respell(manifest.signature);
        o.manifests[last.index] = manifestLine(
          checkpoint,
          canonicalize(manifest as unknown as JsonValue),
        );
      });
      expectOnly(report, ["bad-signature"]);
      expect(report.findings).toHaveLength(1);
      expectFinding(report, {
        category: "bad-signature",
        manifest: last.index,
        location: manLoc(o, last.index),
      });
    });

    it("a checkpoint's signature re-spelled in base64 (same bytes) → bad-signature", async () => {
      const { report, o } = await verifyTampered((o) => {
        const { checkpoint, manifest } = parseManifestLine(o.manifests[mid.index] as string);
        const note = checkpoint as string;
        const blob = (/ ([A-Za-z0-9+/=]+)\n$/.exec(note) as RegExpExecArray)[1] as string;
        o.manifests[mid.index] = manifestLine(
          note.replace(` ${blob}\n`, ` ${respell(blob)}\n`),
          canonicalize(manifest as unknown as JsonValue),
        );
      });
      expectOnly(report, ["bad-signature"]);
      expect(report.findings).toHaveLength(1);
      expectFinding(report, { category: "bad-signature", location: manLoc(o, mid.index) });
    });

    it("a record line duplicated → duplicate", async () => {
      const { report, o } = await verifyTampered((o) => {
        o.records.splice(k + 1, 0, o.records[k] as string);
      });
      expectOnly(report, ["duplicate"]);
      expect(report.findings).toHaveLength(1);
      expectFinding(report, { category: "duplicate", seq: k, location: recLoc(o, k + 1) });
    });

    it("a record line corrupted into invalid JSON → malformed", async () => {
      const { report, o } = await verifyTampered((o) => {
        o.records[k] = (o.records[k] as string).replace('"seq":', '"seq";');
      });
      // Both are true and say different things: the line at this location is unreadable
      // (its seq cannot be trusted, so that finding names none), and seq k is therefore
      // absent from the readable chain. The links around it are not misreported.
      expectOnly(report, ["malformed", "missing"]);
      expect(report.findings).toHaveLength(2);
      expectFinding(report, { category: "malformed", location: recLoc(o, k) }, /not JSON/);
      expectFinding(report, { category: "missing", seq: k }, new RegExp(`records ${k} are absent`));
    });

    it("a record given a number beyond binary64 (1e400) → malformed, not a verifier crash", async () => {
      const { report, o } = await verifyTampered((o) => {
        o.records[k] = (o.records[k] as string).replace('"record":{', '"record":{"a":1e400,');
      });
      expectOnly(report, ["malformed", "missing"]);
      expect(report.findings).toHaveLength(2);
      expectFinding(report, { category: "malformed", location: recLoc(o, k) }, /canonical form/);
    });

    it("a manifest line corrupted → malformed", async () => {
      const { report, o } = await verifyTampered((o) => {
        o.manifests[mid.index] = (o.manifests[mid.index] as string).replace(
          '"manifest":',
          '"manifest";',
        );
      });
      // As for a record line: the line is unreadable, so the signed log lacks manifest m.
      // Its records stay covered (later manifests claim past them): nothing is "inserted".
      expectOnly(report, ["malformed", "missing"]);
      expect(report.findings).toHaveLength(2);
      expectFinding(report, { category: "malformed", location: manLoc(o, mid.index) });
      expectFinding(
        report,
        { category: "missing", manifest: mid.index },
        new RegExp(`manifests ${mid.index} are absent`),
      );
    });

    it("the last record line deleted (inside the last signed batch) → missing", async () => {
      const { report } = await verifyTampered((o) => {
        o.records.pop();
      });
      expectOnly(report, ["missing"]);
      expectFinding(report, { category: "missing", seq: RECORDS - 1 });
    });
  });

  describe("the verify command", () => {
    const run = (args: string[]) =>
      spawnSync(process.execPath, [CLI, "verify", ...args], { encoding: "utf8" });

    it("is built", () => {
      expect(existsSync(CLI), `${CLI}: run npx tsc -p tsconfig.json first`).toBe(true);
    });

    it("exits 0 with OK on the clean copy", async () => {
      const work = makeTempDir("audit-agent-tamper-cli-");
      cleanups.push(work.cleanup);
      cpSync(pristineOut, work.path, { recursive: true });
      const r = run(["--source", `file:${work.path}`, "--trust", trustFile]);
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain("OK: no findings");
      expect(r.stdout).toContain(`${RECORDS} records`);
    });

    it("exits 1 naming the category on a tampered copy, in text and JSON", async () => {
      const work = makeTempDir("audit-agent-tamper-cli-");
      cleanups.push(work.cleanup);
      cpSync(pristineOut, work.path, { recursive: true });
      const o = readOutput(work.path);
      [o.records[k], o.records[k + 1]] = [o.records[k + 1] as string, o.records[k] as string];
      writeOutput(o);
      const text = run(["--source", `file:${work.path}`, "--trust", trustFile]);
      expect(text.status, text.stdout + text.stderr).toBe(1);
      expect(text.stdout).toMatch(/FAILED: 1 findings \(reordered 1\)/);
      expect(text.stdout).toContain(`reordered     ${o.recordsName}:${k + 2}`);

      const json = run(["--source", `file:${work.path}`, "--trust", trustFile, "--json"]);
      expect(json.status, json.stdout + json.stderr).toBe(1);
      const report = JSON.parse(json.stdout) as VerifyReport;
      expect(report.ok).toBe(false);
      expect(report.findings.map((f) => [f.category, f.seq])).toEqual([["reordered", k]]);
    });

    it("one byte of a record made ill-formed UTF-8 → malformed at that line, the same with any --threads", async () => {
      const work = makeTempDir("audit-agent-tamper-cli-");
      cleanups.push(work.cleanup);
      cpSync(pristineOut, work.path, { recursive: true });
      const o = readOutput(work.path);
      const path = join(o.chainDir, o.recordsName);
      const bytes = readFileSync(path);
      // Line k + 1's first "a" becomes 0xff: never valid in UTF-8 (as text it would read U+FFFD).
      let at = 0;
      for (let i = 0; i < k; i++) at = bytes.indexOf(0x0a, at) + 1;
      bytes[bytes.indexOf(0x61, at)] = 0xff;
      writeFileSync(path, bytes);
      const reports = ["0", "1", "3"].map((threads) => {
        const r = run([
          "--source",
          `file:${work.path}`,
          "--trust",
          trustFile,
          "--json",
          "--threads",
          threads,
        ]);
        expect(r.status, r.stdout + r.stderr).toBe(1);
        return JSON.parse(r.stdout) as VerifyReport;
      });
      expect(reports[1]).toStrictEqual(reports[0]);
      expect(reports[2]).toStrictEqual(reports[0]);
      const report = reports[0] as VerifyReport;
      expect(report.findings[0]).toMatchObject({
        category: "malformed",
        location: `${o.recordsName}:${k + 1}`,
        detail: "not valid UTF-8 (the agent writes only UTF-8)",
      });
      expect(report.findings.map((f) => [f.category, f.seq])).toContainEqual(["missing", k]);
      expect(
        run(["--source", `file:${work.path}`, "--trust", trustFile, "--threads", "x"]).status,
      ).toBe(2);
    });

    it("detects truncation with --checkpoint", async () => {
      const work = makeTempDir("audit-agent-tamper-cli-");
      cleanups.push(work.cleanup);
      cpSync(pristineOut, work.path, { recursive: true });
      const o = readOutput(work.path);
      const last = batches.at(-1) as BatchInfo;
      o.records.splice(last.firstSeq);
      o.manifests.splice(last.index);
      writeOutput(o);
      const cpFile = join(work.path, "saved.checkpoint");
      writeFileSync(cpFile, savedCheckpoint);
      const blind = run(["--source", `file:${work.path}`, "--trust", trustFile]);
      expect(blind.status, blind.stdout + blind.stderr).toBe(0);
      const r = run([
        "--source",
        `file:${work.path}`,
        "--trust",
        trustFile,
        "--checkpoint",
        cpFile,
      ]);
      expect(r.status, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toMatch(/truncated/);
    });

    it("exits 2 when a trusted key file is missing", () => {
      const r = run([
        "--source",
        `file:${pristineOut}`,
        "--trust",
        join(tmp.path, "keys", "no-such.pub"),
      ]);
      expect(r.status, r.stdout + r.stderr).toBe(2);
      expect(r.stderr).toMatch(/cannot read trusted key file/);
    });
  });

  describe("random single tamperings", () => {
    const ITERATIONS = 300;
    const SEED = 0x5eed1234;

    it(`detects every one of ${ITERATIONS} random single tamperings (seed ${SEED})`, async () => {
      const rnd = prng(SEED).next;
      const int = (n: number) => Math.floor(rnd() * n);
      const work = makeTempDir("audit-agent-tamper-random-");
      cleanups.push(work.cleanup);
      cpSync(pristineOut, work.path, { recursive: true });
      const o = readOutput(work.path);
      const files = {
        records: readFileSync(join(pristine.chainDir, pristine.recordsName)),
        manifests: readFileSync(join(pristine.chainDir, pristine.manifestsName)),
      };
      const splitLines = (b: Buffer): Buffer[] => {
        const out: Buffer[] = [];
        let start = 0;
        for (let i = 0; i < b.length; i++)
          if (b[i] === 0x0a) {
            out.push(b.subarray(start, i + 1));
            start = i + 1;
          }
        return out;
      };
      const ops = ["flip", "delete", "duplicate", "swap", "truncate", "insert"] as const;
      const byOp = new Map<string, number>();
      const byCategory = new Map<string, number>();
      const undetected: string[] = [];
      for (let n = 0; n < ITERATIONS; n++) {
        const target = int(2) === 0 ? "records" : "manifests";
        const other = target === "records" ? "manifests" : "records";
        const original = files[target];
        const ls = splitLines(original);
        const op = ops[int(ops.length)] as (typeof ops)[number];
        let tampered: Buffer;
        let what: string;
        switch (op) {
          case "flip": {
            const line = int(ls.length);
            const l = Buffer.from(ls[line] as Buffer);
            const at = int(l.length - 1); // not the newline
            const old = l[at] as number;
            l[at] = (old + 1 + int(255)) % 256;
            ls[line] = l;
            tampered = Buffer.concat(ls);
            what = `flip ${target}:${line + 1} byte ${at} ${old}→${l[at]}`;
            break;
          }
          case "delete": {
            const line = int(ls.length);
            ls.splice(line, 1);
            tampered = Buffer.concat(ls);
            what = `delete ${target}:${line + 1}`;
            break;
          }
          case "duplicate": {
            const line = int(ls.length);
            ls.splice(line + 1, 0, ls[line] as Buffer);
            tampered = Buffer.concat(ls);
            what = `duplicate ${target}:${line + 1}`;
            break;
          }
          case "swap": {
            const a = int(ls.length);
            let b = int(ls.length - 1);
            if (b >= a) b++;
            [ls[a], ls[b]] = [ls[b] as Buffer, ls[a] as Buffer];
            tampered = Buffer.concat(ls);
            what = `swap ${target}:${a + 1} ${target}:${b + 1}`;
            break;
          }
          case "truncate": {
            const at = int(original.length);
            tampered = original.subarray(0, at);
            what = `truncate ${target} at ${at}/${original.length}`;
            break;
          }
          case "insert": {
            const from = int(2) === 0 ? target : other;
            const src = splitLines(files[from]);
            const line = int(src.length);
            const at = int(ls.length + 1);
            ls.splice(at, 0, src[line] as Buffer);
            tampered = Buffer.concat(ls);
            what = `insert ${from}:${line + 1} at ${target}:${at + 1}`;
            break;
          }
        }
        expect(tampered.equals(original), what).toBe(false);
        writeFileSync(
          join(o.chainDir, o.recordsName),
          target === "records" ? tampered : files.records,
        );
        writeFileSync(
          join(o.chainDir, o.manifestsName),
          target === "manifests" ? tampered : files.manifests,
        );
        const report = await verifySource(fileSource(work.path), trusted);
        byOp.set(op, (byOp.get(op) ?? 0) + 1);
        if (report.ok) undetected.push(what);
        for (const c of categoriesOf(report)) byCategory.set(c, (byCategory.get(c) ?? 0) + 1);
      }
      console.log(
        `random tampering: ${ITERATIONS} cases, ${ITERATIONS - undetected.length} detected; by operation ${JSON.stringify(Object.fromEntries(byOp))}; reports naming each category ${JSON.stringify(Object.fromEntries(byCategory))}`,
      );
      expect(undetected).toEqual([]);
      // With the pristine bytes back the copy verifies clean: the tamperings made the findings.
      writeFileSync(join(o.chainDir, o.recordsName), files.records);
      writeFileSync(join(o.chainDir, o.manifestsName), files.manifests);
      expect((await verifySource(fileSource(work.path), trusted)).ok).toBe(true);
    });
  });
});

// ---------------------------------------------------------------------------------------

describe("signing key rotation", () => {
  const tmp = makeTempDir("audit-agent-rotation-");
  const dir = tmp.path;
  const keyA = join(dir, "keys", "signing.key");
  const keyB = join(dir, "keys", "b.key");
  const keyC = join(dir, "keys", "c.key");
  let A: PublicKey;
  let B: SigningKey;
  let C: SigningKey;
  const warnings: Array<{ msg?: string; from?: string; to?: string }> = [];

  interface Entry {
    line: number;
    location: string;
    checkpoint: string | null;
    manifest: SignedManifest;
  }
  let entries: Entry[] = [];
  const verifyWith = (keys: PublicKey[]) => verifySource(fileSource(join(dir, "out")), keys);
  const readEntries = (): Entry[] => {
    const o = readOutput(join(dir, "out"));
    return o.manifests.map((line, i) => ({
      line: i,
      location: `${o.manifestsName}:${i + 1}`,
      ...parseManifestLine(line),
    }));
  };

  beforeAll(async () => {
    // Key A: generated by the agent on first start.
    await runAgent({ dir }, 0, 25);
    A = readTrustedKeys([join(dir, "keys", "signing.pub")])[0] as PublicKey;
    // Key B, announced by a rotation entry signed with A.
    B = generateSigningKey("audit-agent");
    writeKeyPair(keyB, B);
    await runAgent({ dir, keyFile: keyB, previousKeyFile: keyA }, 25, 25);
    entries = readEntries();
  });

  afterAll(() => tmp.cleanup());

  it("announces B in a key-rotation entry signed by A; later batches and checkpoints are B's", () => {
    const rotations = entries.filter((e) => e.manifest.type === "key-rotation");
    expect(rotations).toHaveLength(1);
    const rotation = rotations[0] as Entry;
    expect(rotation.manifest).toMatchObject({
      keyId: manifestKeyId(A),
      newKey: B.public.verifierKey,
      treeSize: "25",
      index: String(rotation.line),
    });
    expect(rotation.checkpoint).toBeNull();
    expect(checkManifestSignature(rotation.manifest, [A])).toBe("valid");
    expect(checkManifestSignature(rotation.manifest, [B.public])).toBe("unknown-key");
    for (const e of entries.filter((e) => e.manifest.type === "batch")) {
      const key = e.line < rotation.line ? A : B.public;
      expect(e.manifest.keyId).toBe(manifestKeyId(key));
      const sigs = parseNote(e.checkpoint as string).signatures;
      expect(sigs.map((s) => `${s.name}+${s.keyId}`)).toEqual([manifestKeyId(key)]);
    }
    const lastBatch = entries.at(-1)?.manifest as Extract<SignedManifest, { type: "batch" }>;
    expect(lastBatch.lastSeq).toBe("49");
  });

  it("verifies clean with A and B trusted", async () => {
    const report = await verifyWith([A, B.public]);
    expect(report.findings, formatReport(report)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.chains[0]?.records).toBe(50);
  });

  it("with only A trusted: unknown-key for B's manifests and checkpoints, nothing else", async () => {
    const report = await verifyWith([A]);
    expectOnly(report, ["unknown-key"]);
    const bEntries = entries.filter((e) => e.manifest.keyId === manifestKeyId(B.public));
    expect(bEntries.length).toBeGreaterThan(0);
    // One finding for each of B's manifests and one for each of its checkpoints.
    expect(report.findings.map((f) => f.location).sort()).toEqual(
      [...bEntries, ...bEntries].map((e) => e.location).sort(),
    );
    expect(report.findings.filter((f) => f.manifest !== undefined).map((f) => f.manifest)).toEqual(
      bEntries.map((e) => Number(e.manifest.index)),
    );
  });

  it("with only B trusted: unknown-key for A's manifests (the rotation entry too) and checkpoints", async () => {
    const report = await verifyWith([B.public]);
    expectOnly(report, ["unknown-key"]);
    const aEntries = entries.filter((e) => e.manifest.keyId === manifestKeyId(A));
    const aCheckpoints = aEntries.filter((e) => e.checkpoint !== null);
    expect(aEntries.some((e) => e.manifest.type === "key-rotation")).toBe(true);
    expect(report.findings.map((f) => f.location).sort()).toEqual(
      [...aEntries, ...aCheckpoints].map((e) => e.location).sort(),
    );
  });

  it("a third key C without previous_key_file: the agent warns, runs, and A+B+C verify clean", async () => {
    C = generateSigningKey("audit-agent");
    writeKeyPair(keyC, C);
    const config = parseConfig(
      testConfigYaml({ dir, grpc: false, batchMaxRecords: BATCH, keyFile: keyC }),
      "test.yaml",
      {},
    );
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString("utf8").split("\n").filter(Boolean))
          warnings.push(JSON.parse(line) as (typeof warnings)[number]);
        done();
      },
    });
    const agent = await startAgent(config, pino({ level: "warn" }, sink));
    try {
      const http = agent.addresses().otlp?.http;
      await sendAuditRecords(`http://${http}/v1/logs`, 50, 10);
      await waitDelivered(agent, 59);
    } finally {
      await agent.shutdown(5000);
    }
    const warning = warnings.find((w) => /previous_key_file/.test(w.msg ?? ""));
    expect(warning, JSON.stringify(warnings)).toMatchObject({
      from: B.public.verifierKey,
      to: C.public.verifierKey,
    });
    const after = readEntries();
    expect(after.filter((e) => e.manifest.type === "key-rotation")).toHaveLength(1);
    const cEntries = after.filter((e) => e.manifest.keyId === manifestKeyId(C.public));
    expect(cEntries.length).toBeGreaterThan(0);

    const all = await verifyWith([A, B.public, C.public]);
    expect(all.findings, formatReport(all)).toEqual([]);
    expect(all.ok).toBe(true);
    expect(all.chains[0]?.records).toBe(60);

    const withoutC = await verifyWith([A, B.public]);
    expectOnly(withoutC, ["unknown-key"]);
    expect(withoutC.findings.map((f) => f.location).sort()).toEqual(
      [...cEntries, ...cEntries].map((e) => e.location).sort(),
    );
  });
});

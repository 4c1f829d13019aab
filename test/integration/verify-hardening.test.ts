import { spawnSync } from "node:child_process";
import {
  cpSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leafHash } from "../../agent/integrity/format.js";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import { MAX_LINE_DEPTH } from "../../agent/integrity/json-structure.js";
import { readPrivateKey, readTrustedKeys, writeKeyPair } from "../../agent/integrity/key-files.js";
import {
  type BatchManifest,
  manifestHash,
  manifestKeyId,
  type SignedManifest,
  signManifest,
} from "../../agent/integrity/manifest.js";
import { leavesSource, treeHash } from "../../agent/integrity/merkle.js";
import {
  checkpointText,
  parseCheckpointText,
  parseNote,
  signNote,
} from "../../agent/integrity/note.js";
import {
  generateSigningKey,
  type PublicKey,
  type SigningKey,
} from "../../agent/integrity/signing.js";
import { fileSource } from "../../agent/exporters/file/reader.js";
import type { Finding, FindingCategory, VerifyReport } from "../../agent/verify/types.js";
import { formatReport, verifySource } from "../../agent/verify/verify.js";
import {
  CLI,
  type InProcessAgent,
  makeTempDir,
  startInProcessAgent,
  waitFor,
} from "../helpers/agent.js";

/**
 * `audit-agent verify` on inputs an independent implementation found it got wrong (issue 12),
 * each on real agent output: an agent receives records, seals them in signed batches, the
 * file exporter writes them, the agent stops, and a copy of its output is tampered with.
 *
 * 1. repeated member names in stored lines; 2. an emptied chain, a source with no chain;
 * 3. lines nested thousands of levels deep; 4. a retired key re-signing what came after its
 * rotation; 5. directories and dangling links named like segments; and the exit codes and
 * grouped output a monitor and a person read.
 */

const RECORDS = 40;
const BATCH = 10;

const verifyCli = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, "verify", ...args], { encoding: "utf8" });

// ---------------------------------------------------------------------------------------
// Producing output

async function postJson(url: string, body: unknown): Promise<number> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

/** `count` audit records from `from` on, in one OTLP/JSON request. */
function records(from: number, count: number) {
  const logRecords = Array.from({ length: count }, (_, k) => ({
    timeUnixNano: "1700000000000000000",
    eventName: "audit.hardening",
    body: { stringValue: `record ${from + k}: user u-${(from + k) % 5} changed a setting` },
    attributes: [{ key: "n", value: { intValue: from + k } }],
  }));
  return { resourceLogs: [{ scopeLogs: [{ logRecords }] }] };
}

/** Protobuf wire bytes: a length-delimited field. */
function field(no: number, bytes: Buffer): Buffer {
  const varint = (n: number) => {
    const out: number[] = [];
    for (; n > 127; n >>>= 7) out.push((n & 127) | 128);
    out.push(n);
    return Buffer.from(out);
  };
  return Buffer.concat([varint((no << 3) | 2), varint(bytes.length), bytes]);
}

/** An ExportLogsServiceRequest whose one record's body is arrays nested `levels` deep. */
function deepArrayBodyProtobuf(levels: number): Buffer {
  let value = field(1, Buffer.from("the innermost value")); // AnyValue.string_value
  for (let i = 0; i < levels; i++) value = field(5, field(1, value)); // array_value.values
  const logRecord = Buffer.concat([field(5, value), field(12, Buffer.from("audit.deep"))]);
  return field(1, field(2, field(2, logRecord)));
}

/**
 * An OTLP/JSON request whose one record has an attribute of kvlists nested `levels` deep
 * around `innermost`.
 */
function deepKvlistAttributeJson(
  levels: number,
  innermost: Record<string, unknown> = { stringValue: "the innermost value" },
) {
  let value = innermost;
  for (let i = 0; i < levels; i++) value = { kvlistValue: { values: [{ key: `k${i}`, value }] } };
  return {
    resourceLogs: [
      {
        scopeLogs: [
          { logRecords: [{ eventName: "audit.deep", attributes: [{ key: "deep", value }] }] },
        ],
      },
    ],
  };
}

async function waitDelivered(agent: InProcessAgent, lastSeq: number): Promise<void> {
  await waitFor(
    () =>
      agent.agent.sealed.sealedThrough === lastSeq &&
      agent.agent.deliveries[0]?.deliveredThrough === lastSeq,
    15_000,
    `records through seq ${lastSeq} sealed and delivered`,
  );
}

// ---------------------------------------------------------------------------------------
// Reading and rewriting the file exporter's output

interface Output {
  dir: string;
  chainId: string;
  chainDir: string;
  recordsName: string;
  manifestsName: string;
  records: string[];
  manifests: string[];
}

function readOut(dir: string): Output {
  const chains = readdirSync(dir);
  expect(chains).toHaveLength(1);
  const chainId = chains[0] as string;
  const chainDir = join(dir, chainId);
  const names = readdirSync(chainDir).sort();
  const recordsNames = names.filter((n) => /^records-\d{20}\.ndjson$/.test(n));
  const manifestsNames = names.filter((n) => /^manifests-\d{20}\.ndjson$/.test(n));
  expect(recordsNames).toHaveLength(1);
  expect(manifestsNames).toHaveLength(1);
  const lines = (name: string) => {
    const text = readFileSync(join(chainDir, name), "utf8");
    return text === "" ? [] : text.slice(0, -1).split("\n");
  };
  const recordsName = recordsNames[0] as string;
  const manifestsName = manifestsNames[0] as string;
  return {
    dir,
    chainId,
    chainDir,
    recordsName,
    manifestsName,
    records: lines(recordsName),
    manifests: lines(manifestsName),
  };
}

function writeOut(o: Output): void {
  const text = (l: string[]) => (l.length ? `${l.join("\n")}\n` : "");
  writeFileSync(join(o.chainDir, o.recordsName), text(o.records));
  writeFileSync(join(o.chainDir, o.manifestsName), text(o.manifests));
}

interface ManifestLine {
  checkpoint: string | null;
  manifest: SignedManifest;
}

const parseLine = (line: string) => JSON.parse(line) as ManifestLine;

function manifestLine(checkpoint: string | null, manifestText: string): string {
  return `{"checkpoint":${checkpoint === null ? "null" : JSON.stringify(checkpoint)},"manifest":${manifestText}}`;
}

/** The deepest nesting of objects and arrays in a JSON text (strings skipped). */
function depthOf(text: string): number {
  let depth = 0;
  let most = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      for (i++; text[i] !== '"'; i++) if (text[i] === "\\") i++;
    } else if (c === "{" || c === "[") most = Math.max(most, ++depth);
    else if (c === "}" || c === "]") depth--;
  }
  return most;
}

const categoriesOf = (r: VerifyReport): FindingCategory[] =>
  [...new Set(r.findings.map((f) => f.category))].sort();

function findingMatching(
  report: VerifyReport,
  match: Partial<Pick<Finding, "category" | "location" | "seq" | "manifest" | "chainId">>,
  detail?: RegExp,
): Finding {
  const hit = report.findings.find(
    (f) =>
      (Object.keys(match) as (keyof typeof match)[]).every((k) => f[k] === match[k]) &&
      (detail === undefined || detail.test(f.detail)),
  );
  expect(
    hit,
    `no finding ${JSON.stringify(match)} ${detail ?? ""} in\n${formatReport(report)}`,
  ).toBeDefined();
  return hit as Finding;
}

// ---------------------------------------------------------------------------------------

describe("verify on tampered real agent output (issue 12)", () => {
  const tmp = makeTempDir("audit-agent-hardening-");
  const cleanups: Array<() => void> = [];
  let pristineDir = "";
  let pristine: Output;
  let trustFile = "";
  let trusted: PublicKey[] = [];
  /** Deep records the agent accepted: their seqs and how they were sent. */
  const deep: { seq: number; how: string }[] = [];
  const refusedDeep: string[] = [];

  /** A fresh copy of the agent's output, tampered with by `tamper`. */
  function tampered(tamper: (o: Output) => void = () => undefined): Output {
    const work = makeTempDir("audit-agent-hardening-case-");
    cleanups.push(work.cleanup);
    cpSync(pristineDir, work.path, { recursive: true });
    const o = readOut(work.path);
    tamper(o);
    writeOut(o);
    return o;
  }

  const verify = (o: Output, known: { note: string; location: string }[] = []) =>
    verifySource(fileSource(o.dir), trusted, known);

  beforeAll(async () => {
    const agent = await startInProcessAgent({ dir: tmp.path, grpc: false, batchMaxRecords: BATCH });
    try {
      expect(await postJson(agent.httpUrl, records(0, RECORDS))).toBe(200);
      await waitDelivered(agent, RECORDS - 1);
      // The deepest records the receivers take, on both paths. Whether the receivers count
      // levels one way or the other (agent/otlp/), each is stored as sent or refused whole.
      const candidates: [string, () => Promise<number>][] = [
        [
          "protobuf: body of arrays 63 deep",
          () => postProtobuf(agent.httpUrl, deepArrayBodyProtobuf(63)),
        ],
        [
          "protobuf: body of arrays 64 deep",
          () => postProtobuf(agent.httpUrl, deepArrayBodyProtobuf(64)),
        ],
        [
          "json: attribute of kvlists 63 deep",
          () => postJson(agent.httpUrl, deepKvlistAttributeJson(63)),
        ],
        [
          "json: attribute of kvlists 63 deep around an empty kvlist",
          () => postJson(agent.httpUrl, deepKvlistAttributeJson(63, { kvlistValue: {} })),
        ],
        [
          "json: attribute of kvlists 63 deep around a kvlist of a key without a value",
          () =>
            postJson(
              agent.httpUrl,
              deepKvlistAttributeJson(63, { kvlistValue: { values: [{ key: "k" }] } }),
            ),
        ],
      ];
      let next = RECORDS;
      for (const [how, send] of candidates) {
        const status = await send();
        if (status === 200) {
          deep.push({ seq: next, how });
          await waitDelivered(agent, next++);
        } else refusedDeep.push(`${how}: HTTP ${status}`);
      }
    } finally {
      await agent.stop();
    }
    pristineDir = join(tmp.path, "out");
    pristine = readOut(pristineDir);
    trustFile = join(tmp.path, "keys", "signing.pub");
    trusted = readTrustedKeys([trustFile]);
  });

  afterAll(() => {
    for (const c of cleanups) c();
    tmp.cleanup();
  });

  it("the untouched output, deep records included, verifies clean", async () => {
    expect(pristine.records).toHaveLength(RECORDS + deep.length);
    expect(deep.length, `refused: ${refusedDeep.join("; ")}`).toBeGreaterThan(0);
    console.log(
      `deep records stored: ${deep.map((d) => `${d.how} (${depthOf(pristine.records[d.seq] as string)} deep)`).join("; ")}; refused: ${refusedDeep.join("; ") || "none"}`,
    );
    const report = await verify(tampered());
    expect(report.findings, formatReport(report)).toEqual([]);
    expect(report.ok).toBe(true);
    const r = verifyCli("--source", `file:${pristineDir}`, "--trust", trustFile);
    expect(r.stderr).toBe(""); // not a terminal: no progress line
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toContain("OK: no findings");
  });

  // 1 -------------------------------------------------------------------------------------

  describe("1. repeated member names", () => {
    /** The second batch's manifest line (index 1), with `forge` applied to its text. */
    const forgeManifestLine = (forge: (line: string) => string) => {
      const o = tampered((o) => {
        o.manifests[1] = forge(o.manifests[1] as string);
      });
      return { o, location: `${o.manifestsName}:2` };
    };
    const genuine = () => parseLine(pristine.manifests[1] as string);
    const forgedManifest = () => {
      const m = { ...genuine().manifest } as BatchManifest & { signature: string };
      m.lastSeq = "999";
      m.count = 999 - Number(m.firstSeq) + 1;
      return canonicalize(m as unknown as JsonValue);
    };

    const cases: [string, (line: string) => string][] = [
      ["lastSeq", (l) => l.replace('"manifest":{', '"manifest":{"lastSeq":"999",')],
      ["treeSize", (l) => l.replace('"manifest":{', '"manifest":{"treeSize":"999",')],
      [
        "createdAt",
        (l) => l.replace('"manifest":{', '"manifest":{"createdAt":"1999-01-01T00:00:00.000Z",'),
      ],
      [
        "checkpoint",
        (l) => {
          const note = genuine().checkpoint as string;
          const cp = parseCheckpointText(parseNote(note).text);
          const forged = note.replace(`\n${cp.size}\n`, `\n${cp.size + 500}\n`);
          return `{"checkpoint":${JSON.stringify(forged)},${l.slice(1)}`;
        },
      ],
      ["manifest", (l) => `{"manifest":${forgedManifest()},${l.slice(1)}`],
    ];

    for (const [name, forge] of cases) {
      it(`a forged "${name}" placed before the genuine member → malformed`, async () => {
        const { o, location } = forgeManifestLine(forge);
        const line = o.manifests[1] as string;
        // JSON.parse keeps the last value: it reads the genuine manifest, which verifies,
        // while a first-wins reader reads the forged one. The verifier must refuse the line.
        expect(JSON.parse(line)).toEqual(JSON.parse(pristine.manifests[1] as string));
        expect(line.indexOf(`"${name}":`)).toBeLessThan(line.lastIndexOf(`"${name}":`));
        const report = await verify(o);
        expect(report.ok).toBe(false);
        findingMatching(
          report,
          { category: "malformed", location },
          new RegExp(`repeated member name "${name}"`),
        );
        // The line is not used: its index is missing from the manifest chain, nothing else.
        expect(categoriesOf(report), formatReport(report)).toEqual(["malformed", "missing"]);
        findingMatching(report, { category: "missing", manifest: 1 });
      });
    }

    it("the CLI exits 1 and names the repeated member", () => {
      const [, forge] = cases[0] as [string, (line: string) => string];
      const { o, location } = forgeManifestLine(forge);
      const r = verifyCli("--source", `file:${o.dir}`, "--trust", trustFile);
      expect(r.status, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toContain(
        `malformed     ${location}: manifest entry: repeated member name "lastSeq"`,
      );
    });

    it("in a record line, at any depth → malformed, and its seq is missing", async () => {
      const k = 15;
      const atBody = tampered((o) => {
        o.records[k] = (o.records[k] as string).replace(
          '"body":{"stringValue":"',
          '"body":{"stringValue":"nothing happened","stringValue":"',
        );
      });
      const inBody = await verify(atBody);
      expect(categoriesOf(inBody), formatReport(inBody)).toEqual(["malformed", "missing"]);
      findingMatching(
        inBody,
        { category: "malformed", location: `${atBody.recordsName}:${k + 1}` },
        /repeated member name "stringValue"/,
      );
      findingMatching(inBody, { category: "missing", seq: k });

      const atTop = tampered((o) => {
        o.records[k] = (o.records[k] as string).replace(
          `,"seq":"${k}"`,
          `,"seq":"${k + 900}","seq":"${k}"`,
        );
      });
      const inEnvelope = await verify(atTop);
      findingMatching(
        inEnvelope,
        { category: "malformed", location: `${atTop.recordsName}:${k + 1}` },
        /repeated member name "seq"/,
      );
      // "\u0073eq" is "seq" too: names are compared as decoded.
      const escaped = tampered((o) => {
        o.records[k] = (o.records[k] as string).replace(
          `,"seq":"${k}"`,
          `,"\\u0073eq":"${k + 900}","seq":"${k}"`,
        );
      });
      findingMatching(
        await verify(escaped),
        { category: "malformed" },
        /repeated member name "seq"/,
      );
    });
  });

  // 2 -------------------------------------------------------------------------------------

  describe("2. nothing to verify", () => {
    it("a chain whose every segment was deleted (its directory kept) → missing, exit 1", async () => {
      const o = tampered();
      for (const name of readdirSync(o.chainDir)) rmSync(join(o.chainDir, name));
      const report = await verify(o);
      expect(report.ok).toBe(false);
      expect(report.findings.map((f) => [f.category, f.chainId])).toEqual([["missing", o.chainId]]);
      expect(report.findings[0]?.detail).toMatch(/holds no records and no manifests/);
      const r = verifyCli("--source", `file:${o.dir}`, "--trust", trustFile);
      expect(r.status, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toMatch(/FAILED: 1 findings \(missing 1\)/);
      expect(r.stdout).toMatch(/missing .*chain .*: the chain holds no records and no manifests/);
    });

    it("a source with no chain at all → missing, exit 1", async () => {
      const empty = makeTempDir("audit-agent-hardening-empty-");
      cleanups.push(empty.cleanup);
      const report = await verifySource(fileSource(empty.path), trusted);
      expect(report.ok).toBe(false);
      expect(report.findings.map((f) => [f.category, f.chainId])).toEqual([["missing", ""]]);
      expect(report.findings[0]?.detail).toMatch(/holds no audit chain/);
      const r = verifyCli("--source", `file:${empty.path}`, "--trust", trustFile, "--json");
      expect(r.status, r.stdout + r.stderr).toBe(1);
      const json = JSON.parse(r.stdout) as VerifyReport;
      expect(json.ok).toBe(false);
      expect(json.findings).toHaveLength(1);
    });

    it("a removed chain, known from a checkpoint, is truncated alone (no second finding)", async () => {
      const note = parseLine(pristine.manifests.at(-1) as string).checkpoint as string;
      const empty = makeTempDir("audit-agent-hardening-empty-");
      cleanups.push(empty.cleanup);
      const report = await verifySource(fileSource(empty.path), trusted, [
        { note, location: "saved.checkpoint" },
      ]);
      expect(report.findings.map((f) => f.category)).toEqual(["truncated"]);
    });
  });

  // 3 -------------------------------------------------------------------------------------

  describe("3. deep nesting", () => {
    it("no line the agent wrote is deeper than the verifier's limit, and the deepest are close", () => {
      const depths = pristine.records.map(depthOf);
      expect(Math.max(...depths)).toBeLessThanOrEqual(MAX_LINE_DEPTH);
      expect(Math.max(...deep.map((d) => depths[d.seq] as number))).toBeGreaterThanOrEqual(190);
      // The receivers' 64 levels (agent/otlp/model.ts), at their deepest, reach the limit
      // exactly: an attribute value is at level 6 of the line, each kvlist level adds 4, and
      // the innermost value opens a kvlist of KeyValues with no value: three more.
      const deepest = deep.find((d) => d.how.includes("key without a value"));
      expect(deepest, refusedDeep.join("; ")).toBeDefined();
      expect(depths[(deepest as { seq: number }).seq]).toBe(MAX_LINE_DEPTH);
      for (const line of pristine.manifests) expect(depthOf(line)).toBe(2);
    });

    /** Record k with its body replaced by arrays nested so the line is `depth` deep. */
    const nestBody = (line: string, depth: number) => {
      const arrays = depth - 4; // the body's object is at level 4
      return line.replace(
        /"body":\{"stringValue":"[^"]*"\}/,
        `"body":{"a":${"[".repeat(arrays)}1${"]".repeat(arrays)}}`,
      );
    };

    for (const levels of [5_000, 200_000]) {
      it(`a record line nested ${levels.toLocaleString("en")} deep → malformed, the same on every run`, async () => {
        const k = 7;
        const o = tampered((o) => {
          o.records[k] = nestBody(o.records[k] as string, levels);
        });
        expect(depthOf(o.records[k] as string)).toBe(levels);
        const runs = [await verify(o), await verify(o), await verify(o)];
        for (const report of runs) expect(report.findings).toEqual(runs[0]?.findings);
        const report = runs[0] as VerifyReport;
        expect(categoriesOf(report), formatReport(report)).toEqual(["malformed", "missing"]);
        expect(report.findings).toHaveLength(2);
        findingMatching(
          report,
          { category: "malformed", location: `${o.recordsName}:${k + 1}` },
          new RegExp(`nested deeper than ${MAX_LINE_DEPTH} levels`),
        );
        expect(JSON.stringify(report)).not.toMatch(/call stack/i);
        const r = verifyCli("--source", `file:${o.dir}`, "--trust", trustFile);
        expect(r.status, r.stderr).toBe(1);
        expect(r.stderr).toBe("");
        expect(r.stdout).toMatch(/nested deeper than/);
      });
    }

    it("the limit is exact: one level past it is malformed, at it the line is judged as usual", async () => {
      const k = 7;
      const over = tampered((o) => {
        o.records[k] = nestBody(o.records[k] as string, MAX_LINE_DEPTH + 1);
      });
      findingMatching(await verify(over), { category: "malformed" }, /nested deeper than/);
      const at = tampered((o) => {
        o.records[k] = nestBody(o.records[k] as string, MAX_LINE_DEPTH);
      });
      expect(depthOf(at.records[k] as string)).toBe(MAX_LINE_DEPTH);
      const report = await verify(at);
      // A canonical line with altered content: the chain no longer matches it.
      expect(categoriesOf(report), formatReport(report)).toEqual(["modified"]);
    });

    it("a manifest line nested deep → malformed, not a crash", async () => {
      const o = tampered((o) => {
        o.manifests[1] = (o.manifests[1] as string).replace(
          '"manifest":{',
          `"manifest":{"x":${"[".repeat(100_000)}${"]".repeat(100_000)},`,
        );
      });
      const report = await verify(o);
      findingMatching(
        report,
        { category: "malformed", location: `${o.manifestsName}:2` },
        /nested deeper than/,
      );
      expect(categoriesOf(report)).toEqual(["malformed", "missing"]);
    });
  });

  // 5 -------------------------------------------------------------------------------------

  describe("5. entries named like segments that are not files", () => {
    it("a directory, a dangling link, a link to a directory and a pipe → malformed each; the rest verifies", async () => {
      const o = tampered();
      const names = {
        dir: "records-00000000000000000999.ndjson",
        dangling: "manifests-00000000000000000998.ndjson",
        linkToDir: "manifests-00000000000000000997.ndjson",
        pipe: "records-00000000000000000996.ndjson",
      };
      mkdirSync(join(o.chainDir, names.dir));
      symlinkSync(join(o.chainDir, "no-such-file"), join(o.chainDir, names.dangling));
      symlinkSync(join(o.chainDir, names.dir), join(o.chainDir, names.linkToDir));
      const fifo = spawnSync("mkfifo", [join(o.chainDir, names.pipe)]);
      const expected = fifo.status === 0 ? Object.values(names) : Object.values(names).slice(0, 3);

      const r = verifyCli("--source", `file:${o.dir}`, "--trust", trustFile, "--json");
      expect(r.stderr).toBe(""); // no stack trace
      expect(r.status, r.stdout).toBe(1);
      const report = JSON.parse(r.stdout) as VerifyReport;
      expect(report.findings.map((f) => f.category)).toEqual(expected.map(() => "malformed"));
      expect(report.findings.map((f) => f.location).sort()).toEqual([...expected].sort());
      expect(report.findings.find((f) => f.location === names.dir)?.detail).toMatch(
        /named like a records segment but a directory/,
      );
      expect(report.findings.find((f) => f.location === names.dangling)?.detail).toMatch(
        /dangling/,
      );
      // Everything else was read and verified.
      expect(report.chains[0]).toMatchObject({ records: pristine.records.length });
      expect(report.chains[0]?.batches).toBe(pristine.manifests.length);

      const text = verifyCli("--source", `file:${o.dir}`, "--trust", trustFile);
      expect(text.stderr).toBe("");
      expect(text.stdout).toContain(`malformed     ${names.dir}: named like a records segment`);
    });
  });

  // Exit codes and output -------------------------------------------------------------------

  describe("exit codes", () => {
    it("3 when the source cannot be read, with nothing on stdout", () => {
      const r = verifyCli(
        "--source",
        `file:${join(tmp.path, "no-such-dir")}`,
        "--trust",
        trustFile,
      );
      expect(r.status, r.stdout + r.stderr).toBe(3);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^audit-agent: SOURCE_UNREADABLE: cannot read /);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    });

    it("3 when a network source does not answer", () => {
      const r = verifyCli("--source", "loki:http://127.0.0.1:9", "--trust", trustFile);
      expect(r.status, r.stdout + r.stderr).toBe(3);
      expect(r.stderr).toMatch(/SOURCE_UNREADABLE/);
    });

    it("2 for usage errors: a bad source spec, an unreadable key file", () => {
      expect(verifyCli("--source", "nowhere:x", "--trust", trustFile).status).toBe(2);
      const r = verifyCli("--source", `file:${pristineDir}`, "--trust", join(tmp.path, "nope.pub"));
      expect(r.status).toBe(2);
      expect(verifyCli("--source", `file:${pristineDir}`).status).toBe(2);
    });

    it("--help documents every exit status and the output", () => {
      const r = verifyCli("--help");
      expect(r.status).toBe(0);
      for (const line of [
        /^\s+0\s+clean/m,
        /^\s+1\s+findings/m,
        /^\s+2\s+usage/m,
        /^\s+3\s+a source could not be read/m,
      ])
        expect(r.stdout).toMatch(line);
      expect(r.stdout).toMatch(/--verbose/);
      expect(r.stdout).toMatch(/--quiet/);
      expect(r.stdout).toMatch(/docs\/verify\.md/);
    });
  });

  describe("grouped output", () => {
    it("a cut prints one line for its range; --verbose every finding; --json all of them", () => {
      const o = tampered((o) => {
        o.records.splice(5, 30); // seqs 5..34: batches 1 and 2 whole, 0 and 3 in part
      });
      const text = verifyCli("--source", `file:${o.dir}`, "--trust", trustFile);
      expect(text.status).toBe(1);
      expect(text.stdout).toMatch(/FAILED: 3 findings \(missing 3\)/);
      expect(text.stdout).toMatch(
        /\n {2}missing {7}seq 5–34 \(30 records\), batches 1–2: 3 findings\n/,
      );
      expect(text.stdout).toContain("first: ");
      expect(text.stdout).not.toContain("all 10 records of signed batch 1");

      const verbose = verifyCli("--source", `file:${o.dir}`, "--trust", trustFile, "--verbose");
      expect(verbose.stdout).toContain("records 5..34 are absent before seq 35");
      expect(verbose.stdout).toContain("all 10 records of signed batch 1 (seq 10..19) are absent");
      expect(verbose.stdout).toContain("all 10 records of signed batch 2 (seq 20..29) are absent");

      const json = verifyCli("--source", `file:${o.dir}`, "--trust", trustFile, "--json");
      const report = JSON.parse(json.stdout) as VerifyReport;
      expect(report.findings).toHaveLength(3);
      expect(report.findings.map((f) => [f.category, f.seq, f.lastSeq, f.manifest])).toEqual([
        ["missing", 5, 34, undefined],
        ["missing", 10, 19, 1],
        ["missing", 20, 29, 2],
      ]);
    });

    it("records no manifest covers, one finding each, print as one range", () => {
      const o = tampered((o) => {
        o.manifests.splice(2); // the signed batches now end at seq 19
      });
      const json = JSON.parse(
        verifyCli("--source", `file:${o.dir}`, "--trust", trustFile, "--json").stdout,
      ) as VerifyReport;
      const inserted = json.findings.filter((f) => f.category === "inserted");
      const last = pristine.records.length - 1;
      expect(inserted.map((f) => f.seq)).toEqual(
        Array.from({ length: last - 19 }, (_, i) => 20 + i),
      );
      const text = verifyCli("--source", `file:${o.dir}`, "--trust", trustFile);
      expect(text.stdout).toContain(
        `inserted      seq 20–${last} (${last - 19} records): ${last - 19} findings`,
      );
      expect(text.stdout.split("\n").filter((l) => l.startsWith("  inserted"))).toHaveLength(1);
    });

    it("draws a progress line on a terminal only, and not with --quiet", () => {
      const script = spawnSync("script", ["--version"], { encoding: "utf8" });
      if (script.status !== 0) return; // no `script` to give the command a terminal
      const command = (extra: string) =>
        `${process.execPath} ${CLI} verify --source file:${pristineDir} --trust ${trustFile} ${extra}`;
      const onTty = spawnSync("script", ["-qec", command(""), "/dev/null"], { encoding: "utf8" });
      expect(onTty.stdout).toMatch(/verifying file:.*: [\d,]+ records read \([\d,]+\/s\), chain /);
      expect(onTty.stdout).toContain("OK: no findings");
      const quiet = spawnSync("script", ["-qec", command("--quiet"), "/dev/null"], {
        encoding: "utf8",
      });
      expect(quiet.stdout).toContain("OK: no findings");
      expect(quiet.stdout).not.toContain("verifying");
    });
  });
});

// 4 ---------------------------------------------------------------------------------------

describe("4. a retired key (after a verified key rotation) vouches for nothing after it", () => {
  const tmp = makeTempDir("audit-agent-hardening-rotation-");
  const keyA = join(tmp.path, "keys", "signing.key");
  const keyB = join(tmp.path, "keys", "b.key");
  let A: SigningKey;
  let B: SigningKey;
  let rotationIndex = -1;
  let pristineDir = "";
  const cleanups: Array<() => void> = [];

  async function produce(o: { keyFile?: string; previousKeyFile?: string }, from: number) {
    const agent = await startInProcessAgent({
      dir: tmp.path,
      grpc: false,
      batchMaxRecords: BATCH,
      ...o,
    });
    try {
      expect(await postJson(agent.httpUrl, records(from, 25))).toBe(200);
      await waitDelivered(agent, from + 24);
    } finally {
      await agent.stop();
    }
  }

  beforeAll(async () => {
    await produce({}, 0); // key A, generated by the agent
    A = readPrivateKey(keyA, "audit-agent");
    B = generateSigningKey("audit-agent");
    writeKeyPair(keyB, B);
    await produce({ keyFile: keyB, previousKeyFile: keyA }, 25);
    pristineDir = join(tmp.path, "out");
    rotationIndex = readOut(pristineDir).manifests.findIndex(
      (l) => parseLine(l).manifest.type === "key-rotation",
    );
  });

  afterAll(() => {
    for (const c of cleanups) c();
    tmp.cleanup();
  });

  /**
   * What someone holding only the retired key A can do to a copy: rewrite every record after
   * the rotation, chain them again, and sign every later manifest and checkpoint with A.
   */
  async function rewriteAfterRotation(): Promise<Output> {
    const work = makeTempDir("audit-agent-hardening-rotation-case-");
    cleanups.push(work.cleanup);
    cpSync(pristineDir, work.path, { recursive: true });
    const o = readOut(work.path);
    const entries = o.manifests.map(parseLine);
    const rotation = entries[rotationIndex]?.manifest as SignedManifest;
    const from = Number(rotation.treeSize);
    const leaves: Buffer[] = [];
    for (let seq = 0; seq < o.records.length; seq++) {
      if (seq >= from) {
        const env = JSON.parse(o.records[seq] as string) as Record<string, unknown> & {
          record: { logRecord: { body: unknown } };
        };
        env.prev = (leaves[seq - 1] as Buffer).toString("hex");
        env.record.logRecord.body = { stringValue: `record ${seq}: nothing happened` };
        o.records[seq] = canonicalize(env as unknown as JsonValue);
      }
      leaves.push(leafHash(Buffer.from(o.records[seq] as string, "utf8")));
    }
    let prevText = canonicalize(entries[rotationIndex]?.manifest as unknown as JsonValue);
    for (let i = rotationIndex + 1; i < entries.length; i++) {
      const { manifest, checkpoint } = entries[i] as ManifestLine;
      if (manifest.type !== "batch") throw new Error("expected batches after the rotation");
      const first = Number(manifest.firstSeq);
      const last = Number(manifest.lastSeq);
      const { signature: _signature, ...unsigned } = manifest;
      const size = last + 1;
      const treeRoot = Buffer.from(await treeHash(size, leavesSource(leaves)));
      const batchRoot = await treeHash(last - first + 1, leavesSource(leaves.slice(first, size)));
      const text = signManifest(
        {
          ...unsigned,
          keyId: manifestKeyId(A.public),
          batchRoot: Buffer.from(batchRoot).toString("hex"),
          prevLeaf: (leaves[first - 1] as Buffer).toString("hex"),
          lastLeaf: (leaves[last] as Buffer).toString("hex"),
          treeRoot: treeRoot.toString("hex"),
          prevManifest: manifestHash(prevText),
        } as BatchManifest,
        A,
      );
      const cp = parseCheckpointText(parseNote(checkpoint as string).text);
      const note = signNote(checkpointText({ ...cp, rootHash: treeRoot }), [A]);
      o.manifests[i] = manifestLine(note, text);
      prevText = text;
    }
    writeOut(o);
    return o;
  }

  it("the genuine rotated output verifies clean with both keys", async () => {
    expect(rotationIndex).toBeGreaterThan(0);
    const report = await verifySource(fileSource(pristineDir), [A.public, B.public]);
    expect(report.findings, formatReport(report)).toEqual([]);
  });

  it("A rewrites and re-signs everything after the rotation → bad-signature, retired at entry N", async () => {
    const o = await rewriteAfterRotation();
    const report = await verifySource(fileSource(o.dir), [A.public, B.public]);
    // Everything else is consistent: links, batch roots, checkpoint roots. Only the key's
    // retirement tells the rewrite from the real thing.
    expect(categoriesOf(report), formatReport(report)).toEqual(["bad-signature"]);
    const later = o.manifests.length - rotationIndex - 1;
    expect(later).toBeGreaterThan(1);
    expect(report.findings).toHaveLength(2 * later); // each manifest and its checkpoint
    for (let i = rotationIndex + 1; i < o.manifests.length; i++) {
      const location = `${o.manifestsName}:${i + 1}`;
      findingMatching(
        report,
        { category: "bad-signature", location, manifest: i },
        new RegExp(`retired at entry ${rotationIndex}`),
      );
      findingMatching(
        report,
        { category: "bad-signature", location },
        new RegExp(`checkpoint .* retired at entry ${rotationIndex}`),
      );
    }
    const r = verifyCli(
      "--source",
      `file:${o.dir}`,
      "--trust",
      join(tmp.path, "keys", "signing.pub"),
      "--trust",
      join(tmp.path, "keys", "b.pub"),
    );
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/bad-signature/);
  });

  it("a checkpoint A signs for a tree past the rotation, passed with --checkpoint → bad-signature", async () => {
    const o = readOut(pristineDir);
    const genuine = parseLine(o.manifests.at(-1) as string).checkpoint as string;
    const cp = parseCheckpointText(parseNote(genuine).text);
    const saved = join(tmp.path, "a-signed.checkpoint");
    writeFileSync(saved, signNote(checkpointText(cp), [A]));
    const report = await verifySource(
      fileSource(pristineDir),
      [A.public, B.public],
      [{ note: readFileSync(saved, "utf8"), location: saved }],
    );
    expect(report.findings.map((f) => [f.category, f.location])).toEqual([
      ["bad-signature", saved],
    ]);
    expect(report.findings[0]?.detail).toMatch(new RegExp(`retired at entry ${rotationIndex}`));
    // The same note signed by B, the current key, is fine.
    const byB = await verifySource(
      fileSource(pristineDir),
      [A.public, B.public],
      [{ note: signNote(checkpointText(cp), [B]), location: "b.checkpoint" }],
    );
    expect(byB.findings).toEqual([]);
  });

  it("a rotation back to the earlier key (B → A) brings A back: the agent's output verifies clean", async () => {
    await produce({ keyFile: keyA, previousKeyFile: keyB }, 50);
    const o = readOut(pristineDir);
    const rotations = o.manifests
      .map((l, i) => ({ i, m: parseLine(l).manifest }))
      .filter(({ m }) => m.type === "key-rotation");
    expect(rotations.map(({ m }) => m.keyId)).toEqual([
      manifestKeyId(A.public),
      manifestKeyId(B.public),
    ]);
    const last = parseLine(o.manifests.at(-1) as string).manifest;
    expect(last.keyId).toBe(manifestKeyId(A.public));
    const report = await verifySource(fileSource(pristineDir), [A.public, B.public]);
    expect(report.findings, formatReport(report)).toEqual([]);
    expect(report.chains[0]?.records).toBe(75);
  });
});

function postProtobuf(url: string, body: Buffer): Promise<number> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf" },
    body,
  }).then(async (res) => {
    await res.arrayBuffer();
    return res.status;
  });
}

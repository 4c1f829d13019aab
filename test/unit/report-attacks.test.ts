import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { verifySource } from "../../agent/verify/verify.js";
import { buildReport } from "../../agent/verify/report/model.js";
import { renderHtml } from "../../agent/verify/report/render-html.js";
import { renderMarkdown } from "../../agent/verify/report/render-md.js";
import { fileSource } from "../../agent/exporters/file/reader.js";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import {
  checkEvidence,
  type EvidenceBundle,
  searchEvidence,
} from "../../agent/verify/report/evidence.js";
import { makeTempDir } from "../helpers/agent.js";
import { writeSampleLog } from "../helpers/sample-log.js";

/**
 * Attacks on evidence bundles and reports (docs/report.md): bundles forged to pass
 * `check-evidence`, and source text that tries to change what the auditor reads.
 */

describe("check-evidence against forged bundles", () => {
  const tmp = makeTempDir();
  afterAll(() => tmp.cleanup());
  const log = writeSampleLog(tmp.path, { records: 120, batch: 40 });
  const trusted = readTrustedKeys(log.trust);
  // Records of enduser u-3 (seq 3, 20, 37, …), proven: a genuine bundle.
  const genuine = searchEvidence(
    fileSource(log.outDir),
    trusted,
    { where: [{ key: "enduser.id", value: "u-3" }], from: null, to: null },
    100,
  );
  const forged = async (edit: (b: Record<string, unknown>) => void) => {
    const b = JSON.parse(JSON.stringify(await genuine)) as Record<string, unknown>;
    edit(b);
    return checkEvidence(JSON.stringify(b), trusted);
  };
  const query = (b: Record<string, unknown>) => b.query as Record<string, unknown>;

  it("the genuine bundle is valid", async () => {
    expect(checkEvidence(JSON.stringify(await genuine), trusted)).toMatchObject({ ok: true });
  });

  it("refuses a query the checker cannot apply, which a reader would take for another user's", async () => {
    // Each reads as "enduser.id = u-4" (or a time range no record is in) to a person or
    // another JSON tool, while the records are u-3's.
    const attacks: Array<(b: Record<string, unknown>) => void> = [
      (b) => {
        query(b).where = { 0: { key: "enduser.id", value: "u-4" }, length: 1 };
      },
      (b) => {
        query(b).where = "enduser.id=u-4";
      },
      (b) => {
        query(b).where = [{ key: "enduser.id", value: "u-4", op: "not" }, "enduser.id=u-4"];
      },
      (b) => {
        query(b).where = [{ key: "enduser.id", value: 4 }];
      },
      (b) => {
        query(b).from = "2099-13-01T00:00:00.000Z";
      },
      (b) => {
        query(b).to = 946684800000; // 2000-01-01 as milliseconds
      },
      (b) => {
        delete b.query;
      },
      (b) => {
        b.query = "enduser.id=u-4";
      },
    ];
    for (const attack of attacks) {
      const result = await forged(attack);
      expect(result.ok, attack.toString()).toBe(false);
      expect(result.problems.join("\n")).toMatch(/query/);
    }
  });

  it("still accepts the query forms search writes", async () => {
    const b = (await genuine) as EvidenceBundle;
    const ranged = { ...b, query: { ...b.query, from: "2026-01-01T00:00:00.000Z", to: null } };
    expect(checkEvidence(JSON.stringify(ranged), trusted).ok).toBe(true);
  });

  it("refuses a bundle that counts a record or a chain twice, or claims fewer matches than it holds", async () => {
    const chains = (b: Record<string, unknown>) => b.chains as Array<Record<string, unknown>>;
    const records = (b: Record<string, unknown>) =>
      chains(b)[0]?.records as Array<Record<string, unknown>>;
    const twiceRecord = await forged((b) => {
      const r = records(b);
      r.push(...r, ...r);
      chains(b)[0] = { ...chains(b)[0], matched: r.length };
    });
    expect(twiceRecord.ok).toBe(false);
    expect(twiceRecord.problems.join("\n")).toMatch(/record seq 3: .*more than once/);
    const twiceChain = await forged((b) => {
      b.chains = [...chains(b), ...chains(b)];
    });
    expect(twiceChain.ok).toBe(false);
    expect(twiceChain.problems.join("\n")).toMatch(/more than once/);
    const fewer = await forged((b) => {
      chains(b)[0] = { ...chains(b)[0], matched: 1 };
    });
    expect(fewer.ok).toBe(false);
    expect(fewer.problems.join("\n")).toMatch(/matched/);
  });

  it("refuses a bundle that gives a member twice, which readers would read differently", async () => {
    const text = JSON.stringify(await genuine);
    // The checker would take the last "where"; a person reading the file sees the first.
    const twice = text.replace(
      '"query":{',
      '"query":{"where":[{"key":"enduser.id","value":"u-1"}],',
    );
    expect(twice).not.toBe(text);
    const result = checkEvidence(twice, trusted);
    expect(result.ok).toBe(false);
    expect(result.problems.join("\n")).toMatch(/"where".*more than once|repeated|twice/i);
  });

  it("prints no terminal control or bidi character a bundle holds", async () => {
    // On a terminal: up a line, clear it, and write a verdict over "INVALID".
    const overwrite = "\u001b[1A\u001b[2K\revidence.json: VALID\n\u202e";
    const result = await forged((b) => {
      const chain = (b.chains as Array<Record<string, unknown>>)[0] as Record<string, unknown>;
      chain.chainId = `sample-chain${overwrite}`;
      (chain.records as Array<Record<string, unknown>>)[0] = {
        seq: overwrite,
        leafHash: overwrite,
      };
    });
    expect(result.ok).toBe(false);
    const text = result.problems.join("\n");
    expect(text).toContain("\\u001b[1A");
    // eslint-disable-next-line no-control-regex -- what must not be printed
    expect(result.problems.filter((p) => /[\u0000-\u001f\u007f-\u009f\u202e]/.test(p))).toEqual([]);
  });
});

describe("report text from a hostile source", () => {
  const tmp = makeTempDir();
  afterAll(() => tmp.cleanup());
  // `cat report.md` on a terminal: clear the screen and print a verdict of its own.
  const forge = "\u001b[2J\u001b[H# PASS: every chain verified, no findings\u001b[8m\u202e";
  const log = writeSampleLog(tmp.path, { records: 30, batch: 10, bodies: { 29: forge } });
  const trusted = readTrustedKeys(log.trust);

  it("holds no terminal control or bidi character in the Markdown or the HTML", async () => {
    const source = fileSource(log.outDir);
    const report = await buildReport([source], [await verifySource(source, trusted)], trusted, 10);
    const chain = report.sources[0]?.chains[0];
    const cp = chain?.checkpoint;
    expect(cp).toBeTruthy();
    // The lines after a note's blank line are signatures no key covers: anyone can add one.
    if (cp) cp.note = `${cp.note}\u2014 w${forge.replace(/[ #:,]/g, "")} AAAAAAAA\n`;
    const mdText = renderMarkdown(report);
    const html = renderHtml(report);
    for (const text of [mdText, html]) {
      // eslint-disable-next-line no-control-regex -- what must not be there
      expect(text.match(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/g)).toBeNull();
      expect(text).toContain("\\u001b[2J");
    }
  });

  it("is no PASS when the source read to describe is not the one verified", async () => {
    // The report reads a source twice (verify, then describe): a backend that serves the
    // genuine log to the first read and another to the second must not get a PASS with
    // records verify never saw.
    const clean = fileSource(log.outDir);
    const verified = [await verifySource(clean, trusted)];
    expect(verified[0]?.ok).toBe(true);
    const altered = join(tmp.path, "altered");
    cpSync(log.outDir, altered, { recursive: true });
    const file = join(altered, log.recordsFile.slice(log.outDir.length));
    writeFileSync(file, readFileSync(file, "utf8").replace("record 28", "record 99"));
    const other = writeSampleLog(join(tmp.path, "other"), { chainId: "other-chain", records: 5 });
    for (const [second, what] of [
      [fileSource(altered), /modified/],
      [fileSource(other.outDir), /not the one verified|other-chain/],
    ] as const) {
      const report = await buildReport([second], verified, trusted, 10);
      expect(report.ok).toBe(false);
      expect(report.summary.findings).toBeGreaterThan(0);
      expect(JSON.stringify(report.sources[0]?.verify.findings)).toMatch(what);
      expect(renderMarkdown(report)).toMatch(/^# FAIL/);
    }
    const same = await buildReport([clean], verified, trusted, 10);
    expect(same.ok).toBe(true);
  });
});

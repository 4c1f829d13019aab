import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { AgentError } from "../../agent/common/errors.js";
import { fileSource } from "../../agent/exporters/file/reader.js";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import { leavesSource, memoLeavesSource } from "../../agent/integrity/merkle.js";
import { proveInclusion } from "../../agent/integrity/proofs.js";
import { generateSigningKey } from "../../agent/integrity/signing.js";
import { checkEvidence, searchEvidence } from "../../agent/verify/report/evidence.js";
import { buildReport } from "../../agent/verify/report/model.js";
import { PartialTree } from "../../agent/verify/report/partial-tree.js";
import { esc, renderHtml } from "../../agent/verify/report/render-html.js";
import { md, renderMarkdown } from "../../agent/verify/report/render-md.js";
import { verifySource } from "../../agent/verify/verify.js";
import { makeTempDir } from "../helpers/agent.js";
import { prng, testSeed } from "../helpers/prng.js";
import { writeSampleLog } from "../helpers/sample-log.js";

/**
 * The report's parts (docs/report.md): proofs from a partial tree, escaping of
 * attacker-controlled text in HTML and Markdown, and evidence bundles that catch an altered
 * record, an altered proof and a wrong key.
 */

const SEED = testSeed("test/unit/report.test.ts");
const HOSTILE =
  '</script><script>document.title="PWNED"</script><img src=x onerror="alert(1)"> | [x](javascript:alert(1)) ``` `x`';

describe(`PartialTree (seed ${SEED.hex})`, () => {
  it("proves every kept leaf exactly as the whole tree does, for random sizes", async () => {
    const rng = prng(SEED.seed);
    for (let round = 0; round < 40; round++) {
      const size = 1 + rng.int(700);
      const provable = 1 + rng.int(64);
      const leaves = Array.from({ length: size }, () => Buffer.from(rng.bytes(32)));
      const whole = { size, source: () => memoLeavesSource(leaves) };
      const tree = new PartialTree(size, provable);
      for (const leaf of leaves) tree.append(leaf);
      expect(tree.root().equals(Buffer.from(leavesSource(leaves)(0, size)))).toBe(true);
      expect(tree.keepFrom).toBeLessThanOrEqual(Math.max(0, size - provable));
      for (let seq = Math.max(0, size - provable); seq < size; seq++) {
        expect(tree.holds(seq)).toBe(true);
        expect(await tree.prove(seq, size)).toEqual(await proveInclusion(whole, seq, size));
      }
    }
  });
});

describe("escaping", () => {
  it("leaves no markup in HTML text", () => {
    expect(esc(HOSTILE)).not.toMatch(/[<>"']/);
    expect(esc("a&b")).toBe("a&amp;b");
  });

  it("leaves no markup, link or cell end in Markdown text", () => {
    const out = md(HOSTILE);
    expect(out).not.toMatch(/[<>]/);
    expect(out).not.toMatch(/(^|[^\\])[|[\]`]/);
  });
});

describe("report and evidence on a sample log", () => {
  const tmp = makeTempDir();
  afterAll(() => tmp.cleanup());
  const log = writeSampleLog(tmp.path, {
    records: 260,
    batch: 40,
    rotateAfterBatch: 3,
    bodies: { 255: HOSTILE },
  });
  const trusted = readTrustedKeys(log.trust);
  const source = fileSource(log.outDir);

  it("renders the verdict, chart, rotation, checkpoint and the newest records, all proven", async () => {
    const verified = [await verifySource(source, trusted)];
    const report = await buildReport([source], verified, trusted, 20);
    expect(report.ok).toBe(true);
    const chain = report.sources[0]?.chains[0];
    expect(chain?.histogram.unit).toBe("hour");
    expect(chain?.histogram.buckets.reduce((n, b) => n + b.count, 0)).toBe(260);
    expect(chain?.rotations).toHaveLength(1);
    expect(chain?.checkpoint?.size).toBe(260);
    expect(chain?.records.rows.map((r) => r.seq)).toEqual(
      Array.from({ length: 20 }, (_, i) => 240 + i),
    );
    expect(chain?.records.rows.every((r) => r.proof?.treeSize === 260)).toBe(true);
    const html = renderHtml(report);
    // One script element: ours. The hostile body is there, escaped.
    expect(html.match(/<script/g)).toHaveLength(1);
    expect(html).not.toContain("<img");
    expect(html).toContain("&lt;/script&gt;&lt;script&gt;document.title=");
    expect(html).toMatch(/Content-Security-Policy" content="default-src 'none';/);
    expect(html).toContain('data-verdict="pass"');
    expect(html).toMatch(/<svg class="chart"/);
    const mdText = renderMarkdown(report);
    expect(mdText).toMatch(/^# PASS/);
    // Outside code fences (which a fence longer than any backtick run in them closes).
    const prose = mdText.replace(/^(`{3,})[^\n]*\n[\s\S]*?^\1$/gm, "");
    expect(prose).not.toContain("<img");
    expect(prose).toContain("&lt;img src=x onerror=");
    expect(mdText).toContain("````jsonl\n"); // the hostile body holds a run of 3
  });

  it("builds an evidence bundle that checks out, and catches an altered record, proof or key", async () => {
    const query = { where: [{ key: "enduser.id", value: "u-3" }], from: null, to: null };
    const bundle = await searchEvidence(source, trusted, query, 100);
    const records = bundle.chains[0]?.records ?? [];
    expect(records.length).toBe(bundle.chains[0]?.matched);
    expect(records.map((r) => r.seq)).toEqual(
      Array.from({ length: 260 }, (_, i) => i).filter((i) => i % 17 === 3),
    );
    const text = JSON.stringify(bundle);
    expect(checkEvidence(text, trusted)).toMatchObject({ ok: true, problems: [] });

    const altered = JSON.parse(text) as typeof bundle;
    const r0 = altered.chains[0]?.records[0] as (typeof records)[number];
    r0.line = r0.line.replace(`record ${r0.seq}`, "record 9999");
    expect(checkEvidence(JSON.stringify(altered), trusted).problems.join("\n")).toMatch(
      /record seq 3: the line's leaf hash .* the record was altered/,
    );

    const badProof = JSON.parse(text) as typeof bundle;
    const p = badProof.chains[0]?.records[1]?.proof as string[];
    p[0] = `${(p[0] as string).slice(0, 63)}${(p[0] as string).endsWith("0") ? "1" : "0"}`;
    expect(checkEvidence(JSON.stringify(badProof), trusted).problems.join("\n")).toMatch(
      /record seq 20: the inclusion proof does not lead/,
    );

    const wrongKey = checkEvidence(text, [generateSigningKey("audit-agent").public]);
    expect(wrongKey.ok).toBe(false);
    expect(wrongKey.problems.join("\n")).toMatch(
      /not a checkpoint of this chain signed by a trusted key/,
    );

    const offQuery = JSON.parse(text) as typeof bundle;
    offQuery.query.where = [{ key: "enduser.id", value: "u-4" }];
    expect(checkEvidence(JSON.stringify(offQuery), trusted).problems[0]).toMatch(
      /does not meet the bundle's query/,
    );
    expect(checkEvidence("{not json", trusted).problems[0]).toMatch(/^not JSON/);
  });

  it("refuses evidence from a source whose records do not reproduce the signed root", async () => {
    const dir = makeTempDir();
    try {
      const other = writeSampleLog(dir.path, { records: 50, batch: 10 });
      const lines = readFileSync(other.recordsFile, "utf8").replace("record 7", "record 8");
      writeFileSync(other.recordsFile, lines);
      const err = await searchEvidence(
        fileSource(other.outDir),
        readTrustedKeys(other.trust),
        { where: [{ key: "enduser.id", value: "u-7" }], from: null, to: null },
        10,
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AgentError);
      expect((err as AgentError).code).toBe("SEARCH_UNPROVABLE");
    } finally {
      dir.cleanup();
    }
  });
});

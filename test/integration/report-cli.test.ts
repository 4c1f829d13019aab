import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeTempDir, runCli } from "../helpers/agent.js";
import { writeSampleLog } from "../helpers/sample-log.js";

/**
 * `audit-agent report`, `search` and `check-evidence` as an auditor runs them: exit status,
 * what is written, and tampering (of the source, of a bundle) caught.
 */
describe("report, search and check-evidence commands", () => {
  const tmp = makeTempDir();
  afterAll(() => tmp.cleanup());
  const log = writeSampleLog(tmp.path, { records: 120, batch: 30 });
  const trust = log.trust.flatMap((t) => ["--trust", t]);
  const source = ["--source", `file:${log.outDir}`];

  it("writes a passing report in each format, exit 0", async () => {
    for (const format of ["html", "md", "json"]) {
      const out = join(tmp.path, `report.${format}`);
      const r = await runCli(["report", ...source, ...trust, "--out", out, "--limit", "10"]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/PASS, 1 chain\(s\), 120 record line\(s\)/);
      const text = readFileSync(out, "utf8");
      if (format === "json") {
        const report = JSON.parse(text) as {
          ok: boolean;
          sources: Array<{ chains: Array<{ records: { rows: unknown[] } }> }>;
        };
        expect(report.ok).toBe(true);
        expect(report.sources[0]?.chains[0]?.records.rows).toHaveLength(10);
      } else expect(text).toMatch(format === "md" ? /^# PASS/ : /data-verdict="pass"/);
    }
  });

  it("exits 2 on a bad format or a missing key, with the code's message", async () => {
    const bad = await runCli(["report", ...source, ...trust, "--format", "pdf"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--format pdf: use html, md or json/);
    const noKey = await runCli(["report", ...source]);
    expect(noKey.status).toBe(2);
    const where = await runCli(["search", ...source, ...trust, "--where", "novalue"]);
    expect(where.status).toBe(2);
    expect(where.stderr).toMatch(/use KEY=VALUE/);
    const time = await runCli([
      "search",
      ...source,
      ...trust,
      "--where",
      "a=b",
      "--from",
      "yesterday",
    ]);
    expect(time.status).toBe(2);
  });

  it("searches, and check-evidence accepts the bundle and rejects it altered or with another key", async () => {
    const bundle = join(tmp.path, "evidence.json");
    const s = await runCli([
      "search",
      ...source,
      ...trust,
      "--where",
      "service.name=auth",
      "--where",
      "eventName=audit.user.logout",
      "--from",
      "2026-01-01T12:30:00Z",
      "--out",
      bundle,
    ]);
    expect(s.status, s.stderr).toBe(0);
    expect(s.stderr).toMatch(/^30 record\(s\) matched in 1 chain\(s\)/);
    const ok = await runCli(["check-evidence", bundle, ...trust]);
    expect(ok.status, ok.stdout).toBe(0);
    expect(ok.stdout).toMatch(
      /VALID: 30 record\(s\) of 1 chain\(s\) proven against checkpoints signed by audit-agent\+[0-9a-f]{8}\+\S+ \(SHA256:[0-9a-f]{64}\)/,
    );

    const altered = join(tmp.path, "altered.json");
    writeFileSync(altered, readFileSync(bundle, "utf8").replace("record 31", "record 32"));
    const bad = await runCli(["check-evidence", altered, ...trust]);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/INVALID: .*\n.*record seq 31: the line's leaf hash/);

    const otherKey = writeSampleLog(join(tmp.path, "other"), { records: 3, batch: 3 }).trust;
    const wrong = await runCli(["check-evidence", bundle, "--trust", otherKey[0] as string]);
    expect(wrong.status).toBe(1);
    expect(wrong.stdout).toMatch(/not a checkpoint of this chain signed by a trusted key/);

    const missing = await runCli(["check-evidence", join(tmp.path, "none.json"), ...trust]);
    expect(missing.status).toBe(2);
  });

  it("searches and checks evidence of a log whose checkpoints carry a custom signing.origin", async () => {
    const log = writeSampleLog(join(tmp.path, "origin"), {
      records: 40,
      batch: 10,
      origin: "example.com/audit/billing",
    });
    const bundle = join(tmp.path, "origin-evidence.json");
    const trusted = log.trust.flatMap((t) => ["--trust", t]);
    const s = await runCli([
      "search",
      "--source",
      `file:${log.outDir}`,
      ...trusted,
      "--where",
      "service.name=auth",
      "--out",
      bundle,
    ]);
    expect(s.status, s.stderr).toBe(0);
    expect(s.stderr).toMatch(/record\(s\) matched in 1 chain\(s\)/);
    const ok = await runCli(["check-evidence", bundle, ...trusted]);
    expect(ok.status, ok.stdout).toBe(0);
    expect(ok.stdout).toMatch(/VALID: \d+ record/);
    // The origin binds nothing here: a record altered in the bundle still fails its proof.
    const altered = join(tmp.path, "origin-altered.json");
    writeFileSync(altered, readFileSync(bundle, "utf8").replace(/record (\d+)/, "record x$1"));
    const bad = await runCli(["check-evidence", altered, ...trusted]);
    expect(bad.status).toBe(1);
  });

  it("reports a tampered source as FAIL with its findings, exit 1, and gives no evidence from it", async () => {
    const dir = join(tmp.path, "tampered");
    const t = writeSampleLog(dir, { records: 60, batch: 20 });
    writeFileSync(
      t.recordsFile,
      readFileSync(t.recordsFile, "utf8").replace("record 42", "record 24"),
    );
    const args = ["--source", `file:${t.outDir}`, ...t.trust.flatMap((k) => ["--trust", k])];
    const r = await runCli(["report", ...args, "--format", "md"]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^# FAIL: \d+ findings?/);
    expect(r.stdout).toMatch(/\| modified \| sample-chain \|/);
    const s = await runCli(["search", ...args, "--where", "rec.idx=1"]);
    expect(s.status).toBe(1);
    expect(s.stderr).toMatch(/SEARCH_UNPROVABLE: chain sample-chain/);
  });
});

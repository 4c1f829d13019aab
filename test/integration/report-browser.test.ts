import { execFile, execFileSync } from "node:child_process";
import { copyFileSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { makeTempDir, ROOT, runCli } from "../helpers/agent.js";
import { writeSampleLog } from "../helpers/sample-log.js";

/**
 * The HTML report in a real browser: Debian's headless chromium (.ci/run installs it), run
 * as a child process. What the page holds after its script ran (--dump-dom), and a
 * screenshot. With AUDIT_REPORT_SCREENSHOT=1 the screenshot of the sample report is kept as
 * docs/report-screenshot.png (README).
 */

function findChromium(): string | null {
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      return execFileSync("which", [name], { encoding: "utf8" }).trim() || null;
    } catch {
      // not this one
    }
  }
  return null;
}

const CHROMIUM = findChromium();
if (!CHROMIUM)
  console.warn(
    "report-browser.test: WARNING: no chromium on PATH (apt-get install chromium): the browser tests are SKIPPED",
  );

/** Runs headless chromium on `file` with `args`; its stdout. */
function chromium(file: string, dir: string, ...args: string[]): Promise<string> {
  const [path, hash] = file.split("#");
  return new Promise((resolve, reject) => {
    execFile(
      CHROMIUM as string,
      [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        `--user-data-dir=${join(dir, "chromium-profile")}`,
        ...args,
        pathToFileURL(path as string).href + (hash === undefined ? "" : `#${hash}`),
      ],
      { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}

/** Hostile record bodies: each would change the page if it ran. */
const XSS = {
  10: '</script><script>document.title="PWNED"</script>',
  11: "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">",
  12: "\"><svg onload=\"document.body.setAttribute('data-pwned','2')\">",
};

describe.skipIf(!CHROMIUM)("the HTML report in headless chromium", () => {
  const tmp = makeTempDir();
  afterAll(() => tmp.cleanup());

  async function report(dir: string, tamper?: (recordsFile: string) => void) {
    const log = writeSampleLog(dir, {
      records: 1500,
      batch: 100,
      rotateAfterBatch: 8,
      stepNs: 45_000_000_000n,
      bodies: XSS,
    });
    tamper?.(log.recordsFile);
    const out = join(dir, "report.html");
    const r = await runCli([
      "report",
      "--source",
      `file:${log.outDir}`,
      ...log.trust.flatMap((t) => ["--trust", t]),
      "--limit",
      "1500",
      "--out",
      out,
    ]);
    expect(r.stderr).toMatch(tamper ? /FAIL/ : /PASS/);
    return out;
  }

  it("renders the verdict, chart, checkpoint and records after its script ran; hostile records stay text", async () => {
    const file = await report(join(tmp.path, "clean"));
    const dom = await chromium(file, tmp.path, "--dump-dom");
    expect(dom).toMatch(/<body data-script="ran">/); // the CSP let our script run
    expect(dom).toMatch(/<header id="verdict" class="verdict pass" data-verdict="pass">/);
    expect(dom).toMatch(/<svg class="chart"[^>]*>[\s\S]*?<rect class="bar"/);
    expect(dom).toContain("Key rotations");
    expect(dom).toMatch(/<pre class="note">otel-audit-agent\/sample-chain\n1500\n/);
    expect(dom).toMatch(/<details><summary>proof<\/summary>/);
    // None of the hostile bodies ran; each is shown as text.
    expect(dom).toContain("<title>PASS: audit report</title>");
    expect(dom).not.toMatch(/<body[^>]*data-pwned/);
    expect(dom).toContain("&lt;/script&gt;&lt;script&gt;document.title=");
    expect(dom).toContain("&lt;img src=x onerror=");
    expect(dom.match(/<script>/g)).toHaveLength(1);

    const png = join(tmp.path, "report.png");
    await chromium(
      file,
      tmp.path,
      `--screenshot=${png}`,
      "--window-size=1280,1400",
      "--hide-scrollbars",
    );
    expect(readFileSync(png).subarray(1, 4).toString()).toBe("PNG");
    expect(statSync(png).size).toBeGreaterThan(10_000);
    if (process.env.AUDIT_REPORT_SCREENSHOT === "1")
      copyFileSync(png, join(ROOT, "docs", "report-screenshot.png"));
  });

  it("filters the records table by the filters a link carries", async () => {
    const file = join(tmp.path, "clean", "report.html");
    const dom = await chromium(`${file}#f3=AUTH&f5=logout`, tmp.path, "--dump-dom");
    expect(dom).toMatch(/<body data-script="ran">/);
    const rows = [
      ...dom
        .slice(dom.indexOf('<table class="records"'))
        .matchAll(/<tr( hidden="")?><td>\d+<\/td>(?:<td>[^<]*<\/td>){2}<td>([^<]*)<\/td>/g),
    ];
    expect(rows).toHaveLength(1500);
    const shown = rows.filter((r) => r[1] === undefined);
    expect(shown).toHaveLength(500);
    expect(new Set(shown.map((r) => r[2]))).toEqual(new Set(["auth"]));
    expect(dom).toMatch(/<span id="shown-0-sample-chain">500<\/span> shown/);
  });

  it("shows a tampered source's failure at the top, with its findings", async () => {
    const file = await report(join(tmp.path, "tampered"), (records) =>
      writeFileSync(records, readFileSync(records, "utf8").replace("record 700", "record 007")),
    );
    const dom = await chromium(file, tmp.path, "--dump-dom");
    const body = dom.slice(dom.indexOf("<body"));
    // The first thing in the page is the verdict.
    expect(body).toMatch(
      /^<body data-script="ran">\s*<header id="verdict" class="verdict fail" data-verdict="fail">\s*<h1>FAIL: \d+ findings?<\/h1>/,
    );
    expect(body).toMatch(/<li><span class="cat">modified<\/span>: \d+<\/li>/);
    expect(body).toMatch(
      /<table id="findings-0" class="findings">[\s\S]*?<td class="cat">modified<\/td><td>sample-chain<\/td><td>seq 700/,
    );
    expect(body).toMatch(/do not reproduce the root of the checkpoint|not the signed chain/);
  });
});

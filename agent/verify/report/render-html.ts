import { createHash } from "node:crypto";
import { printable } from "../../common/printable.js";
import { findingGroups } from "../report-text.js";
import type { ChainDetail, ProvenRecord } from "./collect.js";
import type { AuditReport } from "./model.js";

/**
 * The audit report as one self-contained HTML file: no network access, no external script,
 * style or font. Everything taken from a source (record fields, locations, details, chain
 * ids…) is attacker-controlled text, so all of it goes through `esc` and only ever lands in
 * element content or quoted attribute values. As a second line of defence the page's
 * Content-Security-Policy lets run only the one inline script below (by its hash) and
 * loads nothing: a record that slipped past escaping could still not run a script.
 */

/** Text for HTML element content or a double- or single-quoted attribute value. */
export function esc(text: string): string {
  // Control and bidi characters too: a bidi override would make a cell read backwards, and
  // escape sequences would run when the file is printed on a terminal.
  return printable(text, { tab: true, newlines: true })
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/**
 * The table filter: each input keeps the rows whose column contains its text (ignoring case);
 * the count of rows shown follows.
 */
const SCRIPT = `"use strict";
document.querySelectorAll("table.records").forEach(function (table) {
  var inputs = table.querySelectorAll("input.filter");
  var shown = document.getElementById(table.getAttribute("data-shown"));
  function apply() {
    var n = 0;
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      var ok = true;
      inputs.forEach(function (input) {
        var q = input.value.toLowerCase();
        var cell = tr.children[Number(input.getAttribute("data-col"))];
        if (q && (!cell || cell.textContent.toLowerCase().indexOf(q) < 0)) ok = false;
      });
      tr.hidden = !ok;
      if (ok) n++;
    });
    if (shown) shown.textContent = String(n);
  }
  // A link can carry filters: report.html#f3=auth filters column 3 (service) by "auth".
  var wanted = new URLSearchParams(location.hash.slice(1));
  inputs.forEach(function (input) {
    input.value = wanted.get("f" + input.getAttribute("data-col")) || "";
    input.addEventListener("input", apply);
  });
  apply();
});
document.body.setAttribute("data-script", "ran");
`;

const STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:0 2em 2em;color:#222}
.verdict{padding:1em 1.5em;margin:0 -2em 1em;color:#fff}.verdict h1{margin:0 0 .3em}
.pass{background:#1b7f3b}.fail{background:#b3261e}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}pre{white-space:pre-wrap;word-break:break-all;background:#f7f7f7;padding:.5em;margin:.2em 0}
.chain{border-top:2px solid #888;margin-top:1.5em}.muted{color:#666}.cat{font-weight:bold;color:#b3261e}
svg .bar{fill:#3a6ea5}svg text{font-size:11px;fill:#444}input.filter{width:95%}
td.attrs,td.body{max-width:28em;overflow-wrap:anywhere}`;

export function renderHtml(report: AuditReport): string {
  const scriptHash = createHash("sha256").update(SCRIPT).digest("base64");
  const csp = `default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-${scriptHash}'`;
  const verdict = report.ok ? "PASS" : "FAIL";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${verdict}: audit report</title><style>${STYLE}</style></head>
<body>
${verdictHeader(report)}
${report.sources.map((s, i) => sourceSection(s, i)).join("\n")}
<p class="muted">Generated ${esc(report.generatedAt)} by audit-agent report. Proofs are RFC 6962 inclusion proofs of each record's leaf hash, SHA-256(0x00 ‖ line), in the tree whose size and root the signed checkpoint states (docs/report.md).</p>
<script>${SCRIPT}</script>
</body></html>
`;
}

function verdictHeader(report: AuditReport): string {
  const s = report.summary;
  const cats = Object.entries(s.byCategory)
    .map(([k, v]) => `<li><span class="cat">${esc(k)}</span>: ${v}</li>`)
    .join("");
  return `<header id="verdict" class="verdict ${report.ok ? "pass" : "fail"}" data-verdict="${report.ok ? "pass" : "fail"}">
<h1>${report.ok ? "PASS: every chain verified, no findings" : `FAIL: ${s.findings} finding${s.findings === 1 ? "" : "s"}`}</h1>
<p>${s.sources} source(s), ${s.chains} chain(s), ${s.records} record line(s), ${s.findings} finding(s).</p>
${cats ? `<ul id="finding-counts">${cats}</ul>` : ""}
</header>`;
}

function sourceSection(s: AuditReport["sources"][number], i: number): string {
  const v = s.verify;
  const groups = findingGroups(v.findings);
  const findings = groups.length
    ? `<table id="findings-${i}" class="findings"><thead><tr><th>category</th><th>chain</th><th>where</th><th>findings</th><th>first</th></tr></thead><tbody>
${groups
  .map((g) => {
    const f = g.findings[0];
    return `<tr><td class="cat">${esc(g.category)}</td><td>${esc(g.chainId)}</td><td>${esc(g.label)}</td><td>${g.findings.length}</td><td>${esc(`${f?.location}: ${f?.detail}`)}</td></tr>`;
  })
  .join("\n")}</tbody></table>`
    : `<p id="findings-${i}" class="findings">No findings.</p>`;
  const losses = (v.declaredLosses ?? [])
    .map(
      (d) =>
        `<li>chain ${esc(d.chainId)} seq ${d.lostFrom}..${d.lostThrough}, declared by chain ${esc(d.declaredBy)} at ${esc(d.declaredAt)}: “${esc(d.reason)}”</li>`,
    )
    .join("");
  return `<section class="source">
<h2>Source ${esc(s.source)}: ${v.ok ? "verified" : "FAILED"}</h2>
<h3>Findings</h3>
${findings}
${losses ? `<h3>Declared losses</h3><ul>${losses}</ul>` : ""}
${s.chains
  .map((c) =>
    chainSection(
      c,
      v.chains.find((x) => x.chainId === c.chainId),
      `${i}-${c.chainId}`,
    ),
  )
  .join("\n")}
</section>`;
}

type Summary = AuditReport["sources"][number]["verify"]["chains"][number] | undefined;

function chainSection(c: ChainDetail, summary: Summary, id: string): string {
  const row = (k: string, v: string) => `<tr><th>${k}</th><td>${v}</td></tr>`;
  const cp = c.checkpoint;
  return `<section class="chain" id="chain-${esc(id)}">
<h3>Chain ${esc(c.chainId)}</h3>
<table class="facts">
${row("covered", c.firstReceived ? `${esc(c.firstReceived)} to ${esc(c.lastReceived ?? "")} (receive time)` : "no records")}
${row("record lines", `${c.lines}${summary && summary.firstSeq !== null ? `, seq ${summary.firstSeq}..${summary.lastSeq}` : ""}`)}
${row("signed batches", `${c.batches}${c.firstBatchAt ? `, ${esc(c.firstBatchAt)} to ${esc(c.lastBatchAt ?? "")}` : ""}${summary ? `, sealed through seq ${summary.sealedThrough}` : ""}`)}
${row("keys", summary?.keys.length ? summary.keys.map(esc).join("<br>") : "none verified")}
${summary?.notes.length ? row("notes", summary.notes.map(esc).join("<br>")) : ""}
</table>
<h4>Records per ${esc(c.histogram.unit)}</h4>
${chart(c)}
<h4>Key rotations</h4>
${
  c.rotations.length
    ? `<table class="rotations"><thead><tr><th>manifest</th><th>at</th><th>after tree size</th><th>from key</th><th>to key</th></tr></thead><tbody>${c.rotations
        .map(
          (r) =>
            `<tr><td>${r.index}</td><td>${esc(r.at)}</td><td>${r.treeSize}</td><td>${esc(r.fromKey)}</td><td>${esc(r.toKey)}</td></tr>`,
        )
        .join("")}</tbody></table>`
    : "<p>None.</p>"
}
<h4>Latest checkpoint</h4>
${
  cp
    ? `<p>Tree size ${cp.size}, root <code>${cp.rootHash}</code>, origin ${esc(cp.origin)}; signed by ${esc(cp.signedBy.verifierKey)} (${cp.signedBy.fingerprint}).</p>
<ul class="signatures">${cp.signatures.map((s) => `<li>${esc(s.name)} (key id ${esc(s.keyId)}): ${s.status === "trusted" ? "trusted key, verified" : s.status === "invalid" ? "trusted key, DOES NOT VERIFY" : summary?.latestCheckpoint?.cosigners.includes(s.name) ? "witness cosignature, verified" : "other signature (a witness's cosignature: check it with verify --witness)"}</li>`).join("")}</ul>
<pre class="note">${esc(cp.note)}</pre>`
    : "<p>No checkpoint signed by a trusted key.</p>"
}
${recordsTable(c, id)}
</section>`;
}

/** Records per bucket as an inline SVG bar chart. */
function chart(c: ChainDetail): string {
  const b = c.histogram.buckets;
  if (b.length === 0) return `<p class="chart">No records.</p>`;
  const width = 800;
  const height = 160;
  const left = 40;
  const max = Math.max(...b.map((x) => x.count), 1);
  const w = (width - left) / b.length;
  const bars = b
    .map((x, i) => {
      const h = Math.round((x.count / max) * (height - 30));
      return `<rect class="bar" x="${(left + i * w).toFixed(2)}" y="${height - 15 - h}" width="${Math.max(w - 1, 0.5).toFixed(2)}" height="${h}"><title>${esc(x.start)}: ${x.count}</title></rect>`;
    })
    .join("");
  return `<svg class="chart" role="img" aria-label="records per ${esc(c.histogram.unit)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg">
<text x="0" y="12">${max}</text><text x="0" y="${height - 15}">0</text>
<text x="${left}" y="${height - 2}">${esc(b[0]?.start ?? "")}</text>
<text x="${width}" y="${height - 2}" text-anchor="end">${esc(b[b.length - 1]?.start ?? "")}</text>
${bars}</svg>`;
}

function recordsTable(c: ChainDetail, id: string): string {
  const rows = c.records.rows;
  const head = ["seq", "received", "time", "service", "attributes", "event", "body", "proof"];
  // Time, service, attributes and event name can be filtered (SCRIPT).
  const filterRow = head
    .map((h, col) =>
      [2, 3, 4, 5].includes(col)
        ? `<th><input class="filter" data-col="${col}" placeholder="filter ${h}"></th>`
        : "<th></th>",
    )
    .join("");
  return `<h4>Records</h4>
<p>The newest ${rows.length} of ${c.records.matched} record lines${rows.length < c.records.matched ? ` (the report shows at most ${rows.length}; use audit-agent search for older ones)` : ""}; <span id="shown-${esc(id)}">${rows.length}</span> shown. ${c.proofProblem ? `<strong>${esc(c.proofProblem)}</strong>` : `Each proof is against the checkpoint of size ${c.checkpoint?.size}.`}</p>
<table class="records" data-shown="shown-${esc(id)}"><thead><tr>${head.map((h) => `<th>${h}</th>`).join("")}</tr><tr>${filterRow}</tr></thead><tbody>
${rows.map(recordRow).join("\n")}
</tbody></table>`;
}

const clip = (s: string, n = 300) => (s.length > n ? `${s.slice(0, n)}…` : s);

function recordRow(r: ProvenRecord): string {
  const attrs = r.attributes.map(([k, v]) => `${k}=${v}`).join(", ");
  const proof = r.proof
    ? `<details><summary>proof</summary><pre>${esc(JSON.stringify({ ...r.proof, line: r.line }, null, 1))}</pre></details>`
    : "—";
  return `<tr><td>${r.seq}</td><td>${esc(r.received)}</td><td>${esc(r.time ?? "")}</td><td>${esc(r.service ?? "")}</td><td class="attrs">${esc(clip(attrs))}</td><td>${esc(r.eventName ?? "")}</td><td class="body">${esc(clip(r.body ?? ""))}</td><td>${proof}</td></tr>`;
}

import { printable } from "../../common/printable.js";
import { findingGroups } from "../report-text.js";
import type { ChainDetail } from "./collect.js";
import type { AuditReport } from "./model.js";

/**
 * The audit report as Markdown: the same facts as the HTML form (render-html.ts). Text from
 * a source is attacker-controlled: in table cells and prose it is escaped so that it can
 * neither end a cell, nor become a link, an image, emphasis, code or raw HTML in a Markdown
 * viewer (it never starts a line, so list and heading marks need no escape); notes
 * and proofs go in code fences longer than any run of backticks they hold. Control and bidi
 * characters are escaped everywhere (common/printable.ts): `cat report.md` on a terminal
 * must not run a record's escape sequences, which could print a verdict of their own.
 */

/** Text for a Markdown table cell or paragraph. */
export function md(text: string): string {
  return printable(text.replace(/\r?\n|\r/g, " "))
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/[\\`*_{}[\]()|~]/g, (c) => `\\${c}`);
}

/** A fenced code block that `text` cannot close. */
function fence(raw: string, info = ""): string {
  const text = printable(raw, { tab: true, newlines: true });
  const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const f = "`".repeat(longest + 1);
  return `${f}${info}\n${text.replace(/\n$/, "")}\n${f}`;
}

const table = (head: string[], rows: string[][]) =>
  [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => " --- |").join("")}`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");

export function renderMarkdown(report: AuditReport): string {
  const s = report.summary;
  const out = [
    `# ${report.ok ? "PASS: every chain verified, no findings" : `FAIL: ${s.findings} finding${s.findings === 1 ? "" : "s"}`}`,
    "",
    `${s.sources} source(s), ${s.chains} chain(s), ${s.records} record line(s), ${s.findings} finding(s)${
      Object.keys(s.byCategory).length
        ? `: ${Object.entries(s.byCategory)
            .map(([k, v]) => `${md(k)} ${v}`)
            .join(", ")}`
        : ""
    }.`,
    "",
    `Generated ${report.generatedAt} by audit-agent report.`,
  ];
  for (const src of report.sources) {
    const v = src.verify;
    out.push(
      "",
      `## Source ${md(src.source)}: ${v.ok ? "verified" : "FAILED"}`,
      "",
      "### Findings",
      "",
    );
    const groups = findingGroups(v.findings);
    out.push(
      groups.length
        ? table(
            ["category", "chain", "where", "findings", "first"],
            groups.map((g) => [
              md(g.category),
              md(g.chainId),
              md(g.label),
              String(g.findings.length),
              md(`${g.findings[0]?.location}: ${g.findings[0]?.detail}`),
            ]),
          )
        : "No findings.",
    );
    for (const d of v.declaredLosses ?? [])
      out.push(
        "",
        `Declared loss: chain ${md(d.chainId)} seq ${d.lostFrom}..${d.lostThrough}, declared by chain ${md(d.declaredBy)} at ${md(d.declaredAt)}: ${md(d.reason)}`,
      );
    for (const c of src.chains)
      out.push(
        ...chainMarkdown(
          c,
          v.chains.find((x) => x.chainId === c.chainId),
        ),
      );
  }
  return `${out.join("\n")}\n`;
}

type Summary = AuditReport["sources"][number]["verify"]["chains"][number] | undefined;

function chainMarkdown(c: ChainDetail, summary: Summary): string[] {
  const cp = c.checkpoint;
  const out = [
    "",
    `### Chain ${md(c.chainId)}`,
    "",
    `- covered: ${c.firstReceived ? `${md(c.firstReceived)} to ${md(c.lastReceived ?? "")} (receive time)` : "no records"}`,
    `- record lines: ${c.lines}${summary && summary.firstSeq !== null ? `, seq ${summary.firstSeq}..${summary.lastSeq}` : ""}`,
    `- signed batches: ${c.batches}${c.firstBatchAt ? `, ${md(c.firstBatchAt)} to ${md(c.lastBatchAt ?? "")}` : ""}`,
    `- keys: ${summary?.keys.length ? summary.keys.map(md).join(", ") : "none verified"}`,
    ...(summary?.notes ?? []).map((n) => `- note: ${md(n)}`),
    "",
    `#### Records per ${md(c.histogram.unit)}`,
    "",
    c.histogram.buckets.length
      ? table(
          [c.histogram.unit, "records"],
          c.histogram.buckets.filter((b) => b.count > 0).map((b) => [b.start, String(b.count)]),
        )
      : "No records.",
    "",
    "#### Key rotations",
    "",
    c.rotations.length
      ? table(
          ["manifest", "at", "after tree size", "from key", "to key"],
          c.rotations.map((r) => [
            String(r.index),
            md(r.at),
            String(r.treeSize),
            md(r.fromKey),
            md(r.toKey),
          ]),
        )
      : "None.",
    "",
    "#### Latest checkpoint",
    "",
  ];
  if (cp)
    out.push(
      `Tree size ${cp.size}, root \`${cp.rootHash}\`, signed by ${md(cp.signedBy.verifierKey)} (${cp.signedBy.fingerprint}); signatures: ${cp.signatures.map((s) => `${md(s.name)} ${s.status}`).join(", ")}.`,
      "",
      fence(cp.note),
    );
  else out.push("No checkpoint signed by a trusted key.");
  const rows = c.records.rows;
  out.push(
    "",
    "#### Records",
    "",
    `The newest ${rows.length} of ${c.records.matched} record lines. ${c.proofProblem ? md(c.proofProblem) : `Proofs are against the checkpoint of size ${cp?.size}.`}`,
    "",
    table(
      ["seq", "received", "time", "service", "attributes", "event", "body"],
      rows.map((r) => [
        String(r.seq),
        md(r.received),
        md(r.time ?? ""),
        md(r.service ?? ""),
        md(
          r.attributes
            .map(([k, v]) => `${k}=${v}`)
            .join(", ")
            .slice(0, 300),
        ),
        md(r.eventName ?? ""),
        md((r.body ?? "").slice(0, 300)),
      ]),
    ),
  );
  const proven = rows.filter((r) => r.proof);
  if (proven.length)
    out.push(
      "",
      "Inclusion proofs, one JSON object a line (seq, leaf hash, audit path, stored line):",
      "",
      fence(proven.map((r) => JSON.stringify({ ...r.proof, line: r.line })).join("\n"), "jsonl"),
    );
  return out;
}

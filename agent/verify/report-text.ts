import type { Finding, VerifyReport } from "./types.js";

/**
 * The report as `audit-agent verify` prints it for a person. A cut, a copied segment or a
 * forged tail gives one finding per record; printed one line each they bury everything
 * else. So findings of one chain and category are grouped into runs, each printed on one
 * line with its range and counts, e.g.
 *
 *   missing       seq 1,200–1,899 (700 records), batches 12–13: 3 findings
 *                 first: records-00000000000000001000.ndjson:201: records 1200..1899 are absent before seq 1900
 *
 * A run of one finding is printed as it always was: `category location: detail`. Every
 * finding is still in the report (`--json`), and `verbose` prints one line per finding.
 */

export interface ReportTextOptions {
  /** One line per finding, as found, instead of grouped runs. */
  verbose?: boolean;
}

/** The human summary printed by `audit-agent verify`. */
export function formatReport(report: VerifyReport, options: ReportTextOptions = {}): string {
  const out: string[] = [`source: ${report.source}`];
  if (report.chains.length === 0) out.push("no audit chains found");
  for (const c of report.chains) {
    out.push(
      `chain ${c.chainId}: ${c.records} records` +
        (c.firstSeq === null ? "" : `, seq ${c.firstSeq}..${c.lastSeq}`) +
        (c.firstReceived ? `, received ${c.firstReceived} .. ${c.lastReceived}` : ""),
      `  ${c.batches} signed batches (sealed through seq ${c.sealedThrough}), ${c.checkpoints} checkpoints` +
        (c.latestCheckpoint
          ? `, latest tree size ${c.latestCheckpoint.size} root ${c.latestCheckpoint.rootHash.slice(0, 16)}…${c.latestCheckpoint.cosigners.length ? ` (cosigned by ${c.latestCheckpoint.cosigners.join(", ")})` : ""}`
          : ""),
      `  keys: ${c.keys.length ? c.keys.join(", ") : "none"}`,
    );
    for (const n of c.notes) out.push(`  note: ${n}`);
  }
  for (const d of report.declaredLosses ?? [])
    out.push(
      `DECLARED LOSS: chain ${d.chainId} seq ${d.lostFrom}..${d.lostThrough}, declared by chain ${d.declaredBy} at ${d.declaredAt} ("${d.reason}"); ${d.predecessorInSource ? `missing from this source: ${d.missingFrom === null ? "none" : `seq ${d.missingFrom}..${d.lostThrough}`}` : `chain ${d.chainId} is not in this source`}`,
    );
  if (report.findings.length === 0) {
    out.push(report.ok ? "OK: no findings" : "FAILED: nothing to verify");
    return `${out.join("\n")}\n`;
  }
  out.push(`FAILED: ${report.findings.length} findings (${countsByCategory(report.findings)})`);
  out.push(...formatFindings(report.findings, options));
  return `${out.join("\n")}\n`;
}

/** `modified 2, missing 700`: the findings counted by category, in order of appearance. */
export function countsByCategory(findings: readonly Finding[]): string {
  const byCategory = new Map<string, number>();
  for (const f of findings) byCategory.set(f.category, (byCategory.get(f.category) ?? 0) + 1);
  return [...byCategory].map(([k, v]) => `${k} ${v}`).join(", ");
}

/** One finding as one line, the way every finding used to be printed. */
export function findingLine(f: Finding): string {
  return `  ${f.category.padEnd(13)} ${f.location}: ${f.detail}`;
}

/** A run of findings of one chain and category over a range, as reports group them. */
export interface FindingGroup {
  category: string;
  chainId: string;
  /** `seq 1,200–1,899 (700 records), batches 12–13`, or the one finding's location. */
  label: string;
  findings: Finding[];
}

/** The findings grouped into runs of one chain and category (see formatReport). */
export function findingGroups(findings: readonly Finding[]): FindingGroup[] {
  return byChainAndCategory(findings).flatMap((group) =>
    runsOf(group).map((run) => ({
      category: (run.findings[0] as Finding).category,
      chainId: (run.findings[0] as Finding).chainId,
      label: run.label,
      findings: run.findings,
    })),
  );
}

/** The lines for `findings`: grouped into runs, or one per finding when verbose. */
export function formatFindings(
  findings: readonly Finding[],
  options: ReportTextOptions = {},
): string[] {
  if (options.verbose) return findings.map(findingLine);
  const lines: string[] = [];
  let grouped = 0;
  for (const run of findingGroups(findings)) {
    if (run.findings.length === 1) {
      lines.push(findingLine(run.findings[0] as Finding));
      continue;
    }
    grouped++;
    const first = run.findings[0] as Finding;
    lines.push(
      `  ${first.category.padEnd(13)} ${run.label}: ${count(run.findings.length)} findings`,
      `  ${" ".repeat(13)} first: ${first.location}: ${first.detail}`,
    );
  }
  if (grouped > 0)
    lines.push(
      "  (findings of one kind over a range are grouped: --verbose lists each one, --json gives all of them)",
    );
  return lines;
}

/** The findings of each chain and category, in order of first appearance. */
function byChainAndCategory(findings: readonly Finding[]): Finding[][] {
  const groups = new Map<string, Finding[]>();
  for (const f of findings) {
    const key = `${f.chainId}\u0000${f.category}`;
    const list = groups.get(key);
    if (list) list.push(f);
    else groups.set(key, [f]);
  }
  return [...groups.values()];
}

interface Run {
  label: string;
  findings: Finding[];
}

/**
 * The runs of one group: findings whose seqs meet or overlap (with the batches they name),
 * then findings of manifests only whose indexes meet, then findings of consecutive lines of
 * one file; anything else is a run of its own.
 */
function runsOf(group: readonly Finding[]): Run[] {
  const bySeq = group.filter((f) => f.seq !== undefined);
  const byManifest = group.filter((f) => f.seq === undefined && f.manifest !== undefined);
  const byLine = group.filter((f) => f.seq === undefined && f.manifest === undefined);
  const seqRuns = spans(bySeq, (f) => [f.seq as number, f.lastSeq ?? (f.seq as number)]).map(
    ({ from, to, findings }) => {
      const batches = spans(
        findings.filter((f) => f.manifest !== undefined),
        (f) => [f.manifest as number, f.lastManifest ?? (f.manifest as number)],
      );
      const named = batches.length > 0 ? `, ${plural(batches, "batch", "batches")}` : "";
      return {
        label: `seq ${span(from, to)} (${count(to - from + 1)} ${to === from ? "record" : "records"})${named}`,
        findings,
      };
    },
  );
  const manifestRuns = spans(byManifest, (f) => [
    f.manifest as number,
    f.lastManifest ?? (f.manifest as number),
  ]).map(({ from, to, findings }) => ({
    label: `manifests ${span(from, to)} (${count(to - from + 1)} ${to === from ? "manifest" : "manifests"})`,
    findings,
  }));
  return [...seqRuns, ...manifestRuns, ...lineRuns(byLine)];
}

/** Ranges [from, to] of `findings` merged where they meet or overlap, in ascending order. */
function spans(
  findings: readonly Finding[],
  rangeOf: (f: Finding) => [number, number],
): { from: number; to: number; findings: Finding[] }[] {
  const sorted = findings
    .map((f) => ({ f, range: rangeOf(f) }))
    .sort((a, b) => a.range[0] - b.range[0] || b.range[1] - a.range[1]); // widest first
  const out: { from: number; to: number; findings: Finding[] }[] = [];
  for (const { f, range } of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && range[0] <= last.to + 1) {
      last.to = Math.max(last.to, range[1]);
      last.findings.push(f);
    } else out.push({ from: range[0], to: range[1], findings: [f] });
  }
  return out;
}

/** Findings at consecutive lines of one file (`name:line`), in order; others alone. */
function lineRuns(findings: readonly Finding[]): Run[] {
  const runs: { file: string | null; from: number; to: number; findings: Finding[] }[] = [];
  for (const f of findings) {
    const m = /^(.*):(\d+)$/.exec(f.location);
    const file = m ? (m[1] as string) : null;
    const line = m ? Number(m[2]) : 0;
    const last = runs[runs.length - 1];
    if (file !== null && last?.file === file && (line === last.to || line === last.to + 1)) {
      last.to = line;
      last.findings.push(f);
    } else runs.push({ file, from: line, to: line, findings: [f] });
  }
  return runs.map(({ file, from, to, findings }) => ({
    label:
      file === null
        ? (findings[0] as Finding).location
        : `${file}:${span(from, to)} (${count(to - from + 1)} ${to === from ? "line" : "lines"})`,
    findings,
  }));
}

/** `batch 12`, `batches 12–13`, `batches 3, 7–9`. */
function plural(ranges: readonly { from: number; to: number }[], one: string, many: string) {
  const single = ranges.length === 1 && ranges[0]?.from === ranges[0]?.to;
  return `${single ? one : many} ${ranges.map((r) => span(r.from, r.to)).join(", ")}`;
}

/** `1,200` or `1,200–1,899`. */
function span(from: number, to: number): string {
  return from === to ? count(from) : `${count(from)}–${count(to)}`;
}

/** A number with thousands separated by commas, whatever the locale. */
function count(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

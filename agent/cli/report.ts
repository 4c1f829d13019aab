import { readFileSync, writeFileSync } from "node:fs";
import { AgentError } from "../common/errors.js";
import { sourceFromSpec } from "../config/sources.js";
import { readTrustedKeys } from "../integrity/key-files.js";
import { checkEvidence, searchEvidence } from "../verify/report/evidence.js";
import { buildReport } from "../verify/report/model.js";
import { renderHtml } from "../verify/report/render-html.js";
import { renderMarkdown } from "../verify/report/render-md.js";
import type { WhereClause } from "../verify/report/records.js";
import { collectOnWorker } from "./verify.js";

/**
 * `audit-agent report`, `search` and `check-evidence` (docs/report.md). The verdict is
 * `audit-agent verify`'s, run the same way (on its worker thread); the report adds what
 * each chain holds. Exit status as verify's: 0 clean, 1 findings, 2 usage, 3 unreadable.
 */

export interface ReportOptions {
  source?: string[];
  trust?: string[];
  checkpoint?: string[];
  witness?: string[];
  quorum?: number;
  out?: string;
  format?: string;
  limit?: number;
}

const FORMATS = ["html", "md", "json"] as const;
type Format = (typeof FORMATS)[number];

function formatOf(opts: ReportOptions): Format {
  const f = opts.format ?? /\.(html|md|json)$/i.exec(opts.out ?? "")?.[1]?.toLowerCase() ?? "html";
  if (!FORMATS.includes(f as Format))
    throw new AgentError("REPORT_USAGE", `--format ${f}: use html, md or json`);
  return f as Format;
}

/** --source and --trust, both required here (no --config: name the backend and key). */
function required(opts: { source?: string[]; trust?: string[] }, command: string) {
  if (!opts.source?.length || !opts.trust?.length)
    throw new AgentError(
      "REPORT_USAGE",
      `audit-agent ${command} needs what to read and the key(s) to trust: --source SPEC --trust KEYFILE`,
    );
  return { sources: opts.source, trust: opts.trust };
}

export async function reportCommand(opts: ReportOptions): Promise<number> {
  const { sources: specs, trust } = required(opts, "report");
  const format = formatOf(opts);
  const limit = opts.limit ?? 500;
  if (limit < 1) throw new AgentError("REPORT_USAGE", "--limit: at least 1 record");
  const trusted = readTrustedKeys(trust);
  const verified = await collectOnWorker(
    {
      source: specs,
      trust,
      checkpoint: opts.checkpoint,
      witness: opts.witness,
      quorum: opts.quorum,
      quiet: true,
    },
    null,
  );
  const sources = await Promise.all(specs.map(sourceFromSpec));
  const report = await buildReport(sources, verified, trusted, limit);
  const text =
    format === "html"
      ? renderHtml(report)
      : format === "md"
        ? renderMarkdown(report)
        : `${JSON.stringify(report, null, 2)}\n`;
  if (opts.out) {
    writeFileSync(opts.out, text);
    process.stderr.write(
      `${opts.out}: ${report.ok ? "PASS" : `FAIL (${report.summary.findings} findings)`}, ${report.summary.chains} chain(s), ${report.summary.records} record line(s)\n`,
    );
  } else process.stdout.write(text);
  return report.ok ? 0 : 1;
}

export interface SearchOptions {
  source?: string[];
  trust?: string[];
  where?: string[];
  from?: string;
  to?: string;
  limit?: number;
  out?: string;
}

/** `KEY=VALUE` (the first '=' splits; VALUE may hold more). */
export function parseWhere(spec: string): WhereClause {
  const i = spec.indexOf("=");
  if (i <= 0)
    throw new AgentError(
      "SEARCH_USAGE",
      `--where "${spec}": use KEY=VALUE, e.g. --where enduser.id=42`,
    );
  return { key: spec.slice(0, i), value: spec.slice(i + 1) };
}

function isoTime(option: string, value: string | undefined): string | null {
  if (value === undefined) return null;
  const ms = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms))
    throw new AgentError(
      "SEARCH_USAGE",
      `${option} "${value}": give an ISO 8601 time, e.g. 2026-01-01T12:00:00Z`,
    );
  return new Date(ms).toISOString();
}

export async function searchCommand(opts: SearchOptions): Promise<number> {
  const { sources: specs, trust } = required(opts, "search");
  if (!opts.where?.length && opts.from === undefined && opts.to === undefined)
    throw new AgentError(
      "SEARCH_USAGE",
      "say what to find: --where KEY=VALUE (repeatable) and/or --from/--to TIME",
    );
  const query = {
    where: (opts.where ?? []).map(parseWhere),
    from: isoTime("--from", opts.from),
    to: isoTime("--to", opts.to),
  };
  const limit = opts.limit ?? 1000;
  if (limit < 1) throw new AgentError("SEARCH_USAGE", "--limit: at least 1 record");
  const trusted = readTrustedKeys(trust);
  if (specs.length !== 1)
    throw new AgentError(
      "SEARCH_USAGE",
      "search reads one --source (a bundle is about one backend)",
    );
  const bundle = await searchEvidence(
    await sourceFromSpec(specs[0] as string),
    trusted,
    query,
    limit,
  );
  const text = `${JSON.stringify(bundle, null, 2)}\n`;
  if (opts.out) writeFileSync(opts.out, text);
  else process.stdout.write(text);
  const matched = bundle.chains.reduce((n, c) => n + c.matched, 0);
  const included = bundle.chains.reduce((n, c) => n + c.records.length, 0);
  process.stderr.write(
    `${matched} record(s) matched in ${bundle.chains.length} chain(s)${included < matched ? `; the bundle holds the first ${limit} of each chain (--limit)` : ""}\n`,
  );
  return 0;
}

/** `audit-agent check-evidence FILE --trust KEY`: 0 valid, 1 invalid (what failed on stderr), 2 usage. */
export function checkEvidenceCommand(
  file: string,
  opts: { trust?: string[]; json?: boolean },
): number {
  if (!opts.trust?.length)
    throw new AgentError("EVIDENCE_USAGE", "give the public key(s) to trust: --trust KEYFILE");
  const trusted = readTrustedKeys(opts.trust);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new AgentError("EVIDENCE_USAGE", `cannot read ${file}: ${(err as Error).message}`);
  }
  const result = checkEvidence(text, trusted);
  if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else if (result.ok)
    process.stdout.write(
      `${file}: VALID: ${result.records} record(s) of ${result.chains} chain(s) proven against checkpoints signed by ${result.signers.map((s) => `${s.verifierKey} (${s.fingerprint})`).join(", ")}\n`,
    );
  else
    process.stdout.write(
      `${file}: INVALID: ${result.problems.length} problem(s)\n${result.problems.map((p) => `  ${p}\n`).join("")}`,
    );
  return result.ok ? 0 : 1;
}

import type { PublicKey } from "../../integrity/signing.js";
import type { AuditSource, VerifyReport } from "../types.js";
import { type ChainDetail, describeChain } from "./collect.js";

/**
 * The audit report (`audit-agent report`): the verifier's verdict on each source, and what
 * each chain holds. The JSON format is this object; the HTML and Markdown forms show the
 * same facts (docs/report.md).
 */
export interface AuditReport {
  format: "otel-audit-agent/report/v1";
  generatedAt: string;
  /** Every source verified clean. */
  ok: boolean;
  summary: {
    sources: number;
    chains: number;
    /** Record lines stored, copies included. */
    records: number;
    findings: number;
    /** Findings by category, in order of first appearance. */
    byCategory: Record<string, number>;
  };
  /** The most records shown per chain: the newest. */
  limit: number;
  sources: Array<{ source: string; verify: VerifyReport; chains: ChainDetail[] }>;
}

/** The report on `sources`, given the verifier's report on each (in the same order). */
export async function buildReport(
  sources: readonly AuditSource[],
  verified: readonly VerifyReport[],
  trusted: readonly PublicKey[],
  limit: number,
  now = new Date(),
): Promise<AuditReport> {
  const out: AuditReport["sources"] = [];
  for (const [i, source] of sources.entries()) {
    const chains: ChainDetail[] = [];
    for await (const chain of source.chains())
      chains.push(await describeChain(chain, { trusted, limit }));
    out.push({ source: source.description, verify: verified[i] as VerifyReport, chains });
  }
  const byCategory: Record<string, number> = {};
  for (const f of out.flatMap((s) => s.verify.findings))
    byCategory[f.category] = (byCategory[f.category] ?? 0) + 1;
  return {
    format: "otel-audit-agent/report/v1",
    generatedAt: now.toISOString(),
    ok: out.every((s) => s.verify.ok),
    summary: {
      sources: out.length,
      chains: out.reduce((n, s) => n + s.chains.length, 0),
      records: out.reduce((n, s) => n + s.chains.reduce((m, c) => m + c.lines, 0), 0),
      findings: out.reduce((n, s) => n + s.verify.findings.length, 0),
      byCategory,
    },
    limit,
    sources: out,
  };
}

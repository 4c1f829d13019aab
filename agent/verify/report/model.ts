import type { PublicKey } from "../../integrity/signing.js";
import type { AuditSource, Finding, VerifyReport } from "../types.js";
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
    const verify = verified[i] as VerifyReport;
    for await (const chain of source.chains()) {
      const origin = verify.chains.find((c) => c.chainId === chain.chainId)?.latestCheckpoint
        ?.origin;
      chains.push(await describeChain(chain, { trusted, limit, origin }));
    }
    const changed = changedSinceVerified(source.description, verify, chains);
    out.push({
      source: source.description,
      verify: changed.length
        ? { ...verify, ok: false, findings: [...verify.findings, ...changed] }
        : verify,
      chains,
    });
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

/**
 * What shows that the second read of a source (to describe it) did not return what the
 * first (verify's) did: chains verify did not see or that are gone, or, on a source verify
 * found clean, records that no longer reproduce its signed checkpoint. A backend can serve
 * each read differently (or be written in between); the report must then not be a PASS
 * above records the verifier never saw.
 */
function changedSinceVerified(
  source: string,
  verify: VerifyReport,
  chains: readonly ChainDetail[],
): Finding[] {
  const out: Finding[] = [];
  const finding = (chainId: string, detail: string) =>
    out.push({
      category: "modified",
      chainId,
      location: source,
      detail: `${detail}: the source changed between the verification and the report's own read of it (or serves reads differently); verify it again`,
    });
  const described = new Set(chains.map((c) => c.chainId));
  for (const v of verify.chains)
    if (!described.has(v.chainId)) finding(v.chainId, "verified, but gone when read again");
  for (const c of chains) {
    const v = verify.chains.find((x) => x.chainId === c.chainId);
    if (!v) finding(c.chainId, "not the one verified: the verifier did not see this chain");
    else if (verify.ok && v.latestCheckpoint && !c.checkpoint)
      finding(c.chainId, "its signed checkpoints are gone when read again");
    else if (verify.ok && c.checkpoint && c.proofProblem)
      finding(c.chainId, `verified, but read again ${c.proofProblem.replace(/ \(see .*$/, "")}`);
  }
  return out;
}

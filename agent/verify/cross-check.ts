import { checkEnvelope } from "../integrity/chain-check.js";
import { readChains } from "../exporters/source.js";
import type { AuditSource, Finding } from "./types.js";

/**
 * Compares two backends record by record: every record of every chain must be present,
 * byte-identical, in both. Each backend is verified on its own first; this catches a
 * backend that is internally consistent but differs from its twin (e.g. one that lost a
 * batch that no later checkpoint there covers).
 */
export async function crossCheck(a: AuditSource, b: AuditSource): Promise<Finding[]> {
  const index = async (s: AuditSource) => {
    const bySeq = new Map<string, { text: string; location: string }>();
    for (const chain of await readChains(s)) {
      for (const r of chain.records) {
        const env = checkEnvelope(r.text);
        if (typeof env === "string") continue; // the per-source verification reports it
        const key = `${chain.chainId}/${env.seq}`;
        if (!bySeq.has(key)) bySeq.set(key, r);
      }
    }
    return bySeq;
  };
  const [left, right] = await Promise.all([index(a), index(b)]);
  const findings: Finding[] = [];
  const compare = (from: typeof left, to: typeof left, fromName: string, toName: string) => {
    for (const [key, rec] of from) {
      const [chainId, seq] = key.split("/") as [string, string];
      const other = to.get(key);
      if (!other) {
        findings.push({
          category: "missing",
          chainId,
          seq: Number(seq),
          location: toName,
          detail: `seq ${seq} is in ${fromName} (${rec.location}) but not in ${toName}`,
        });
      } else if (other.text !== rec.text && fromName < toName) {
        findings.push({
          category: "modified",
          chainId,
          seq: Number(seq),
          location: `${rec.location} vs ${other.location}`,
          detail: `seq ${seq} differs between ${fromName} and ${toName}`,
        });
      }
    }
  };
  compare(left, right, a.description, b.description);
  compare(right, left, b.description, a.description);
  return findings;
}

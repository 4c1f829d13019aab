import { parseCheckpointText, parseNote, verifyNote } from "../integrity/note.js";
import type { PublicKey } from "../integrity/signing.js";
import type { VerifierState } from "./state.js";
import { type StreamVerifyOptions, verifyChainStream } from "./stream-chain.js";
import type { AuditSource, Finding, VerifyReport } from "./types.js";

/** Verifies every chain a source holds. */
export async function verifySource(
  source: AuditSource,
  trusted: readonly PublicKey[],
  knownCheckpoints: readonly { note: string; location: string }[] = [],
  streaming: Pick<StreamVerifyOptions, "window" | "onRecords"> & {
    /** Incremental: what earlier clean runs established; advanced for each clean chain. */
    state?: VerifierState;
  } = {},
): Promise<VerifyReport> {
  const { state, ...stream } = streaming;
  const findings: Finding[] = [];
  const summaries = [];
  const used = new Set<number>();
  const seen = new Set<string>();
  // Chain by chain as the source streams them: memory is bounded by a window of records.
  for await (const chain of source.chains()) {
    const {
      summary,
      findings: f,
      usedCheckpoints,
      state: established,
    } = await verifyChainStream(chain, {
      trusted,
      knownCheckpoints,
      ...stream,
      resume: state?.chains[chain.chainId],
    });
    // A chain with findings keeps what earlier runs established: nothing new is vouched for.
    if (state && established) state.chains[chain.chainId] = established;
    summaries.push(summary);
    findings.push(...f);
    for (const i of usedCheckpoints) used.add(i);
    seen.add(chain.chainId);
  }
  for (const [chainId, earlier] of Object.entries(state?.chains ?? {})) {
    if (seen.has(chainId)) continue;
    findings.push({
      category: "truncated",
      chainId,
      location: source.description,
      detail: `the state file vouches for ${earlier.treeSize} records of this chain (verified ${earlier.verifiedAt}), but the source holds no such chain: it was removed`,
    });
  }
  // A trusted checkpoint for a chain the source no longer holds at all: the whole chain went.
  for (const [i, k] of knownCheckpoints.entries()) {
    if (used.has(i)) continue;
    try {
      const parsed = parseNote(k.note);
      if (verifyNote(parsed, trusted).valid.length === 0) continue;
      const cp = parseCheckpointText(parsed.text);
      findings.push({
        category: "truncated",
        chainId: cp.origin.split("/").pop() ?? cp.origin,
        location: k.location,
        detail: `a checkpoint for ${cp.size} records of ${cp.origin} was seen, but the source holds no such chain: it was removed`,
      });
    } catch {
      // Not a checkpoint: nothing it could prove.
    }
  }
  return {
    source: source.description,
    chains: summaries,
    findings,
    ok: findings.length === 0 && summaries.length > 0,
  };
}

/** The human summary printed by `audit-agent verify`. */
export function formatReport(report: VerifyReport): string {
  const out: string[] = [`source: ${report.source}`];
  if (report.chains.length === 0) out.push("no audit chains found");
  for (const c of report.chains) {
    out.push(
      `chain ${c.chainId}: ${c.records} records` +
        (c.firstSeq === null ? "" : `, seq ${c.firstSeq}..${c.lastSeq}`) +
        (c.firstReceived ? `, received ${c.firstReceived} .. ${c.lastReceived}` : ""),
      `  ${c.batches} signed batches (sealed through seq ${c.sealedThrough}), ${c.checkpoints} checkpoints` +
        (c.latestCheckpoint
          ? `, latest tree size ${c.latestCheckpoint.size} root ${c.latestCheckpoint.rootHash.slice(0, 16)}…`
          : ""),
      `  keys: ${c.keys.length ? c.keys.join(", ") : "none"}`,
    );
    for (const n of c.notes) out.push(`  note: ${n}`);
  }
  if (report.findings.length === 0) {
    out.push(report.ok ? "OK: no findings" : "FAILED: nothing to verify");
  } else {
    const byCategory = new Map<string, number>();
    for (const f of report.findings)
      byCategory.set(f.category, (byCategory.get(f.category) ?? 0) + 1);
    out.push(
      `FAILED: ${report.findings.length} findings (${[...byCategory].map(([k, v]) => `${k} ${v}`).join(", ")})`,
    );
    for (const f of report.findings)
      out.push(`  ${f.category.padEnd(13)} ${f.location}: ${f.detail}`);
  }
  return `${out.join("\n")}\n`;
}

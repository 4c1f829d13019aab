import { parseCheckpointText, parseNote, verifyNote } from "../integrity/note.js";
import type { PublicKey } from "../integrity/signing.js";
import type { VerifierState } from "./state.js";
import { type StreamVerifyOptions, verifyChainStream } from "./stream-chain.js";
import type { AuditSource, Finding, VerifyReport } from "./types.js";
import { countingManifests, emptyChainFinding, noChainFinding } from "./verify-presence.js";

/** Verifies every chain a source holds. */
export async function verifySource(
  source: AuditSource,
  trusted: readonly PublicKey[],
  knownCheckpoints: readonly { note: string; location: string }[] = [],
  streaming: Pick<
    StreamVerifyOptions,
    "window" | "onRecords" | "spotCheck" | "lineCheckers" | "maxFindings"
  > & {
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
  for await (const stored of source.chains()) {
    const chain = countingManifests(stored);
    const {
      summary,
      findings: f,
      usedCheckpoints,
      state: established,
    } = await verifyChainStream(chain.reader, {
      trusted,
      knownCheckpoints,
      ...stream,
      resume: state?.chains[stored.chainId],
    });
    // A chain with findings keeps what earlier runs established: nothing new is vouched for.
    if (state && established) state.chains[stored.chainId] = established;
    summaries.push(summary);
    findings.push(...f);
    if (summary.records === 0 && chain.manifests() === 0)
      findings.push(emptyChainFinding(source.description, stored.chainId));
    for (const i of usedCheckpoints) used.add(i);
    seen.add(stored.chainId);
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
  if (summaries.length === 0 && findings.length === 0)
    findings.push(noChainFinding(source.description));
  return {
    source: source.description,
    chains: summaries,
    findings,
    ok: findings.length === 0 && summaries.length > 0,
  };
}

/** The human summary printed by `audit-agent verify`: see report-text.ts. */
export { formatReport } from "./report-text.js";

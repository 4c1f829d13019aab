import { parseCheckpointText, parseNote, verifyNote } from "../integrity/note.js";
import type { PublicKey } from "../integrity/signing.js";
import type { VerifierState } from "./state.js";
import { type StreamVerifyOptions, verifyChainStream } from "./stream-chain.js";
import type {
  AuditSource,
  ChainSummary,
  DeclaredLossReport,
  Finding,
  VerifyReport,
} from "./types.js";
import type { DeclaredLoss } from "./verify-manifests.js";
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
  const summaries: ChainSummary[] = [];
  const used = new Set<number>();
  const seen = new Set<string>();
  const declared: DeclaredLoss[] = [];
  // Chain by chain as the source streams them: memory is bounded by a window of records.
  for await (const stored of source.chains()) {
    const chain = countingManifests(stored);
    const {
      summary,
      findings: f,
      usedCheckpoints,
      state: established,
      declared: d,
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
    declared.push(...d);
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
  const declaredLosses = declared.map((d) => judgeDeclaredLoss(d, summaries));
  if (summaries.length === 0 && findings.length === 0)
    findings.push(noChainFinding(source.description));
  return {
    source: source.description,
    chains: summaries,
    findings,
    ...(declaredLosses.length > 0 && { declaredLosses }),
    ok: findings.length === 0 && summaries.length > 0,
  };
}

/**
 * A loss a chain-start entry declares, against what the source holds of the predecessor:
 * the declared seqs the source still has are not missing. Reported on the predecessor's
 * summary too, so that a reader of that chain sees that its end is not its real end.
 */
function judgeDeclaredLoss(d: DeclaredLoss, summaries: ChainSummary[]): DeclaredLossReport {
  const predecessor = summaries.find((s) => s.chainId === d.predecessor);
  const held = predecessor?.lastSeq ?? -1;
  const missingFrom = Math.max(d.lostFrom, held + 1);
  const missing = missingFrom <= d.lostThrough ? `seq ${missingFrom}..${d.lostThrough}` : "none";
  predecessor?.notes.push(
    `chain ${d.chainId} declares seq ${d.lostFrom}..${d.lostThrough} of this chain acknowledged but lost (${d.declaredAt}: "${d.reason}"); this source holds through seq ${held}, so missing: ${missing}`,
  );
  return {
    chainId: d.predecessor,
    declaredBy: d.chainId,
    lostFrom: d.lostFrom,
    lostThrough: d.lostThrough,
    missingFrom: missingFrom <= d.lostThrough ? missingFrom : null,
    reason: d.reason,
    declaredAt: d.declaredAt,
    predecessorInSource: predecessor !== undefined,
  };
}

/** The human summary printed by `audit-agent verify`: see report-text.ts. */
export { formatReport } from "./report-text.js";

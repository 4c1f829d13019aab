import { parseCheckpointText, parseNote, verifyNote } from "../integrity/note.js";
import type { PublicKey } from "../integrity/signing.js";
import type { ChainReader } from "../exporters/source.js";
import type { CosignerKey } from "../integrity/cosignature.js";
import type { ChainState, VerifierState } from "./state.js";
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

/**
 * What `verify --witness` requires: the latest checkpoint of each chain cosigned by `quorum`
 * of `keys`, and, with `fetch` (`--witness-url`), the source checked against the newest
 * checkpoint the witnesses cosigned for the chain's origin.
 */
export interface WitnessRequirement {
  keys: readonly CosignerKey[];
  quorum: number;
  fetch?: (origin: string) => Promise<Array<{ note: string; location: string }>>;
}

type StreamOptions = Pick<
  StreamVerifyOptions,
  "window" | "onRecords" | "spotCheck" | "lineCheckers" | "maxFindings"
>;

/** One chain's outcome. */
interface ChainOutcome {
  summary: ChainSummary;
  findings: Finding[];
  established: ChainState | null;
  declared: DeclaredLoss[];
}

/** Verifies every chain a source holds. */
export async function verifySource(
  source: AuditSource,
  trusted: readonly PublicKey[],
  knownCheckpoints: readonly { note: string; location: string }[] = [],
  streaming: StreamOptions & {
    /** Incremental: what earlier clean runs established; advanced for each clean chain. */
    state?: VerifierState;
    witnesses?: WitnessRequirement;
  } = {},
): Promise<VerifyReport> {
  const { state, witnesses, ...stream } = streaming;
  const outcomes = new Map<string, ChainOutcome>();
  const used = new Set<number>();
  const verifyOne = async (
    stored: ChainReader,
    known: readonly { note: string; location: string }[],
  ): Promise<ChainOutcome> => {
    const chain = countingManifests(stored);
    const r = await verifyChainStream(chain.reader, {
      trusted,
      knownCheckpoints: known,
      witnesses: witnesses?.keys,
      ...stream,
      resume: state?.chains[stored.chainId],
    });
    for (const i of r.usedCheckpoints) if (i < knownCheckpoints.length) used.add(i);
    const findings = [...r.findings];
    if (r.summary.records === 0 && chain.manifests() === 0)
      findings.push(emptyChainFinding(source.description, stored.chainId));
    return { summary: r.summary, findings, established: r.state, declared: r.declared };
  };
  // Chain by chain as the source streams them: memory is bounded by a window of records.
  for await (const stored of source.chains())
    outcomes.set(stored.chainId, await verifyOne(stored, knownCheckpoints));
  // Against what the witnesses cosigned: chains they know a newer or another tree of are
  // read again with those checkpoints (a removed tail is `truncated`, a fork `modified`).
  const fetched = witnesses?.fetch ? await witnessedCheckpoints(outcomes, witnesses.fetch) : null;
  if (fetched && fetched.size > 0)
    for await (const stored of source.chains()) {
      const extra = fetched.get(stored.chainId);
      if (extra)
        outcomes.set(stored.chainId, await verifyOne(stored, [...knownCheckpoints, ...extra]));
    }
  const findings: Finding[] = [];
  const summaries: ChainSummary[] = [];
  const declared: DeclaredLoss[] = [];
  const seen = new Set<string>();
  for (const [chainId, o] of outcomes) {
    const quorum = witnesses ? unwitnessed(o.summary, witnesses, source.description) : [];
    o.findings.push(...quorum);
    // A chain with findings keeps what earlier runs established: nothing new is vouched for.
    if (state && o.established && quorum.length === 0) state.chains[chainId] = o.established;
    summaries.push(o.summary);
    findings.push(...o.findings);
    declared.push(...o.declared);
    seen.add(chainId);
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

/** The chain's latest checkpoint lacks a quorum of witness cosignatures: a finding. */
function unwitnessed(
  summary: ChainSummary,
  witnesses: WitnessRequirement,
  location: string,
): Finding[] {
  const latest = summary.latestCheckpoint;
  const have = latest?.cosigners ?? [];
  if (have.length >= witnesses.quorum) return [];
  return [
    {
      category: "unwitnessed",
      chainId: summary.chainId,
      location,
      detail: latest
        ? `the latest checkpoint (${latest.size} records) carries ${have.length} valid witness cosignature(s)${have.length ? ` (${have.join(", ")})` : ""}, fewer than the quorum of ${witnesses.quorum}: nothing off the agent's host vouches for this tail`
        : `no checkpoint verifies, so no witness vouches for this chain`,
    },
  ];
}

/**
 * For each chain, the checkpoints the witnesses cosigned for its origin that say more than
 * the source's latest (a larger tree, or another root): those the chain is read again with.
 */
async function witnessedCheckpoints(
  outcomes: ReadonlyMap<string, ChainOutcome>,
  fetch: NonNullable<WitnessRequirement["fetch"]>,
): Promise<Map<string, Array<{ note: string; location: string }>>> {
  const more = new Map<string, Array<{ note: string; location: string }>>();
  for (const [chainId, o] of outcomes) {
    const latest = o.summary.latestCheckpoint;
    const notes = await fetch(latest?.origin ?? `otel-audit-agent/${chainId}`);
    const news = notes.filter((k) => {
      try {
        const cp = parseCheckpointText(parseNote(k.note).text);
        return (
          !latest || cp.size !== latest.size || cp.rootHash.toString("hex") !== latest.rootHash
        );
      } catch {
        return true; // a malformed note is judged (and reported) by the checkpoint step
      }
    });
    if (news.length > 0) more.set(chainId, news);
  }
  return more;
}

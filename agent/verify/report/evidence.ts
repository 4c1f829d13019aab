import { z } from "../../common/zod.js";
import { jsonStructureProblem } from "../../integrity/json-structure.js";
import { AgentError } from "../../common/errors.js";
import { printable } from "../../common/printable.js";
import { leafHash } from "../../integrity/format.js";
import { verifyInclusion } from "../../integrity/merkle.js";
import type { PublicKey } from "../../integrity/signing.js";
import type { AuditSource } from "../types.js";
import { type KeyRef, describeChain, trustedCheckpoint } from "./collect.js";
import { matches, viewRecord, type WhereClause } from "./records.js";

/**
 * Evidence bundles (docs/report.md): records a search matched, each with its RFC 6962
 * inclusion proof in the tree of its chain's latest signed checkpoint, and that checkpoint
 * as signed. Anyone holding the agent's public key can check a bundle offline
 * (`audit-agent check-evidence`): that each record is, byte for byte, the one the agent
 * committed to at that seq. The query is stated so that the checker can also tell that
 * each record meets it.
 */
export const EVIDENCE_FORMAT = "otel-audit-agent/evidence/v1";

export interface EvidenceQuery {
  where: WhereClause[];
  /** Receive times, ISO 8601, inclusive; null: unbounded. */
  from: string | null;
  to: string | null;
}

export interface EvidenceChain {
  chainId: string;
  /** The C2SP signed checkpoint note the proofs are against, as stored. */
  checkpoint: string;
  treeSize: number;
  rootHash: string;
  /** The key whose signature over the checkpoint verified, and its fingerprint. */
  signedBy: KeyRef;
  /** Records that matched; `records` holds the first `limit` of them. */
  matched: number;
  records: Array<{ seq: number; line: string; leafHash: string; proof: string[] }>;
}

export interface EvidenceBundle {
  format: typeof EVIDENCE_FORMAT;
  createdAt: string;
  source: string;
  query: EvidenceQuery;
  chains: EvidenceChain[];
}

const nanos = (iso: string | null) =>
  iso === null ? undefined : BigInt(Date.parse(iso)) * 1_000_000n;

/** Searches `source`; a chain with a match that cannot be proven is an error (SEARCH_UNPROVABLE). */
export async function searchEvidence(
  source: AuditSource,
  trusted: readonly PublicKey[],
  query: EvidenceQuery,
  limit: number,
  now = new Date(),
): Promise<EvidenceBundle> {
  const chains: EvidenceChain[] = [];
  for await (const chain of source.chains()) {
    const d = await describeChain(chain, {
      trusted,
      limit,
      where: query.where,
      from: nanos(query.from),
      to: nanos(query.to),
    });
    if (d.records.matched === 0) continue;
    const unproven = d.records.rows.find((r) => r.proof === null);
    if (!d.checkpoint || d.proofProblem || unproven)
      throw new AgentError(
        "SEARCH_UNPROVABLE",
        `chain ${d.chainId} of ${source.description}: ${d.proofProblem ?? `record seq ${unproven?.seq} is not covered by the latest checkpoint (size ${d.checkpoint?.size})`}. Run audit-agent verify (or report) on the source to see what is wrong.`,
      );
    chains.push({
      chainId: d.chainId,
      checkpoint: d.checkpoint.note,
      treeSize: d.checkpoint.size,
      rootHash: d.checkpoint.rootHash,
      signedBy: d.checkpoint.signedBy,
      matched: d.records.matched,
      records: d.records.rows.map((r) => ({
        seq: r.seq,
        line: r.line,
        leafHash: r.proof?.leafHash as string,
        proof: r.proof?.proof as string[],
      })),
    });
  }
  return {
    format: EVIDENCE_FORMAT,
    createdAt: now.toISOString(),
    source: source.description,
    query,
    chains,
  };
}

export interface EvidenceCheck {
  ok: boolean;
  /** What failed, one sentence each. */
  problems: string[];
  chains: number;
  records: number;
  /** The keys the checkpoints are signed by (verifier key and fingerprint). */
  signers: KeyRef[];
}

const HEX32 = /^[0-9a-f]{64}$/;

/** A time as search writes it (toISOString), or null: nothing else reads the same to all. */
const isoTime = z
  .string()
  .refine((s) => !Number.isNaN(Date.parse(s)) && new Date(Date.parse(s)).toISOString() === s, {
    message: "not a time as search writes it (e.g. 2026-01-01T12:00:00.000Z)",
  })
  .nullable();

/**
 * The query exactly as search writes it. Anything else is refused rather than read
 * leniently: a `where` that is not a list of {key, value} strings, or a time that does not
 * parse, would otherwise be skipped by the check while a person (or another JSON tool)
 * reads it as a condition the records meet.
 */
const querySchema = z
  .object({
    where: z.array(z.object({ key: z.string().min(1), value: z.string() }).strict()),
    from: isoTime,
    to: isoTime,
  })
  .strict();

/**
 * Checks an evidence bundle's text against trusted keys, offline. The problems quote the
 * bundle's text, printed as it is by check-evidence: its control characters are escaped.
 */
export function checkEvidence(text: string, trusted: readonly PublicKey[]): EvidenceCheck {
  const result = checkBundle(text, trusted);
  result.problems = result.problems.map((p) => printable(p));
  return result;
}

function checkBundle(text: string, trusted: readonly PublicKey[]): EvidenceCheck {
  const result: EvidenceCheck = { ok: false, problems: [], chains: 0, records: 0, signers: [] };
  // A member given twice reads as its last value here and as its first to some people and
  // tools: the bundle would say two things at once, so it is refused before it is read.
  const structure = jsonStructureProblem(text);
  if (structure !== null) {
    result.problems.push(`not an evidence bundle as search writes it: ${structure}`);
    return result;
  }
  let bundle: EvidenceBundle;
  try {
    bundle = JSON.parse(text) as EvidenceBundle;
  } catch (err) {
    result.problems.push(`not JSON: ${(err as Error).message}`);
    return result;
  }
  if (bundle?.format !== EVIDENCE_FORMAT || !Array.isArray(bundle.chains)) {
    result.problems.push(
      `not an evidence bundle: "format" is not "${EVIDENCE_FORMAT}" or "chains" is not a list`,
    );
    return result;
  }
  const query = querySchema.safeParse(bundle.query);
  if (!query.success) {
    const issue = query.error.issues[0];
    result.problems.push(
      `the bundle's query is not one check-evidence can apply (query${issue?.path.map((k) => `.${String(k)}`).join("") ?? ""}: ${issue?.message}): whether the records meet it cannot be checked`,
    );
    return result;
  }
  const seen = new Set<unknown>();
  for (const chain of bundle.chains) {
    // The same chain twice would count its records twice in the verdict.
    if (seen.has(chain?.chainId))
      result.problems.push(`chain ${String(chain?.chainId)}: in the bundle more than once`);
    seen.add(chain?.chainId);
    checkChain(chain, query.data, trusted, result);
  }
  if (result.records === 0 && result.problems.length === 0)
    result.problems.push("the bundle holds no records: it proves nothing");
  result.ok = result.problems.length === 0;
  return result;
}

function checkChain(
  chain: EvidenceChain,
  query: EvidenceQuery,
  trusted: readonly PublicKey[],
  result: EvidenceCheck,
): void {
  const problem = (p: string) => result.problems.push(`chain ${String(chain?.chainId)}: ${p}`);
  result.chains++;
  const cp =
    typeof chain?.checkpoint === "string" && typeof chain.chainId === "string"
      ? trustedCheckpoint(chain.checkpoint, chain.chainId, trusted)
      : null;
  if (!cp) {
    problem(
      "its checkpoint is not a checkpoint of this chain signed by a trusted key (wrong key, or the checkpoint was altered after signing)",
    );
    return;
  }
  if (!result.signers.some((s) => s.fingerprint === cp.signedBy.fingerprint))
    result.signers.push(cp.signedBy);
  if (chain.signedBy?.fingerprint !== cp.signedBy.fingerprint)
    problem(
      `the bundle names the signer ${String(chain.signedBy?.fingerprint)}, but the checkpoint verifies with ${cp.signedBy.fingerprint}`,
    );
  if (chain.treeSize !== cp.size || chain.rootHash !== cp.rootHash)
    problem(
      `treeSize/rootHash ${String(chain.treeSize)}/${String(chain.rootHash)} are not the signed checkpoint's ${cp.size}/${cp.rootHash}`,
    );
  const root = Buffer.from(cp.rootHash, "hex");
  const records = Array.isArray(chain.records) ? chain.records : [];
  // `matched` counts every match and `records` holds the first of them (docs/report.md).
  if (!Number.isSafeInteger(chain.matched) || chain.matched < records.length)
    problem(
      `"matched" is ${String(chain.matched)}, but the bundle holds ${records.length} record(s) of the chain`,
    );
  const seqs = new Set<unknown>();
  for (const r of records) {
    result.records++;
    const at = `record seq ${String(r?.seq)}`;
    // A record given twice proves nothing more, but would be counted twice.
    if (seqs.has(r?.seq)) problem(`${at}: in the bundle more than once`);
    seqs.add(r?.seq);
    if (typeof r?.line !== "string" || !Number.isSafeInteger(r.seq) || !Array.isArray(r.proof)) {
      problem(`${at}: not a record entry (seq, line, leafHash, proof)`);
      continue;
    }
    const leaf = leafHash(Buffer.from(r.line, "utf8"));
    const view = viewRecord(chain.chainId, r.line);
    if (leaf.toString("hex") !== r.leafHash)
      problem(
        `${at}: the line's leaf hash is ${leaf.toString("hex")}, not the bundle's ${String(r.leafHash)}: the record was altered`,
      );
    if (!view || view.seq !== r.seq || !r.line.startsWith(`{"chainId":"${chain.chainId}",`))
      problem(`${at}: the line is not the record line of seq ${r.seq} of this chain`);
    const path = r.proof.map((h) =>
      typeof h === "string" && HEX32.test(h) ? Buffer.from(h, "hex") : Buffer.alloc(0),
    );
    if (!verifyInclusion(r.seq, cp.size, leaf, path, root))
      problem(
        `${at}: the inclusion proof does not lead from the line's leaf hash to the signed root of tree size ${cp.size}`,
      );
    if (view && !meetsQuery(view, query))
      problem(`${at}: the record does not meet the bundle's query`);
  }
}

function meetsQuery(view: NonNullable<ReturnType<typeof viewRecord>>, q: EvidenceQuery): boolean {
  const received = Date.parse(view.received);
  if (q.from !== null && received < Date.parse(q.from)) return false;
  if (q.to !== null && received > Date.parse(q.to)) return false;
  return matches(view, q.where);
}

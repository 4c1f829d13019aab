import { createHash } from "node:crypto";
import { leafHash } from "../../integrity/format.js";
import type { InclusionProofJson } from "../../integrity/proofs.js";
import { parseCheckpointText, parseNote, verifyNote } from "../../integrity/note.js";
import type { PublicKey } from "../../integrity/signing.js";
import type { ChainReader, ReadProblems } from "../../exporters/source.js";
import { nanosToIso } from "../verify-findings.js";
import { PartialTree } from "./partial-tree.js";
import { envelopeTail, matches, type RecordView, viewRecord, type WhereClause } from "./records.js";

/**
 * What the audit report and `audit-agent search` tell about one chain beyond the verdict
 * (which `audit-agent verify` gives, and which they take from it): when its records came,
 * its batches, key rotations and latest checkpoint, and records with inclusion proofs
 * against that checkpoint. One pass over the manifests, one over the records; memory is
 * bounded by the records shown (and, for a search, a hash per record for the proofs).
 */

export interface CheckpointDetail {
  /** The signed note as stored: offline, it proves what the proofs are proven against. */
  note: string;
  origin: string;
  size: number;
  rootHash: string;
  /** Each signature line: by a trusted key (valid or not), or by another (a witness…). */
  signatures: Array<{ name: string; keyId: string; status: "trusted" | "invalid" | "other" }>;
  /** The trusted key whose signature verified. */
  signedBy: KeyRef;
}

/** A public key as a report names it: its verifier key and the fingerprint of its bytes. */
export interface KeyRef {
  verifierKey: string;
  /** "SHA256:" and the hex SHA-256 of the raw 32-byte Ed25519 public key. */
  fingerprint: string;
}

export function keyRef(key: PublicKey): KeyRef {
  return {
    verifierKey: key.verifierKey,
    fingerprint: `SHA256:${createHash("sha256").update(key.raw).digest("hex")}`,
  };
}

export interface KeyRotation {
  index: number;
  at: string;
  /** Records sealed before it: batches after this tree size are signed by the new key. */
  treeSize: number;
  fromKey: string;
  toKey: string;
}

export interface ProvenRecord extends RecordView {
  /** The stored line: its leaf hash is SHA-256(0x00 ‖ line), which the proof starts from. */
  line: string;
  proof: InclusionProofJson | null;
}

export interface ChainDetail {
  chainId: string;
  /** Record lines stored, copies included. */
  lines: number;
  firstReceived: string | null;
  lastReceived: string | null;
  /** Record lines per hour (or per day over long spans) of receive time. */
  histogram: { unit: string; buckets: Array<{ start: string; count: number }> };
  batches: number;
  firstBatchAt: string | null;
  lastBatchAt: string | null;
  rotations: KeyRotation[];
  checkpoint: CheckpointDetail | null;
  /** Records selected (the newest, or those a search matched), and how many there were. */
  records: { matched: number; rows: ProvenRecord[] };
  /** Why records carry no proof, when they do not. */
  proofProblem: string | null;
}

export interface DescribeOptions {
  trusted: readonly PublicKey[];
  /** Rows kept: the newest `limit` records, or the first `limit` matches of `where`. */
  limit: number;
  /** A search: only records meeting these (and the time range) are selected. */
  where?: readonly WhereClause[];
  /**
   * The origin of the chain's checkpoints when verify found it (signing.origin may be set to
   * anything): checkpoints with it count as the chain's, besides "…/<chain id>" ones.
   */
  origin?: string;
  /** Receive times selected, unix ns, inclusive. */
  from?: bigint;
  to?: bigint;
}

const ignore: ReadProblems = { finding: () => undefined, note: () => undefined };

/** The chain's manifests: batches, rotations, and its latest checkpoint a trusted key signed. */
async function manifestPass(
  chain: ChainReader,
  trusted: readonly PublicKey[],
  origin: string | undefined,
) {
  let batches = 0;
  let firstBatchAt: string | null = null;
  let lastBatchAt: string | null = null;
  const rotations: KeyRotation[] = [];
  let checkpoint: CheckpointDetail | null = null;
  for await (const stored of chain.manifests(ignore)) {
    const m = stored.manifest as Record<string, unknown>;
    const at = typeof m.createdAt === "string" ? m.createdAt : "";
    if (m.type === "batch") {
      batches++;
      firstBatchAt ??= at;
      lastBatchAt = at;
    } else if (m.type === "key-rotation")
      rotations.push({
        index: Number(m.index),
        at,
        treeSize: Number(m.treeSize),
        fromKey: String(m.keyId),
        toKey: String(m.newKey),
      });
    const cp = stored.checkpoint
      ? trustedCheckpoint(stored.checkpoint, chain.chainId, trusted, origin)
      : null;
    if (cp && (checkpoint === null || cp.size > checkpoint.size)) checkpoint = cp;
  }
  return { batches, firstBatchAt, lastBatchAt, rotations, checkpoint };
}

/**
 * A checkpoint note of this chain that a trusted key signed, or null. With `origin` (what
 * verify found for the chain) it must be that origin or the default one; without it any
 * origin is taken, as `signing.origin` may name the log anything: what binds the checkpoint
 * to the chain is then its signed root, which the chain's own lines must reproduce (callers
 * prove each record against it, and each line names its chain).
 */
export function trustedCheckpoint(
  note: string,
  chainId: string,
  trusted: readonly PublicKey[],
  origin?: string,
): CheckpointDetail | null {
  try {
    const parsed = parseNote(note);
    const { valid, invalid } = verifyNote(parsed, trusted);
    const cp = parseCheckpointText(parsed.text);
    const ofChain =
      origin === undefined || cp.origin === origin || cp.origin.endsWith(`/${chainId}`);
    if (valid.length === 0 || !ofChain) return null;
    const status = (s: { name: string; keyId: string }) =>
      valid.some((k) => k.name === s.name && k.keyId === s.keyId)
        ? ("trusted" as const)
        : invalid.includes(s as (typeof invalid)[number])
          ? ("invalid" as const)
          : ("other" as const);
    return {
      note,
      origin: cp.origin,
      size: cp.size,
      rootHash: cp.rootHash.toString("hex"),
      signatures: parsed.signatures.map((s) => ({
        name: s.name,
        keyId: s.keyId,
        status: status(s),
      })),
      signedBy: keyRef(valid[0] as PublicKey),
    };
  } catch {
    return null; // not a checkpoint: the verifier reports it
  }
}

/** Describes one chain (see ChainDetail). */
export async function describeChain(
  chain: ChainReader,
  opts: DescribeOptions,
): Promise<ChainDetail> {
  const m = await manifestPass(chain, opts.trusted, opts.origin);
  const size = m.checkpoint?.size ?? 0;
  const search = opts.where !== undefined;
  // A search may match any record, so it keeps every leaf; the report proves the newest.
  const tree = m.checkpoint ? new PartialTree(size, search ? size : opts.limit) : null;
  const hours = new Map<number, number>();
  let lines = 0;
  let next = 0;
  let inOrder = true;
  let firstNs: bigint | null = null;
  let lastNs: bigint | null = null;
  let matched = 0;
  const kept: Array<{ view: RecordView | null; line: string }> = [];
  for await (const page of chain.records(ignore)) {
    for (const { text } of page) {
      lines++;
      const tail = envelopeTail(text);
      if (!tail) {
        inOrder = false;
        continue;
      }
      const hour = Number(tail.received / 3_600_000_000_000n);
      hours.set(hour, (hours.get(hour) ?? 0) + 1);
      if (firstNs === null || tail.received < firstNs) firstNs = tail.received;
      if (lastNs === null || tail.received > lastNs) lastNs = tail.received;
      if (tail.seq !== next) inOrder = false;
      else {
        next++;
        if (tree && tree.size < size) tree.append(leafHash(Buffer.from(text, "utf8")));
      }
      if (!search) {
        kept.push({ view: null, line: text });
        if (kept.length > 2 * opts.limit) kept.splice(0, kept.length - opts.limit);
        continue;
      }
      if (opts.from !== undefined && tail.received < opts.from) continue;
      if (opts.to !== undefined && tail.received > opts.to) continue;
      const view = viewRecord(chain.chainId, text);
      if (!view || !matches(view, opts.where ?? [])) continue;
      matched++;
      if (kept.length < opts.limit) kept.push({ view, line: text });
    }
  }
  if (!search) {
    matched = lines;
    kept.splice(0, Math.max(0, kept.length - opts.limit));
  }
  const proofProblem = !m.checkpoint
    ? "no checkpoint signed by a trusted key: nothing to prove the records against"
    : !inOrder || !tree || tree.size < size
      ? "the stored records are not the signed chain in seq order (see the findings): no proofs"
      : tree.root(size).toString("hex") !== m.checkpoint.rootHash
        ? `the stored records do not reproduce the root of the checkpoint of size ${size} (see the findings): no proofs`
        : null;
  const rows: ProvenRecord[] = [];
  for (const k of kept) {
    const view = k.view ?? viewRecord(chain.chainId, k.line);
    if (!view) continue;
    const provable = proofProblem === null && tree?.holds(view.seq) && view.seq < size;
    rows.push({
      ...view,
      line: k.line,
      proof: provable && tree ? await tree.prove(view.seq, size) : null,
    });
  }
  const ns = (n: bigint | null) => (n === null ? null : nanosToIso(n));
  return {
    chainId: chain.chainId,
    lines,
    firstReceived: ns(firstNs),
    lastReceived: ns(lastNs),
    histogram: histogram(hours),
    ...m,
    records: { matched, rows },
    proofProblem,
  };
}

/**
 * Hours with records as consecutive buckets, empty ones included: of an hour, of a day past
 * 10 days, and of as many days as keep them to 1,000 over longer spans (a forged receive
 * time far off must not make the chart, or the loop, huge).
 */
function histogram(hours: ReadonlyMap<number, number>): ChainDetail["histogram"] {
  if (hours.size === 0) return { unit: "hour", buckets: [] };
  let first = Infinity;
  let last = -Infinity;
  for (const h of hours.keys()) {
    first = Math.min(first, h);
    last = Math.max(last, h);
  }
  const span = last - first;
  const step = span < 240 ? 1 : 24 * Math.max(1, Math.ceil(span / 24 / 1000));
  const from = first - (first % step);
  const counts = new Array<number>(Math.floor((last - from) / step) + 1).fill(0);
  for (const [h, n] of hours) counts[Math.floor((h - from) / step)] += n;
  return {
    unit: step === 1 ? "hour" : step === 24 ? "day" : `${step / 24} days`,
    buckets: counts.map((count, i) => ({
      start: new Date((from + i * step) * 3_600_000).toISOString(),
      count,
    })),
  };
}

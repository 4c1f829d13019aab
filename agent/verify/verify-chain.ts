import type { CosignerKey } from "../integrity/cosignature.js";
import { receivedOf } from "../integrity/canonical-check.js";
import { EMPTY_TREE_HASH } from "../integrity/merkle.js";
import type { PublicKey } from "../integrity/signing.js";
import { treeRoots } from "./leaf-hashes.js";
import type { ChainData, ChainSummary, Finding } from "./types.js";
import { type CheckpointTally, checkCheckpoints, checkpointSize } from "./verify-checkpoints.js";
import {
  type AddFinding,
  batchRootMismatch,
  findingAdder,
  nanosToIso,
  range,
} from "./verify-findings.js";
import { type BatchInfo, checkManifests } from "./verify-manifests.js";
import { ReceiveTimes } from "./receive-times.js";
import {
  checkLinks,
  keepFirstCopies,
  pickGenuineCopies,
  type Rec,
  type ScannedLines,
  scanLines,
} from "./verify-records.js";

export { originOf } from "./verify-checkpoints.js";

/**
 * Verifies one chain from what a backend holds and trusted public keys alone
 * (docs/integrity-format.md §7). Every check that fails becomes a finding with a
 * category and a location; nothing is assumed from the agent's own state.
 *
 * verifyChain runs the numbered steps of §7 in turn; each lives with its helpers in a module
 * of its own: verify-manifests.ts (2), verify-records.ts (1, 3, 4), this module (5) and
 * verify-checkpoints.ts (6).
 */

export interface VerifyOptions {
  trusted: readonly PublicKey[];
  /** Checkpoints seen earlier (signed notes), e.g. from `--checkpoint FILE`. */
  knownCheckpoints: readonly { note: string; location: string }[];
  /** Hash on a worker thread; by default for chains of WORKER_THRESHOLD lines or more. */
  hashOnWorker?: boolean;
  /** Witness keys whose cosignatures on checkpoints are counted (`verify --witness`). */
  witnesses?: readonly CosignerKey[];
}

export async function verifyChain(
  data: ChainData,
  options: VerifyOptions,
): Promise<{ summary: ChainSummary; findings: Finding[]; usedCheckpoints: Set<number> }> {
  const usedCheckpoints = new Set<number>();
  const chainId = data.chainId;
  const findings: Finding[] = [...data.findings];
  const add = findingAdder(findings, chainId);

  // 2 (reported after 1). Manifests: structure, signature, their own hash chain. Their
  // batches and checkpoints say which tree roots steps 5 and 6 need: computed along with the
  // leaf hashes, for the usual case of a chain stored whole and in order (see `keptTreeRoots`
  // below); otherwise from the records kept, once they are known.
  const manifestFindings: Finding[] = [];
  const { batches, claimedThrough, retired } = checkManifests(
    data,
    options.trusted,
    findingAdder(manifestFindings, chainId),
  );
  const checkpointSizes = [
    ...data.manifests.map((m) => m.checkpoint),
    ...options.knownCheckpoints.map((k) => k.note),
  ].flatMap((note) => (note ? checkpointSize(note) : []));
  const lines = data.records;
  const inOrderRanges = rangesInStorageOrder(batches, checkpointSizes, lines.length);

  // 1. Records: parse and hash each line, keep the first copy of each seq, and note the
  // storage order.
  const scanned = await scanLines(lines, chainId, inOrderRanges, options.hashOnWorker);
  const kept = keepFirstCopies(scanned.parsed, lines, chainId, add);
  findings.push(...kept.reordered, ...manifestFindings);

  // 3. Pick one copy per seq: the one the signed chain commits to.
  const ordered = pickGenuineCopies(kept, batches, scanned, add);

  // 4. Contiguity and links.
  checkLinks(ordered, chainId, scanned, batches, add);

  // Tree roots for steps 5 and 6.
  const tree = keptTreeRoots(
    ordered,
    lines.length,
    batches,
    checkpointSizes,
    inOrderRanges,
    scanned,
  );

  // 5. Batches: each signed batch must match the records exactly.
  const sealedThrough = checkBatches(batches, ordered, tree.rootHex, findings, add);
  checkSealed(ordered, sealedThrough, claimedThrough, add);

  // 6. Checkpoints: stored ones and those seen earlier must match the rebuilt tree.
  const tally = await checkCheckpoints(
    data,
    { trusted: options.trusted, retired, witnesses: options.witnesses },
    options.knownCheckpoints,
    { contiguous: tree.contiguous, sealedThrough, rootHex: tree.rootHex },
    add,
    usedCheckpoints,
  );

  // Receive times are not checked (docs/integrity-format.md §7.1): a damaged one is caught
  // by the link of the next record, and must not stop the report.
  // The times seen while scanning are those of the kept records when every line was kept.
  const times = tree.inOrder ? scanned.times : receiveTimes(ordered);
  return {
    findings,
    usedCheckpoints,
    summary: summarize(data, ordered, times, batches, sealedThrough, tally),
  };
}

/**
 * The ranges of lines, in storage order, whose tree roots steps 5 and 6 need when the chain
 * is stored whole and in order: the batches' seqs and the checkpoints' prefixes.
 */
function rangesInStorageOrder(
  batches: readonly BatchInfo[],
  checkpointSizes: readonly number[],
  lineCount: number,
): [number, number][] {
  const ranges: [number, number][] = [];
  for (const b of batches) {
    const [first, last] = [Number(b.firstSeq), Number(b.lastSeq)];
    if (first <= last && last < lineCount) ranges.push([first, last + 1]);
  }
  for (const size of checkpointSizes) if (size > 0 && size <= lineCount) ranges.push([0, size]);
  return ranges;
}

/** The kept records' tree: how far it runs from seq 0 without a gap, and its roots. */
interface KeptRoots {
  contiguous: number;
  /** Every line was kept, in place and numbered from 0. */
  inOrder: boolean;
  /** The root over the kept records [from, to) by their position, in hex. */
  rootHex: (from: number, to: number) => string;
}

/**
 * Tree roots for steps 5 and 6, over the kept records' leaf hashes by their position in
 * `ordered`. When every line was kept, in place and numbered from 0, that is the order the
 * leaves were hashed in, and the roots computed while scanning (of `inOrderRanges`) apply.
 */
function keptTreeRoots(
  ordered: readonly Rec[],
  lineCount: number,
  batches: readonly BatchInfo[],
  checkpointSizes: readonly number[],
  inOrderRanges: readonly [number, number][],
  scanned: ScannedLines,
): KeptRoots {
  const { digests } = scanned;
  let contiguous = 0;
  while (ordered[contiguous]?.seq === contiguous) contiguous++;
  const inOrder =
    ordered.length === lineCount &&
    contiguous === lineCount &&
    ordered.every((r, i) => r.line === i);
  const neededRanges: [number, number][] = [];
  for (const b of batches) {
    const { from, held, absent } = batchSpan(ordered, b);
    if (absent === 0 && held > 0) neededRanges.push([from, from + held]);
  }
  for (const size of checkpointSizes)
    if (size > 0 && size <= contiguous) neededRanges.push([0, size]);
  const roots = new Map<string, string>();
  const keep = (ranges: readonly [number, number][], found: Buffer) =>
    ranges.forEach(([from, to], k) =>
      roots.set(`${from}:${to}`, found.toString("hex", 32 * k, 32 * k + 32)),
    );
  if (inOrder) keep(inOrderRanges, scanned.inOrderRoots);
  const missingRanges = neededRanges.filter(([from, to]) => !roots.has(`${from}:${to}`));
  if (missingRanges.length > 0) {
    const leaves = Buffer.alloc(32 * ordered.length);
    ordered.forEach((r, i) => digests.copy(leaves, 32 * i, 32 * r.line, 32 * r.line + 32));
    keep(missingRanges, treeRoots(leaves, missingRanges));
  }
  const rootHex = (from: number, to: number) =>
    from === to ? EMPTY_TREE_HASH.toString("hex") : (roots.get(`${from}:${to}`) as string);
  return { contiguous, inOrder, rootHex };
}

/**
 * Step 5: each signed batch must match the kept records exactly. Returns the last seq the
 * batches seal.
 */
function checkBatches(
  batches: readonly BatchInfo[],
  ordered: readonly Rec[],
  rootHex: (from: number, to: number) => string,
  findings: readonly Finding[],
  add: AddFinding,
): number {
  let sealedThrough = -1;
  for (const b of batches) {
    const { first, last, from, held, absent } = batchSpan(ordered, b);
    sealedThrough = Math.max(sealedThrough, last);
    if (absent > 0) {
      if (held === 0)
        add(
          "missing",
          b.location,
          `all ${absent} records of signed batch ${b.index} (seq ${range(first, last)}) are absent`,
          { seq: first, lastSeq: last, manifest: Number(b.index) },
        );
      continue; // individual gaps were reported above
    }
    const root = rootHex(from, from + held);
    if (root !== b.batchRoot) {
      const linked = findings.some(
        (f) => f.category === "modified" && f.seq !== undefined && f.seq >= first && f.seq <= last,
      );
      if (!linked) batchRootMismatch(add, b.location, first, last, b.index);
    }
  }
  return sealedThrough;
}

/** Step 5, continued: every kept record must be covered by a signed batch. */
function checkSealed(
  ordered: readonly Rec[],
  sealedThrough: number,
  claimedThrough: number,
  add: AddFinding,
): void {
  for (const rec of ordered) {
    if (rec.seq > Math.max(sealedThrough, claimedThrough)) {
      add(
        "inserted",
        rec.location,
        `seq ${rec.seq} is not covered by any signed batch (the last signed batch ends at ${sealedThrough}): forged, or written after the last seal`,
        { seq: rec.seq },
      );
    }
  }
}

/** The receive times of the kept records, read again from their text. */
function receiveTimes(ordered: readonly Rec[]): ReceiveTimes {
  const times = new ReceiveTimes();
  for (const r of ordered) times.add(receivedOf(r.text));
  return times;
}

function summarize(
  data: ChainData,
  ordered: readonly Rec[],
  times: ReceiveTimes,
  batches: readonly BatchInfo[],
  sealedThrough: number,
  tally: CheckpointTally,
): ChainSummary {
  const latest = tally.latest;
  return {
    chainId: data.chainId,
    records: ordered.length,
    firstSeq: ordered[0]?.seq ?? null,
    lastSeq: ordered[ordered.length - 1]?.seq ?? null,
    firstReceived: times.earliest === null ? null : nanosToIso(BigInt(times.earliest)),
    lastReceived: times.latest === null ? null : nanosToIso(BigInt(times.latest)),
    batches: batches.length,
    sealedThrough,
    keys: [...new Set(batches.map((b) => b.keyId))],
    checkpoints: tally.checkpoints,
    latestCheckpoint: latest
      ? {
          size: latest.size,
          rootHash: latest.rootHash.toString("hex"),
          origin: latest.origin,
          cosigners: tally.latestCosigners,
        }
      : null,
    notes: data.notes,
  };
}

/** The index of the first record in `ordered` (ascending seqs) whose seq is at least `seq`. */
function firstAtOrAfter(ordered: readonly Rec[], seq: number): number {
  let lo = 0;
  let hi = ordered.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ordered[mid] as Rec).seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Where a batch's seqs fall in `ordered`, and how many of them are held. */
function batchSpan(ordered: readonly Rec[], b: BatchInfo) {
  const first = Number(b.firstSeq);
  const last = Number(b.lastSeq);
  const from = firstAtOrAfter(ordered, first);
  const held = firstAtOrAfter(ordered, last + 1) - from;
  return { first, last, from, held, absent: last - first + 1 - held };
}

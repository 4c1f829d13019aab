import { hash as oneShotHash, randomInt } from "node:crypto";
import { Frontier } from "../integrity/frontier.js";
import { EMPTY_TREE_HASH } from "../integrity/merkle.js";
import type {
  ChainReader,
  ReadProblems,
  RecordBytes,
  StoredManifest,
  StoredText,
} from "../exporters/source.js";
import type { ChainData, ChainSummary, Finding } from "./types.js";
import { leafOf, RecordWindow, type WindowRecord } from "./record-window.js";
import { type CheckedLines, checkLineBytes, checkLineTexts } from "./line-check.js";
import { type AheadPage, LineCheckers } from "./line-checkers.js";
import { type CheckpointTally, checkCheckpoints, checkpointSize } from "./verify-checkpoints.js";
import type { VerifyOptions } from "./verify-chain.js";
import {
  type AddFinding,
  batchRootMismatch,
  findingAdder,
  nanosToIso,
  range,
} from "./verify-findings.js";
import {
  type BatchInfo,
  type CheckedManifests,
  checkEarlierEnd,
  checkEntryAlone,
  checkManifests,
  type DeclaredLoss,
  type ManifestsVerified,
  storedIndex,
} from "./verify-manifests.js";
import { ReceiveTimes } from "./receive-times.js";
import { checkBatches, spotCheck } from "./spot-check.js";
import type { ChainState } from "./state.js";

/**
 * Verifies one chain as it streams from a backend (docs/integrity-format.md §7), holding
 * its manifests (a thousandth of its size), a window of records (record-window.ts) and
 * O(log n) tree hashes — never the chain. The findings, their categories, locations and
 * order are those of verifying the chain whole (verify-chain.ts), as long as copies and
 * reorders stay within the window.
 */

/** Progress while records stream, for a progress line. */
export type OnRecords = (chainId: string, records: number) => void;

export interface StreamVerifyOptions extends VerifyOptions {
  /** Records judged together (see RecordWindow); default 16,384. */
  window?: number;
  onRecords?: OnRecords;
  /** What an earlier clean run established: only what came after it is verified. */
  resume?: ChainState;
  /** With `resume`: signed batches before it read again and checked (spot-check.ts). */
  spotCheck?: number;
  /** Where lines are checked and hashed; by default on the judging thread. */
  lineCheckers?: LineCheckers;
  /** Findings listed per chain, the rest counted (default MAX_FINDINGS). */
  maxFindings?: number;
}

/**
 * Findings listed per chain: a damaged or emptied backend can make one per record (every
 * record `inserted` once the manifests are gone), and a report must not take the memory the
 * log would. The rest are counted in a note; the chain still fails.
 */
export const MAX_FINDINGS = 100_000;

export interface ChainResult {
  summary: ChainSummary;
  findings: Finding[];
  usedCheckpoints: Set<number>;
  /** What this run establishes for the next one, when the chain verified clean. */
  state: ChainState | null;
  /** The loss of another chain's records this chain declares (verified chain-start entry). */
  declared: DeclaredLoss[];
}

/** One verified batch being filled by the kept records, in ascending seq. */
interface OpenBatch {
  info: BatchInfo;
  /** Its position in the verified batches (their report order). */
  order: number;
  first: number;
  last: number;
  held: number;
  tree: BatchLeaves;
}

/** Batches up to this many records collect their leaf hashes in one buffer (2 MiB). */
const MAX_BUFFERED_BATCH = 1 << 16;

/**
 * The leaf hashes of one signed batch, in seq order, for its root: collected into one buffer
 * sized by the batch's count and folded once at its end (merkleRootOf), rather than into a
 * Frontier with its node hashes and Buffers at every append. A batch whose manifest claims
 * more than MAX_BUFFERED_BATCH records falls back to a Frontier.
 */
class BatchLeaves {
  private readonly leaves: Buffer | null;
  private frontier: Frontier | null;
  private count = 0;
  private folded: Buffer | undefined;

  constructor(size: number) {
    const buffered = size > 0 && size <= MAX_BUFFERED_BATCH;
    this.leaves = buffered ? Buffer.allocUnsafe(32 * size) : null;
    this.frontier = buffered ? null : new Frontier();
  }

  /**
   * Appends the leaf hash at bytes `at` to `at + 32` of `from`. A batch holds at most its
   * count of records (one per seq in its range).
   */
  append(from: Buffer, at: number): void {
    const leaves = this.leaves;
    if (this.frontier === null && leaves !== null && 32 * this.count < leaves.length) {
      from.copy(leaves, 32 * this.count++, at, at + 32);
      return;
    }
    const leaf = Buffer.from(from.subarray(at, at + 32));
    // Never taken by a batch of kept records; kept correct all the same.
    if (this.frontier === null) {
      this.frontier = new Frontier();
      for (let i = 0; i < this.count; i++)
        this.frontier.append(Buffer.from((leaves as Buffer).subarray(32 * i, 32 * i + 32)));
    }
    this.frontier.append(leaf);
  }

  /** The batch's root, once all its leaves are in (the buffered leaves are folded in place). */
  root(): Buffer {
    if (this.frontier !== null) return this.frontier.root();
    this.folded ??= merkleRootOf(this.leaves as Buffer, this.count);
    return this.folded;
  }
}

/** 0x01 ‖ left ‖ right: the input of every node hash merkleRootOf computes. */
const nodeScratch = Buffer.alloc(65, 1);

/**
 * RFC 6962 MTH of the first `count` 32-byte leaf hashes in `leaves`, computed in place
 * (`leaves` is overwritten). Pairing each level left to right, the last node of an odd
 * level carried up as it is, gives the RFC's tree: it splits at the largest power of two
 * below the size, so every left subtree is perfect. Each node hash is made as a latin1
 * string, not a Buffer: half the cost (frontier.ts).
 */
export function merkleRootOf(leaves: Buffer, count: number): Buffer {
  if (count === 0) return EMPTY_TREE_HASH;
  let n = count;
  while (n > 1) {
    const pairs = n >>> 1;
    for (let i = 0; i < pairs; i++) {
      leaves.copy(nodeScratch, 1, 64 * i, 64 * i + 64);
      leaves.write(oneShotHash("sha256", nodeScratch, "binary"), 32 * i, 32, "latin1");
    }
    if ((n & 1) === 1) leaves.copy(leaves, 32 * pairs, 32 * (n - 1), 32 * n);
    n = pairs + (n & 1);
  }
  return Buffer.from(leaves.subarray(0, 32));
}

/** The findings of each step, concatenated in the steps' order at the end. */
class StepFindings {
  /** Findings listed so far, and those counted once the limit was reached. */
  readonly budget = { listed: 0, dropped: 0, droppedUnsealed: 0 };

  constructor(
    private readonly chainId: string,
    private readonly limit: number,
  ) {}

  /** Adds to `list`, or counts once the chain has `limit` findings listed. */
  adder(list: Finding[]): AddFinding {
    const add = findingAdder(list, this.chainId);
    const budget = this.budget;
    return (category, location, detail, at) => {
      if (budget.listed < this.limit) {
        budget.listed++;
        add(category, location, detail, at);
        return;
      }
      budget.dropped++;
      if (list === this.sealed) budget.droppedUnsealed++;
    };
  }

  readonly reader: Finding[] = [];
  readonly readerManifests: Finding[] = [];
  readonly malformed: Finding[] = [];
  readonly reordered: Finding[] = [];
  readonly manifests: Finding[] = [];
  readonly copies: Finding[] = [];
  readonly links: Finding[] = [];
  /** Step 5, per batch in report order. */
  readonly batches: Finding[][] = [];
  readonly sealed: Finding[] = [];
  readonly checkpoints: Finding[] = [];

  all(): Finding[] {
    return [
      ...this.reader,
      ...this.readerManifests,
      ...this.malformed,
      ...this.reordered,
      ...this.manifests,
      ...this.copies,
      ...this.links,
      ...this.batches.flat(),
      ...this.sealed,
      ...this.checkpoints,
    ];
  }
}

export async function verifyChainStream(
  reader: ChainReader,
  options: StreamVerifyOptions,
): Promise<ChainResult> {
  const { chainId } = reader;
  const steps = new StepFindings(chainId, options.maxFindings ?? MAX_FINDINGS);
  const add = (list: Finding[]): AddFinding => steps.adder(list);
  const notes: string[] = [];
  const earlier = options.resume?.manifests;
  const spotChecks = options.resume ? (options.spotCheck ?? 0) : 0;
  // An incremental run takes the entries an earlier run verified as verified: neither their
  // signatures nor their checkpoints are checked again, nor are they held (--spot-check
  // checks a random sample of their batches).
  const { manifests, last, sample } = await readManifests(
    reader,
    { finding: readerFinding(steps.adder(steps.readerManifests)), note: (n) => notes.push(n) },
    earlier,
    spotChecks,
  );
  if (earlier) checkEarlierEnd(last, earlier, chainId, add(steps.manifests));
  // Step 2 first: the verified batches say what the records must match.
  const data: ChainData = { chainId, records: [], manifests, findings: [], notes };
  const checked = checkManifests(data, options.trusted, add(steps.manifests), earlier);
  const { batches, retired, declared } = checked;
  const kept = new KeptRecords(chainId, checked, earlier, manifests, options, steps);
  // From here on only each entry's checkpoint and location are read (step 6): the parsed
  // manifests are let go while the records stream.
  data.manifests = manifests.map((m) => ({
    manifest: null,
    checkpoint: m.checkpoint,
    location: m.location,
  }));
  manifests.length = 0;
  await kept.read(reader, {
    finding: readerFinding(steps.adder(steps.reader)),
    note: (n) => notes.push(n),
  });
  kept.finish();

  // Step 6: checkpoints, stored and seen earlier, against the rebuilt tree. After a resume,
  // a checkpoint seen earlier for a size the state has no root of cannot be judged here.
  const usedCheckpoints = new Set<number>();
  const known = options.knownCheckpoints.filter((k) => {
    const size = checkpointSize(k.note)[0];
    if (size === undefined || !options.resume || size > options.resume.treeSize) return true;
    if (options.resume.checkpointRoots[size] !== undefined) return true;
    notes.push(
      `${k.location}: a checkpoint of size ${size}, inside what the state file vouches for, was not judged; run without --state to check it`,
    );
    return false;
  });
  const tally = withEarlier(
    await checkCheckpoints(
      data,
      { trusted: options.trusted, retired, witnesses: options.witnesses },
      known,
      { contiguous: kept.contiguous, sealedThrough: kept.sealedThrough, rootHex: kept.rootHex },
      add(steps.checkpoints),
      usedCheckpoints,
      earlier?.origin,
    ),
    earlier,
  );
  const resumedAt = options.resume?.treeSize ?? 0;
  if (kept.sealedThrough + 1 < resumedAt)
    add(steps.checkpoints)(
      "truncated",
      reader.chainId,
      `the state file vouches for ${resumedAt} records, but the signed batches now end at seq ${kept.sealedThrough}: the tail was removed`,
      { seq: kept.sealedThrough + 1 },
    );
  if (spotChecks > 0 && !earlier)
    await spotCheck(reader, batches, resumedAt, spotChecks, steps.checkpoints);
  else if (spotChecks > 0 && earlier) {
    // The picked entries are checked alone (structure, signature), then their records.
    const picked = sample.flatMap((m) => {
      const batch = checkEntryAlone(m, chainId, options.trusted, retired, add(steps.checkpoints));
      return batch ? [batch] : [];
    });
    await checkBatches(reader, picked, steps.checkpoints);
  }
  const findings = steps.all();
  notes.push(...declared.map(declaredNote), ...droppedNote(steps, findings.length));
  return {
    findings,
    usedCheckpoints,
    declared,
    summary: kept.summary(tally, notes),
    // Records no signed batch covers yet (a backend read while the agent writes) come after
    // everything the state vouches for: they do not stop it advancing; any other finding does.
    state:
      findings.length === steps.sealed.length &&
      steps.budget.dropped === steps.budget.droppedUnsealed
        ? kept.state(checked.verified, tally)
        : null,
  };
}

/** The note saying how many findings were counted but not listed, when any were. */
function droppedNote(steps: StepFindings, listed: number): string[] {
  return steps.budget.dropped > 0
    ? [
        `${steps.budget.dropped} more findings were not listed: a report lists the first ${listed} of a chain`,
      ]
    : [];
}

/** The note on a chain whose chain-start entry declares a loss (integrity-format §10.5). */
function declaredNote(d: DeclaredLoss): string {
  return `starts a new chain after chain ${d.predecessor} lost records: seq ${d.lostFrom}..${d.lostThrough} were acknowledged but not kept (declared ${d.declaredAt}: "${d.reason}")`;
}

/** A reader's finding, within the chain's limit of listed findings. */
function readerFinding(add: AddFinding): (f: Finding) => void {
  return (f) => add(f.category, f.location, f.detail, f);
}

/** Whether a stored entry says it is a batch (read without checking it). */
function isBatchEntry(m: StoredManifest): boolean {
  return (m.manifest as { type?: unknown } | null)?.type === "batch";
}

/** This run's checkpoint tally with what the earlier run counted in the entries it skipped. */
function withEarlier(tally: CheckpointTally, earlier: ChainState["manifests"]): CheckpointTally {
  if (!earlier) return tally;
  const prior = earlier.latestCheckpoint;
  const latest =
    prior && (!tally.latest || tally.latest.size < prior.size)
      ? { ...prior, rootHash: Buffer.from(prior.rootHash, "hex"), extensions: [] }
      : tally.latest;
  return {
    checkpoints: earlier.checkpoints + tally.checkpoints,
    latest,
    latestCosigners: latest === tally.latest ? tally.latestCosigners : (prior?.cosigners ?? []),
    origin: tally.origin ?? earlier.origin,
  };
}

/**
 * The stored manifests, in storage order. After an earlier run (`earlier`), the entries it
 * verified are not kept: only the copies of the last of them (checkEarlierEnd) and, for spot
 * checks, `sampleSize` of their batch entries drawn uniformly (a reservoir), so that memory
 * follows what is new, not the log's length.
 */
async function readManifests(
  reader: ChainReader,
  problems: ReadProblems,
  earlier: ManifestsVerified | undefined,
  sampleSize: number,
): Promise<{
  manifests: StoredManifest[];
  last: { copies: StoredManifest[]; highest: number };
  sample: StoredManifest[];
}> {
  const manifests: StoredManifest[] = [];
  const last = { copies: [] as StoredManifest[], highest: -1 };
  const sample: StoredManifest[] = [];
  let batchesSeen = 0;
  for await (const m of reader.manifests(problems)) {
    const index = storedIndex(m);
    if (index > last.highest) last.highest = index;
    if (!earlier || !(index < earlier.next)) {
      manifests.push(m);
      continue;
    }
    if (index === earlier.next - 1) last.copies.push(m);
    if (sampleSize === 0 || !isBatchEntry(m)) continue;
    batchesSeen++;
    if (sample.length < sampleSize) sample.push(m);
    else {
      const j = randomInt(batchesSeen);
      if (j < sampleSize) sample[j] = m;
    }
  }
  return { manifests, last, sample };
}

/**
 * Steps 1 and 3–5 over the record stream: each line parsed and hashed, one copy kept per
 * seq in a window, links checked, and the kept records folded into the trees that the
 * signed batches and checkpoints are compared with.
 */
class KeptRecords {
  readonly sealedThrough: number;
  contiguous = 0;
  private gapSeen = false;
  private count = 0;
  /** Lines read so far, for progress. */
  private linesRead = 0;
  private firstSeq: number | null = null;
  private lastSeq: number | null = null;
  private readonly times = new ReceiveTimes();
  private tree = new Frontier();
  /** Roots of the kept records [0, size) for the checkpoint sizes, in hex. */
  private readonly roots = new Map<number, string>();
  private readonly checkpointSizes: Set<number>;
  private readonly byFirstSeq: { info: BatchInfo; order: number }[];
  private nextBatch = 0;
  private readonly open: OpenBatch[] = [];
  /** Seqs reported `modified` by the link check, ascending. */
  private readonly modifiedSeqs: number[] = [];
  private readonly window: RecordWindow;
  private readonly addSealed: AddFinding;
  private readonly addMalformed: AddFinding;
  /** Records before this seq were verified by an earlier run (0: a full run). */
  private readonly resumeFrom: number;
  /** The tree at the end of the last batch kept whole from seq 0, for the next run's state. */
  private sealedPoint: { size: number; frontier: Frontier; lastLeaf: Buffer } | null = null;
  private readonly batchEnds: Set<number>;

  private readonly batches: readonly BatchInfo[];
  private readonly claimedThrough: number;
  /** Verified batches and their keys in the entries an earlier run verified (resume). */
  private readonly earlier: { batches: number; keys: readonly string[] };

  constructor(
    private readonly chainId: string,
    checked: CheckedManifests,
    /** The entries an earlier run verified and this one skips (resume without spot checks). */
    skipped: ChainState["manifests"],
    manifests: readonly StoredManifest[],
    private readonly options: StreamVerifyOptions,
    private readonly steps: StepFindings,
  ) {
    const { batches, claimedThrough } = checked;
    this.batches = batches;
    this.claimedThrough = claimedThrough;
    this.earlier = { batches: skipped?.batches ?? 0, keys: skipped?.keys ?? [] };
    this.sealedThrough = batches.reduce(
      (max, b) => Math.max(max, Number(b.lastSeq)),
      skipped?.sealedThrough ?? -1,
    );
    this.checkpointSizes = new Set(
      [
        ...manifests.map((m) => m.checkpoint),
        ...options.knownCheckpoints.map((k) => k.note),
      ].flatMap((note) => (note ? checkpointSize(note) : [])),
    );
    this.byFirstSeq = batches
      .map((info, order) => ({ info, order }))
      .sort((a, b) => Number(a.info.firstSeq) - Number(b.info.firstSeq));
    for (let i = 0; i < batches.length; i++) steps.batches.push([]);
    const committed = new Map<number, string>();
    for (const b of batches) {
      committed.set(Number(b.lastSeq), b.lastLeaf);
      if (Number(b.firstSeq) > 0) committed.set(Number(b.firstSeq) - 1, b.prevLeaf);
    }
    const links = steps.adder(steps.links);
    const resumeAfter =
      options.resume && options.resume.treeSize > 0
        ? { seq: options.resume.treeSize - 1, leaf: Buffer.from(options.resume.lastLeaf, "hex") }
        : undefined;
    this.window = new RecordWindow(
      chainId,
      committed,
      {
        reordered: steps.adder(steps.reordered),
        copies: steps.adder(steps.copies),
        links: (category, location, detail, at) => {
          if (category === "modified" && at?.seq !== undefined) this.modifiedSeqs.push(at.seq);
          links(category, location, detail, at);
        },
      },
      (rec) => this.keep(rec),
      options.window,
      resumeAfter,
    );
    this.addSealed = steps.adder(steps.sealed);
    this.addMalformed = steps.adder(steps.malformed);
    this.batchEnds = new Set(batches.map((b) => Number(b.lastSeq) + 1));
    const resume = options.resume;
    this.resumeFrom = resume?.treeSize ?? 0;
    if (resume && resume.treeSize > 0) this.restore(resume);
  }

  /** Starts from what an earlier run verified: its tree, its last record, its checkpoints. */
  private restore(resume: ChainState): void {
    this.tree = Frontier.restore(resume.frontier);
    this.count = this.contiguous = resume.treeSize;
    this.firstSeq = 0;
    this.lastSeq = resume.treeSize - 1;
    for (const [size, root] of Object.entries(resume.checkpointRoots))
      this.roots.set(Number(size), root);
    if (resume.firstReceived) this.times.add(resume.firstReceived);
    if (resume.lastReceived) this.times.add(resume.lastReceived);
    this.sealedPoint = {
      size: resume.treeSize,
      frontier: Frontier.restore(resume.frontier),
      lastLeaf: Buffer.from(resume.lastLeaf, "hex"),
    };
    // Batches wholly before the resume point were judged by that run.
    while (
      this.nextBatch < this.byFirstSeq.length &&
      Number((this.byFirstSeq[this.nextBatch] as { info: BatchInfo }).info.lastSeq) <
        resume.treeSize
    )
      this.nextBatch++;
  }

  /**
   * Step 1: each line checked and hashed (line-check.ts), on the checker threads when the
   * reader hands over bytes, and put into the window in storage order.
   */
  async read(reader: ChainReader, problems: ReadProblems): Promise<void> {
    const checkers = this.options.lineCheckers ?? INLINE;
    const chainId = this.chainId;
    if (reader.recordBytes === undefined) {
      for await (const page of reader.records(problems, this.resumeFrom)) {
        const texts = page.map((line) => line.text);
        this.take(checkLineTexts(texts, chainId), (i) => (page[i] as StoredText).location);
      }
      return;
    }
    // Pages are checked ahead of judging, in storage order, on the checker threads. While
    // the oldest is not back and the threads have their fill, this thread checks the next
    // page itself rather than wait: the work is shared however fast each side is.
    const ahead: AheadPage[] = [];
    const depth = checkers.depth;
    checkers.prewarm();
    for await (const page of reader.recordBytes(problems, this.resumeFrom)) {
      const waiting = ahead.length >= depth && !(ahead[0] as AheadPage).settled;
      ahead.push(
        waiting || !checkers.anyReady
          ? checkedHere(page, chainId)
          : checkers.dispatch(page, chainId),
      );
      while (ahead.length > 0 && (ahead[0] as AheadPage).settled) await this.takeNext(ahead);
      while (ahead.length >= 2 * depth) await this.takeNext(ahead);
    }
    while (ahead.length > 0) await this.takeNext(ahead);
  }

  private async takeNext(ahead: AheadPage[]): Promise<void> {
    const next = ahead.shift() as AheadPage;
    this.take(await next.result, next.locate);
  }

  /** A checked page into the window; its invalid lines are `malformed`. */
  private take(checked: CheckedLines, locate: (i: number) => string): void {
    const page: CheckedPage = Object.assign(checked, { locate });
    const seqs = page.seqs;
    for (let i = 0; i < page.count; i++) {
      const seq = seqs[i] as number;
      if (Number.isNaN(seq)) {
        this.addMalformed("malformed", locate(i), page.problems.get(i) as string);
        continue;
      }
      // A source may hand over records an earlier run verified: they are not judged again.
      if (seq < this.resumeFrom) continue;
      this.window.add(new PageRecord(seq, page, i));
    }
    this.linesRead += page.count;
    this.options.onRecords?.(this.chainId, this.linesRead);
  }

  /** Steps 4 (continued) and 5 for each kept record, in ascending seq. */
  private keep(rec: WindowRecord): void {
    const { seq } = rec;
    if (!this.gapSeen && seq === this.count) {
      this.contiguous++;
      this.tree.appendFrom(rec.hashes, rec.at);
      if (this.checkpointSizes.has(this.tree.size))
        this.roots.set(this.tree.size, this.tree.root().toString("hex"));
      if (this.batchEnds.has(this.tree.size))
        this.sealedPoint = {
          size: this.tree.size,
          frontier: Frontier.restore(this.tree.save()),
          lastLeaf: leafOf(rec),
        };
    } else this.gapSeen = true;
    this.count++;
    this.firstSeq ??= seq;
    this.lastSeq = seq;
    if (rec instanceof PageRecord) rec.addTimeTo(this.times);
    else this.times.add(rec.time);
    // A batch is judged once its records' links are (the record after it checks its last).
    this.closeBatchesBefore(seq);
    while (
      this.nextBatch < this.byFirstSeq.length &&
      Number((this.byFirstSeq[this.nextBatch] as { info: BatchInfo }).info.firstSeq) <= seq
    ) {
      const { info, order } = this.byFirstSeq[this.nextBatch++] as {
        info: BatchInfo;
        order: number;
      };
      const first = Number(info.firstSeq);
      const last = Number(info.lastSeq);
      this.open.push({
        info,
        order,
        first,
        last,
        held: 0,
        tree: new BatchLeaves(last - first + 1),
      });
    }
    for (const b of this.open) {
      if (seq < b.first || seq > b.last) continue;
      b.held++;
      b.tree.append(rec.hashes, rec.at);
    }
    if (seq > Math.max(this.sealedThrough, this.claimedThrough))
      this.addSealed(
        "inserted",
        rec.location,
        `seq ${seq} is not covered by any signed batch (the last signed batch ends at ${this.sealedThrough}): forged, or written after the last seal`,
        { seq },
      );
  }

  /** Judges the open batches that end before `seq`. */
  private closeBatchesBefore(seq: number): void {
    for (let i = 0; i < this.open.length;) {
      const b = this.open[i] as OpenBatch;
      if (b.last < seq) {
        this.judgeBatch(b);
        this.open.splice(i, 1);
      } else i++;
    }
  }

  /** The kept records are all in: the last gap, and every batch not yet judged. */
  finish(): void {
    const next = this.window.end();
    for (const b of this.open) this.judgeBatch(b);
    this.open.length = 0;
    // Batches whose first seq was never reached hold none of their records.
    for (; this.nextBatch < this.byFirstSeq.length; this.nextBatch++) {
      const { info, order } = this.byFirstSeq[this.nextBatch] as { info: BatchInfo; order: number };
      if (Number(info.lastSeq) < this.resumeFrom) continue;
      const first = Number(info.firstSeq);
      this.judgeBatch({
        info,
        order,
        first,
        last: Number(info.lastSeq),
        held: 0,
        tree: new BatchLeaves(0),
      });
    }
    if (next <= this.sealedThrough) {
      const sealing = this.batches.find((b) => Number(b.lastSeq) >= next) as BatchInfo;
      this.steps.adder(this.steps.links)(
        "missing",
        sealing.location,
        `records ${range(next, this.sealedThrough)} are absent from the end of the chain, though signed batches seal them`,
        { seq: next, lastSeq: this.sealedThrough },
      );
    }
  }

  /** Step 5 for one batch: it must match the kept records exactly. */
  private judgeBatch(b: OpenBatch): void {
    const { info, first, last, held } = b;
    const add = this.steps.adder(this.steps.batches[b.order] as Finding[]);
    const absent = last - first + 1 - held;
    if (absent > 0) {
      if (held === 0)
        add(
          "missing",
          info.location,
          `all ${absent} records of signed batch ${info.index} (seq ${range(first, last)}) are absent`,
          { seq: first, lastSeq: last, manifest: Number(info.index) },
        );
      return; // individual gaps were reported by the link check
    }
    const root = held === 0 ? EMPTY_TREE_HASH.toString("hex") : b.tree.root().toString("hex");
    if (root === info.batchRoot) return;
    const linked =
      firstAtOrAfter(this.modifiedSeqs, first) <= last ||
      this.steps.reader.some(
        (f) => f.category === "modified" && f.seq !== undefined && f.seq >= first && f.seq <= last,
      );
    if (!linked) batchRootMismatch(add, info.location, first, last, info.index);
  }

  /** The root of the kept records [from, to) by position, for step 6 (from is 0). */
  readonly rootHex = (from: number, to: number): string =>
    from === to ? EMPTY_TREE_HASH.toString("hex") : (this.roots.get(to) as string);

  /** What this clean run establishes: the tree through the last batch held whole from seq 0. */
  state(verified: ManifestsVerified, tally: CheckpointTally): ChainState | null {
    const point = this.sealedPoint;
    if (point === null) return null;
    const checkpointRoots: Record<string, string> = {};
    for (const [size, root] of this.roots) if (size <= point.size) checkpointRoots[size] = root;
    return {
      chainId: this.chainId,
      treeSize: point.size,
      frontier: point.frontier.save(),
      root: point.frontier.root().toString("hex"),
      lastLeaf: point.lastLeaf.toString("hex"),
      checkpointRoots,
      firstReceived: this.times.earliest,
      lastReceived: this.times.latest,
      verifiedAt: new Date().toISOString(),
      manifests: {
        ...verified,
        batches: this.earlier.batches + this.batches.length,
        keys: this.keys(),
        sealedThrough: this.sealedThrough,
        checkpoints: tally.checkpoints,
        latestCheckpoint: tally.latest && {
          size: tally.latest.size,
          rootHash: tally.latest.rootHash.toString("hex"),
          origin: tally.latest.origin,
          cosigners: tally.latestCosigners,
        },
        origin: tally.origin,
      },
    };
  }

  /** The keys that signed the verified batches, earlier runs' included. */
  private keys(): string[] {
    return [...new Set([...this.earlier.keys, ...this.batches.map((b) => b.keyId)])];
  }

  summary(tally: CheckpointTally, notes: readonly string[]): ChainSummary {
    const latest = tally.latest;
    return {
      chainId: this.chainId,
      records: this.count,
      firstSeq: this.firstSeq,
      lastSeq: this.lastSeq,
      firstReceived: this.times.earliest === null ? null : nanosToIso(BigInt(this.times.earliest)),
      lastReceived: this.times.latest === null ? null : nanosToIso(BigInt(this.times.latest)),
      batches: this.earlier.batches + this.batches.length,
      sealedThrough: this.sealedThrough,
      keys: this.keys(),
      checkpoints: tally.checkpoints,
      latestCheckpoint: latest
        ? {
            size: latest.size,
            rootHash: latest.rootHash.toString("hex"),
            origin: latest.origin,
            cosigners: tally.latestCosigners,
          }
        : null,
      notes: [...notes],
    };
  }
}

/** The first of the ascending `seqs` at or after `seq` (Infinity when none is). */
function firstAtOrAfter(seqs: readonly number[], seq: number): number {
  let lo = 0;
  let hi = seqs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((seqs[mid] as number) < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo < seqs.length ? (seqs[lo] as number) : Number.POSITIVE_INFINITY;
}

/** Checking on the judging thread, for readers that hand over text and when none is given. */
const INLINE = new LineCheckers(0);

function checkedHere(page: RecordBytes, chainId: string): AheadPage {
  return {
    result: Promise.resolve(checkLineBytes(page.bytes, chainId)),
    locate: page.locate,
    settled: true,
  };
}

/** A checked page and where its lines are stored. */
type CheckedPage = CheckedLines & { locate: (i: number) => string };

/**
 * A record of a checked page: its seq, and where it is in the page. Everything else is read
 * from the page when needed, so a record held in the window is one small object.
 */
class PageRecord implements WindowRecord {
  constructor(
    readonly seq: number,
    private readonly page: CheckedPage,
    private readonly index: number,
  ) {}

  get hashes(): Buffer {
    return this.page.hashes;
  }

  get at(): number {
    return 64 * this.index;
  }

  get location(): string {
    return this.page.locate(this.index);
  }

  get time(): string {
    const times = new ReceiveTimes();
    this.addTimeTo(times);
    return times.earliest ?? "";
  }

  addTimeTo(times: ReceiveTimes): void {
    const i = this.index;
    if (this.page.longTimes.size > 0) {
      const long = this.page.longTimes.get(i);
      if (long !== undefined) times.add(long);
    }
    const sec = this.page.times[2 * i] as number;
    if (!Number.isNaN(sec)) times.addParts(sec, this.page.times[2 * i + 1] as number);
  }
}

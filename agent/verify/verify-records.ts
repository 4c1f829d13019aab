import { checkEnvelope } from "../integrity/chain-check.js";
import { genesisHash } from "../integrity/format.js";
import { hashLines } from "./leaf-hashes.js";
import { ReceiveTimes } from "./receive-times.js";
import type { Finding, StoredText } from "./types.js";
import { type AddFinding, range } from "./verify-findings.js";
import type { BatchInfo } from "./verify-manifests.js";

/**
 * Steps 1, 3 and 4 of verifyChain (verify-chain.ts): the record lines of one chain scanned and
 * hashed, one copy kept per seq, and the kept records' contiguity and links. These loops run
 * once per record: they keep to plain loops over the lines, and per record to a Rec and 32
 * bytes of its `prev`.
 */

export interface Rec {
  seq: number;
  /** Its index in the stored lines, and in the leaf hashes computed for them. */
  line: number;
  text: string;
  location: string;
}

/** The record lines as scanned in step 1. */
export interface ScannedLines {
  /** Each line's record, or what is wrong with it. */
  parsed: (Rec | string)[];
  /** Each record's `prev` link, 32 bytes at 32 × its line. */
  prevs: Buffer;
  /** Each line's leaf hash, 32 bytes at 32 × its line. */
  digests: Buffer;
  /** The roots of the ranges asked for, over the lines in storage order, 32 bytes each. */
  inOrderRoots: Buffer;
  /** The receive times of the records scanned. */
  times: ReceiveTimes;
}

/** The 32 bytes at 32 × `line` of `hashes` (digests or prevs), in hex. */
export function hexAt(hashes: Buffer, line: number): string {
  return hashes.toString("hex", 32 * line, 32 * line + 32);
}

/**
 * Step 1: parses each line while its leaf hash is computed alongside (leaf-hashes.ts), with
 * the tree roots of `ranges` over the lines in storage order. A record's `prev` is kept as
 * bytes, and its receive time only in the summary's range: little per record outlives the
 * scan.
 */
export async function scanLines(
  lines: readonly StoredText[],
  chainId: string,
  ranges: readonly [number, number][],
  hashOnWorker: boolean | undefined,
): Promise<ScannedLines> {
  const parsed: (Rec | string)[] = new Array<Rec | string>(lines.length);
  const prevs = Buffer.alloc(32 * lines.length);
  const times = new ReceiveTimes();
  const scan = (i: number): Rec | string => {
    const line = lines[i] as StoredText;
    const env = checkEnvelope(line.text);
    if (typeof env === "string") return env;
    if (env.chainId !== chainId)
      return `record of chain ${env.chainId} stored with chain ${chainId}`;
    prevs.write(env.prev, 32 * i, 32, "hex");
    times.add(env.timeReceivedUnixNano);
    return { seq: Number(env.seq), line: i, text: line.text, location: line.location };
  };
  const { digests, roots } = await hashLines(
    lines,
    (start, end) => {
      for (let i = start; i < end; i++) parsed[i] = scan(i);
    },
    ranges,
    hashOnWorker,
  );
  return { parsed, prevs, digests, inOrderRoots: roots, times };
}

/** The records of step 1 by seq, before one copy of each seq is picked. */
export interface FirstCopies {
  /** The first copy of each seq, in storage order. */
  firstCopies: Rec[];
  /** The first copies by seq, made once a seq repeats or goes back (else null). */
  bySeq: Map<number, Rec> | null;
  /** Every copy, for the seqs stored more than once. */
  copies: Map<number, Rec[]>;
  /** A finding for each record stored after a higher seq. */
  reordered: Finding[];
}

/**
 * Step 1, continued: keeps the first copy of each seq, and notes the storage order. Records
 * must be stored in ascending seq order: a later copy of an earlier seq is judged in step 3,
 * any other record stored after a higher seq is reordered. Lines that are not records are
 * reported (to `add`) as malformed.
 */
export function keepFirstCopies(
  parsed: readonly (Rec | string)[],
  lines: readonly StoredText[],
  chainId: string,
  add: AddFinding,
): FirstCopies {
  const firstCopies: Rec[] = [];
  let bySeq: Map<number, Rec> | null = null; // made once a seq repeats or goes back
  const copies = new Map<number, Rec[]>(); // every copy, for the seqs stored more than once
  const reordered: Finding[] = [];
  let maxSeq = -1;
  for (const [i, rec] of parsed.entries()) {
    if (typeof rec === "string") {
      add("malformed", (lines[i] as StoredText).location, rec);
      continue;
    }
    if (rec.seq > maxSeq) {
      firstCopies.push(rec);
      bySeq?.set(rec.seq, rec);
      maxSeq = rec.seq;
      continue;
    }
    bySeq ??= new Map(firstCopies.map((r) => [r.seq, r]));
    const first = bySeq.get(rec.seq);
    if (first === undefined) {
      firstCopies.push(rec);
      bySeq.set(rec.seq, rec);
      const detail = `seq ${rec.seq} is stored after seq ${maxSeq}`;
      reordered.push({
        category: "reordered",
        chainId,
        location: rec.location,
        detail,
        seq: rec.seq,
      });
    } else {
      const list = copies.get(rec.seq);
      if (list) list.push(rec);
      else copies.set(rec.seq, [first, rec]);
    }
  }
  return { firstCopies, bySeq, copies, reordered };
}

/**
 * Step 3: picks one copy per seq, the one the signed chain commits to, and reports the others.
 * Returns the kept records in ascending seq.
 */
export function pickGenuineCopies(
  kept: FirstCopies,
  batches: readonly BatchInfo[],
  scanned: ScannedLines,
  add: AddFinding,
): Rec[] {
  const { firstCopies, bySeq, copies, reordered } = kept;
  const committed = new Map<number, string>(); // seq → leaf hash committed by a manifest (lastLeaf / prevLeaf)
  for (const b of batches) {
    committed.set(Number(b.lastSeq), b.lastLeaf);
    if (Number(b.firstSeq) > 0) committed.set(Number(b.firstSeq) - 1, b.prevLeaf);
  }
  const genuineCopy = new Map<number, Rec>();
  for (const [seq, list] of [...copies].sort((a, b) => a[0] - b[0])) {
    const first = list[0] as Rec;
    const distinct = new Map(list.map((r) => [r.text, r]));
    if (distinct.size === 1) {
      for (const extra of list.slice(1))
        add(
          "duplicate",
          extra.location,
          `a second identical copy of seq ${seq} (first at ${first.location})`,
          { seq },
        );
      continue;
    }
    const next = bySeq?.get(seq + 1);
    const nextPrev = next && hexAt(scanned.prevs, next.line);
    const expected = committed.get(seq) ?? nextPrev;
    const genuine = list.find((r) => hexAt(scanned.digests, r.line) === expected) ?? first;
    genuineCopy.set(seq, genuine);
    for (const r of list) {
      if (r === genuine || r.text === genuine.text) continue;
      add(
        "inserted",
        r.location,
        `a different record claiming seq ${seq}; the chain commits to the one at ${genuine.location}`,
        { seq },
      );
    }
  }
  // The kept records in ascending seq. First copies were stored in ascending order unless
  // some were reordered.
  let ordered = reordered.length > 0 ? [...firstCopies].sort((a, b) => a.seq - b.seq) : firstCopies;
  if (genuineCopy.size > 0) ordered = ordered.map((r) => genuineCopy.get(r.seq) ?? r);
  return ordered;
}

/**
 * Step 4: contiguity and links of the kept records (ascending seqs), and a gap at the end,
 * which has no later record to reveal it: the signed batches that seal it do.
 */
export function checkLinks(
  ordered: readonly Rec[],
  chainId: string,
  scanned: ScannedLines,
  batches: readonly BatchInfo[],
  add: AddFinding,
): void {
  const { digests, prevs } = scanned;
  let expectedSeq = 0;
  const genesis = genesisHash(chainId);
  for (let i = 0; i < ordered.length; i++) {
    const rec = ordered[i] as Rec;
    const seq = rec.seq;
    if (seq > expectedSeq)
      add(
        "missing",
        rec.location,
        `records ${range(expectedSeq, seq - 1)} are absent before seq ${seq}`,
        { seq: expectedSeq, lastSeq: seq - 1 },
      );
    const before = ordered[i - 1];
    const prevRec = before?.seq === seq - 1 ? before : undefined;
    const at = 32 * rec.line;
    const linked =
      seq === 0
        ? genesis.compare(prevs, at, at + 32) === 0
        : prevRec === undefined ||
          digests.compare(prevs, at, at + 32, 32 * prevRec.line, 32 * prevRec.line + 32) === 0;
    if (!linked) {
      const culprit = seq === 0 ? rec : (prevRec as Rec);
      const computed = seq === 0 ? genesis.toString("hex") : hexAt(digests, culprit.line);
      add(
        "modified",
        culprit.location,
        `seq ${culprit.seq} does not match the link stored in seq ${seq} (prev ${hexAt(prevs, rec.line).slice(0, 16)}…, computed ${computed.slice(0, 16)}…)`,
        { seq: culprit.seq },
      );
    }
    expectedSeq = seq + 1;
  }
  const signedThrough = batches.reduce((max, b) => Math.max(max, Number(b.lastSeq)), -1);
  if (expectedSeq <= signedThrough) {
    const sealing = batches.find((b) => Number(b.lastSeq) >= expectedSeq) as BatchInfo;
    add(
      "missing",
      sealing.location,
      `records ${range(expectedSeq, signedThrough)} are absent from the end of the chain, though signed batches seal them`,
      { seq: expectedSeq, lastSeq: signedThrough },
    );
  }
}

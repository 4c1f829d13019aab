import { genesisHash } from "../integrity/format.js";
import type { AddFinding } from "./verify-findings.js";
import { range } from "./verify-findings.js";

/**
 * Steps 1, 3 and 4 of verification (docs/integrity-format.md §7) over a stream of records
 * in storage order, holding a window of records rather than the chain. Records are stored
 * in ascending seq; a record is judged once the stream has gone `size` seqs past it, so a
 * copy or a reorder within that window is judged exactly as with the whole chain in hand:
 * one copy per seq is kept (the one the signed chain commits to), then the kept records'
 * contiguity and links are checked in seq order. Later than that, a copy is compared with
 * what was kept for its seq while that is remembered (another `size` seqs).
 */

/**
 * One record line, parsed and hashed. Its leaf hash and `prev` are 64 bytes of a buffer
 * shared by a page of records (line-check.ts): read in place, not copied out per record.
 */
export interface WindowRecord {
  seq: number;
  /** Bytes `at` to `at + 32` are the leaf hash, the next 32 the `prev` link. */
  hashes: Buffer;
  at: number;
  /** Where it is stored; may be worked out when read (only findings read it). */
  readonly location: string;
  time: string;
}

/** A record's leaf hash (a view, not a copy). */
export function leafOf(rec: WindowRecord): Buffer {
  return rec.hashes.subarray(rec.at, rec.at + 32);
}

/** A record's `prev` (a view, not a copy). */
export function prevOf(rec: WindowRecord): Buffer {
  return rec.hashes.subarray(rec.at + 32, rec.at + 64);
}

/** Whether two records have the same leaf hash (the same bytes). */
function sameLeaf(a: WindowRecord, b: WindowRecord): boolean {
  return a.hashes.compare(b.hashes, b.at, b.at + 32, a.at, a.at + 32) === 0;
}

/** Whether `rec`'s prev is the leaf hash of `before`: the link between them holds. */
function linksTo(rec: WindowRecord, before: WindowRecord): boolean {
  return (
    rec.hashes.compare(before.hashes, before.at, before.at + 32, rec.at + 32, rec.at + 64) === 0
  );
}

/** A record built from its parts, for records not read from a page. */
export function windowRecord(
  seq: number,
  leaf: Buffer,
  prev: Buffer,
  location: string,
  time: string,
): WindowRecord {
  return { seq, hashes: Buffer.concat([leaf, prev]), at: 0, location, time };
}

/** Where each step reports, so the report keeps the order of the steps. */
export interface WindowReports {
  /** Step 1: a record stored after a higher seq. */
  reordered: AddFinding;
  /** Step 3: copies of one seq. */
  copies: AddFinding;
  /** Step 4: gaps and links. */
  links: AddFinding;
}

/** The records kept, in ascending seq, as they are judged. */
export type KeptRecordSink = (rec: WindowRecord) => void;

/** Copies of one seq compared in the window; more are judged as they come. */
const MAX_COPIES = 16;

/**
 * The window is 16,384 records: copies and reorders that happen in practice (a re-sent batch,
 * a retried write, records of concurrent writers) are far closer than that, and it holds
 * the window in about 10 MiB.
 */
export class RecordWindow {
  /** The records held, not yet judged: see Held. */
  private readonly pending: Held;
  private readonly order = new MinHeap();
  private maxSeq = -1;
  /** Seqs below this are judged. */
  private judgedBelow = 0;
  /**
   * What was kept for the most recently judged seqs (leaf hash, location of the first copy
   * and of the kept one), in a ring indexed by seq: a Map evicted from the front costs more
   * with each eviction, as its iteration steps over every deleted entry.
   */
  private readonly recent: RecentRing;
  private expectedSeq = 0;
  private last: WindowRecord | null = null;
  private readonly genesis: Buffer;

  constructor(
    chainId: string,
    /** Leaf hashes the signed manifests commit to, by seq (lastLeaf, prevLeaf), in hex. */
    private readonly committed: ReadonlyMap<number, string>,
    private readonly report: WindowReports,
    private readonly keep: KeptRecordSink,
    private readonly size = 16_384,
    /** The last record verified by an earlier run: judging starts after it. */
    resumeAfter?: { seq: number; leaf: Buffer },
  ) {
    this.genesis = genesisHash(chainId);
    this.recent = new RecentRing(size);
    this.pending = new Held(size);
    if (resumeAfter) {
      const { seq, leaf } = resumeAfter;
      this.maxSeq = seq;
      this.judgedBelow = this.expectedSeq = seq + 1;
      this.last = windowRecord(seq, leaf, leaf, "(verified earlier)", "");
    }
  }

  /** The seq after the last record kept so far. */
  get nextSeq(): number {
    return this.expectedSeq;
  }

  add(rec: WindowRecord): void {
    const { seq } = rec;
    if (seq > this.maxSeq) {
      this.maxSeq = seq;
      // Judged first: what is held then lies within `size` seqs of this one (see Held).
      this.judgeUpTo(seq - this.size);
      this.hold(rec);
    } else if (seq >= this.judgedBelow) {
      const copies = this.pending.get(seq);
      if (copies === undefined) {
        this.report.reordered(
          "reordered",
          rec.location,
          `seq ${seq} is stored after seq ${this.maxSeq}`,
          {
            seq,
          },
        );
        this.hold(rec);
      } else if (!Array.isArray(copies)) this.pending.set(seq, [copies, rec]);
      else if (copies.length < MAX_COPIES) copies.push(rec);
      else this.judgeLateCopy(rec);
    } else this.judgeLateCopy(rec);
  }

  /** Judges every record still held; returns the seq after the last one kept. */
  end(): number {
    this.judgeUpTo(Number.POSITIVE_INFINITY);
    return this.expectedSeq;
  }

  private hold(rec: WindowRecord): void {
    this.pending.set(rec.seq, rec);
    this.order.push(rec.seq);
  }

  private judgeUpTo(seq: number): void {
    while (this.order.size > 0 && this.order.peek() <= seq) this.judge(this.order.pop());
  }

  /** Step 3 for one seq: keeps the copy the chain commits to and reports the others. */
  private judge(seq: number): void {
    const held = this.pending.get(seq) as WindowRecord | WindowRecord[];
    this.pending.delete(seq);
    this.judgedBelow = seq + 1;
    const first = Array.isArray(held) ? (held[0] as WindowRecord) : held;
    let kept = first;
    if (Array.isArray(held)) {
      const copies = held;
      const distinct = copies.some((c) => !sameLeaf(c, first));
      if (!distinct) {
        for (const extra of copies.slice(1))
          this.report.copies(
            "duplicate",
            extra.location,
            `a second identical copy of seq ${seq} (first at ${first.location})`,
            { seq },
          );
      } else {
        const after = this.pending.get(seq + 1);
        const next = Array.isArray(after) ? after[0] : after;
        const expected = this.committed.get(seq) ?? (next && prevOf(next).toString("hex"));
        kept = copies.find((c) => leafOf(c).toString("hex") === expected) ?? first;
        for (const c of copies) {
          if (c === kept || sameLeaf(c, kept)) continue;
          this.report.copies(
            "inserted",
            c.location,
            `a different record claiming seq ${seq}; the chain commits to the one at ${kept.location}`,
            { seq },
          );
        }
      }
    }
    this.recent.set(seq, first, kept);
    this.link(kept);
  }

  /** A copy of a seq already judged: compared with what was kept for it. */
  private judgeLateCopy(rec: WindowRecord): void {
    const known = this.recent.get(rec.seq);
    if (known === undefined) {
      this.report.reordered(
        "reordered",
        rec.location,
        `seq ${rec.seq} is stored after seq ${this.maxSeq}, more than ${this.size} records from its place`,
        { seq: rec.seq },
      );
    } else if (sameLeaf(known.kept, rec)) {
      this.report.copies(
        "duplicate",
        rec.location,
        `a second identical copy of seq ${rec.seq} (first at ${known.first.location})`,
        { seq: rec.seq },
      );
    } else {
      this.report.copies(
        "inserted",
        rec.location,
        `a different record claiming seq ${rec.seq}; the chain commits to the one at ${known.kept.location}`,
        { seq: rec.seq },
      );
    }
  }

  /** Step 4 for the next kept record: a gap before it, and its link to the one before. */
  private link(rec: WindowRecord): void {
    const { seq } = rec;
    if (seq > this.expectedSeq)
      this.report.links(
        "missing",
        rec.location,
        `records ${range(this.expectedSeq, seq - 1)} are absent before seq ${seq}`,
        { seq: this.expectedSeq, lastSeq: seq - 1 },
      );
    const before = this.last?.seq === seq - 1 ? this.last : null;
    const linked =
      seq === 0 ? this.genesis.equals(prevOf(rec)) : before === null || linksTo(rec, before);
    if (!linked) {
      const culprit = seq === 0 ? rec : (before as WindowRecord);
      const computed = seq === 0 ? this.genesis : leafOf(culprit);
      this.report.links(
        "modified",
        culprit.location,
        `seq ${culprit.seq} does not match the link stored in seq ${seq} (prev ${prevOf(rec).toString("hex", 0, 8)}…, computed ${computed.toString("hex", 0, 8)}…)`,
        { seq: culprit.seq },
      );
    }
    this.expectedSeq = seq + 1;
    this.last = rec;
    this.keep(rec);
  }
}

/**
 * The records held in the window, by seq: one record, or its copies in storage order. Seqs
 * held lie, but for a record stored far out of place, within `size` seqs below the highest
 * seen (RecordWindow judges the rest before it holds a higher one): a ring indexed by seq
 * modulo size holds them without a Map's cost per record, and a Map the rare one whose slot
 * is taken.
 */
class Held {
  private readonly seqs: Float64Array;
  private readonly records: (WindowRecord | WindowRecord[] | undefined)[];
  private readonly displaced = new Map<number, WindowRecord | WindowRecord[]>();

  constructor(private readonly size: number) {
    this.seqs = new Float64Array(size).fill(-1);
    this.records = new Array<WindowRecord | WindowRecord[] | undefined>(size);
  }

  get(seq: number): WindowRecord | WindowRecord[] | undefined {
    const i = seq % this.size;
    if (this.seqs[i] === seq) return this.records[i];
    return this.displaced.size === 0 ? undefined : this.displaced.get(seq);
  }

  set(seq: number, held: WindowRecord | WindowRecord[]): void {
    const i = seq % this.size;
    if (this.seqs[i] === -1 || this.seqs[i] === seq) {
      this.seqs[i] = seq;
      this.records[i] = held;
    } else this.displaced.set(seq, held);
  }

  delete(seq: number): void {
    const i = seq % this.size;
    if (this.seqs[i] === seq) {
      this.seqs[i] = -1;
      this.records[i] = undefined;
    } else this.displaced.delete(seq);
  }
}

/**
 * The last `size` judged seqs' first and kept copies, each at seq modulo size. The records
 * are kept rather than their locations: a location is only worked out for a finding.
 */
class RecentRing {
  private readonly seqs: Float64Array;
  private readonly firsts: (WindowRecord | undefined)[];
  private readonly kepts: (WindowRecord | undefined)[];

  constructor(private readonly size: number) {
    this.seqs = new Float64Array(size).fill(-1);
    this.firsts = new Array<WindowRecord | undefined>(size);
    this.kepts = new Array<WindowRecord | undefined>(size);
  }

  set(seq: number, first: WindowRecord, kept: WindowRecord): void {
    const i = seq % this.size;
    this.seqs[i] = seq;
    this.firsts[i] = first;
    this.kepts[i] = kept;
  }

  get(seq: number): { first: WindowRecord; kept: WindowRecord } | undefined {
    const i = seq % this.size;
    if (this.seqs[i] !== seq) return undefined;
    return { first: this.firsts[i] as WindowRecord, kept: this.kepts[i] as WindowRecord };
  }
}

/** A binary min-heap of numbers: the seqs held, smallest first. */
class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): number {
    return this.items[0] as number;
  }

  push(n: number): void {
    const a = this.items;
    a.push(n);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((a[parent] as number) <= n) break;
      a[i] = a[parent] as number;
      i = parent;
    }
    a[i] = n;
  }

  pop(): number {
    const a = this.items;
    const top = a[0] as number;
    const last = a.pop() as number;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && (a[r] as number) < (a[l] as number) ? r : l;
        if ((a[c] as number) >= last) break;
        a[i] = a[c] as number;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

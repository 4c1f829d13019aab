import { checkEnvelope } from "../integrity/chain-check.js";
import { leafHashHex } from "../integrity/format.js";
import type { ChainReader } from "../exporters/source.js";
import type { AuditSource, Finding } from "./types.js";

/**
 * Compares two backends record by record: every record of every chain must be present,
 * byte-identical, in both. Each backend is verified on its own first; this catches a
 * backend that is internally consistent but differs from its twin (e.g. one that lost a
 * batch that no later checkpoint there covers). Both are read as streams, side by side in
 * seq order, holding a window of records from each: never a whole backend.
 */

/** How far one side may run ahead of the other before a record it lacks is reported. */
const WINDOW = 16_384;

interface Line {
  seq: number;
  /** Leaf hash of the line: equal lines, equal hashes. */
  hash: string;
  location: string;
}

export async function crossCheck(a: AuditSource, b: AuditSource): Promise<Finding[]> {
  const findings: Finding[] = [];
  const left = chainsById(a);
  const right = chainsById(b);
  let l = await left.next();
  let r = await right.next();
  while (!l.done || !r.done) {
    const lid = l.done ? null : l.value.chainId;
    const rid = r.done ? null : r.value.chainId;
    if (lid !== null && (rid === null || lid < rid)) {
      await compareChain(l.value as ChainReader, null, a, b, findings);
      l = await left.next();
    } else if (rid !== null && (lid === null || rid < lid)) {
      await compareChain(null, r.value as ChainReader, a, b, findings);
      r = await right.next();
    } else {
      await compareChain(l.value as ChainReader, r.value as ChainReader, a, b, findings);
      l = await left.next();
      r = await right.next();
    }
  }
  return findings;
}

async function* chainsById(source: AuditSource): AsyncGenerator<ChainReader> {
  yield* source.chains();
}

/** Record lines of a chain as (seq, hash), lines that are not records left out. */
async function* lines(chain: ChainReader | null): AsyncGenerator<Line> {
  if (chain === null) return;
  const quiet = { finding: () => {}, note: () => {} }; // each source's own run reports these
  for await (const page of chain.records(quiet)) {
    for (const line of page) {
      const env = checkEnvelope(line.text);
      if (typeof env === "string") continue;
      yield { seq: Number(env.seq), hash: leafHashHex(line.text), location: line.location };
    }
  }
}

/** One side of the comparison: records read and not yet matched, and those matched lately. */
class Side {
  readonly pending = new Map<number, Line>();
  readonly matched = new Float64Array(WINDOW).fill(-1);
  max = -1;
  done = false;

  constructor(
    readonly iterator: AsyncGenerator<Line>,
    readonly name: string,
  ) {}

  remember(seq: number): void {
    // A ring indexed by seq: a Map evicted from the front slows with every eviction.
    this.matched[seq % WINDOW] = seq;
  }
}

async function compareChain(
  chainA: ChainReader | null,
  chainB: ChainReader | null,
  a: AuditSource,
  b: AuditSource,
  findings: Finding[],
): Promise<void> {
  const chainId = (chainA ?? chainB)?.chainId as string;
  const left = new Side(lines(chainA), a.description);
  const right = new Side(lines(chainB), b.description);
  const missing = (from: Side, to: Side, line: Line) =>
    findings.push({
      category: "missing",
      chainId,
      seq: line.seq,
      location: to.name,
      detail: `seq ${line.seq} is in ${from.name} (${line.location}) but not in ${to.name}`,
    });
  const take = (side: Side, other: Side, line: Line) => {
    if (side.pending.has(line.seq) || side.matched[line.seq % WINDOW] === line.seq) return; // a copy: judged per source
    side.max = Math.max(side.max, line.seq);
    const twin = other.pending.get(line.seq);
    if (twin === undefined) {
      side.pending.set(line.seq, line);
      return;
    }
    other.pending.delete(line.seq);
    other.remember(line.seq);
    side.remember(line.seq);
    if (twin.hash !== line.hash) {
      const [first, second] = side === left ? [line, twin] : [twin, line];
      findings.push({
        category: "modified",
        chainId,
        seq: line.seq,
        location: `${first.location} vs ${second.location}`,
        detail: `seq ${line.seq} differs between ${left.name} and ${right.name}`,
      });
    }
  };
  // Records the other side has gone WINDOW seqs past (or finished without) are absent there.
  const settle = (side: Side, other: Side) => {
    const horizon = other.done ? Number.POSITIVE_INFINITY : other.max - WINDOW;
    for (const [seq, line] of side.pending) {
      if (seq >= horizon) continue;
      side.pending.delete(seq);
      missing(side, other, line);
    }
  };
  let pulls = 0;
  while (!left.done || !right.done) {
    // Read from the side that is behind, so both move through the chain together.
    const side = right.done || (!left.done && left.max <= right.max) ? left : right;
    const other = side === left ? right : left;
    const next = await side.iterator.next();
    if (next.done) side.done = true;
    else take(side, other, next.value);
    if (++pulls % 4096 === 0 || next.done) {
      settle(side, other);
      settle(other, side);
    }
  }
  settle(left, right);
  settle(right, left);
}

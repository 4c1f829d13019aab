import type { Finding, FindingCategory } from "./types.js";

/**
 * How the steps of verifyChain (verify-chain.ts) report: each adds its findings for one chain
 * through an AddFinding, to a list the caller chooses, so that the report keeps the order of
 * the steps whatever order they run in.
 */

/**
 * Where in the chain a finding applies: the first seq, or the manifest index, it concerns,
 * and the last one when it concerns a range.
 */
export interface FindingAt {
  seq?: number;
  lastSeq?: number;
  manifest?: number;
  lastManifest?: number;
}

export type AddFinding = (
  category: FindingCategory,
  location: string,
  detail: string,
  at?: FindingAt,
) => void;

/** Adds findings of chain `chainId` to `list`. */
export function findingAdder(list: Finding[], chainId: string): AddFinding {
  return (category, location, detail, at = {}) => {
    list.push({ category, chainId, location, detail, ...at });
  };
}

/** A range of seqs or indexes as findings spell it: `a`, or `a..b`. */
export function range(a: number, b: number): string {
  return a === b ? String(a) : `${a}..${b}`;
}

/** A receive time (unix nanoseconds) as an ISO date, or as nanoseconds when out of range. */
export function nanosToIso(nanos: bigint): string {
  const date = new Date(Number(nanos / 1000000n));
  return Number.isNaN(date.getTime()) ? `${nanos} ns` : date.toISOString();
}

/** Step 5's finding for a batch whose records do not reproduce its signed Merkle root. */
export function batchRootMismatch(
  add: AddFinding,
  location: string,
  first: number,
  last: number,
  index: string,
): void {
  add(
    "modified",
    location,
    `records ${range(first, last)} do not match the Merkle root signed in batch ${index}: they were altered and re-chained`,
    { seq: first, lastSeq: last, manifest: Number(index) },
  );
}

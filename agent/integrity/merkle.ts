import { createHash } from "node:crypto";
import { nodeHash } from "./format.js";

/**
 * RFC 6962 §2.1 / RFC 9162 §2.1 Merkle trees over leaf hashes: tree hashes, inclusion
 * proofs (audit paths) and consistency proofs, plus their verification. Inputs are the
 * leaf hashes themselves (SHA-256(0x00 || data)), so callers hash each leaf once.
 *
 * `HashSource` lets a caller answer MTH(D[a:b]) from stored subtree hashes instead of
 * recomputing from leaves: proofs only ever ask for subtrees of the RFC's decomposition.
 */

export type Hash = Uint8Array;

export const EMPTY_TREE_HASH: Buffer = createHash("sha256").digest();

/**
 * Whether n (a positive safe integer) is a power of two. Not `n & (n - 1)`: bitwise
 * operators truncate to 32 bits, and trees pass 2^32 records (5 days at 10,000/s).
 */
export function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

/** Largest power of two strictly smaller than n (n ≥ 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Gives MTH(D[start:end]) for 0 ≤ start < end; may read storage, hence async. */
export type HashSource = (start: number, end: number) => Hash | Promise<Hash>;

/** A HashSource computing from an in-memory array of leaf hashes. */
export function leavesSource(leaves: readonly Hash[]): (start: number, end: number) => Hash {
  const source = (start: number, end: number): Hash => {
    if (end - start === 1) return leaves[start] as Hash;
    const k = splitPoint(end - start);
    return nodeHash(source(start, start + k), source(start + k, end));
  };
  return source;
}

/**
 * leavesSource hashing each subtree once: for callers that build many roots and proofs over
 * one growing array of leaves (the leaves already there never change).
 */
export function memoLeavesSource(leaves: readonly Hash[]): (start: number, end: number) => Hash {
  const memo = new Map<string, Hash>();
  const source = (start: number, end: number): Hash => {
    if (end - start === 1) return leaves[start] as Hash;
    const key = `${start}:${end}`;
    let h = memo.get(key);
    if (h === undefined) {
      const k = splitPoint(end - start);
      h = nodeHash(source(start, start + k), source(start + k, end));
      memo.set(key, h);
    }
    return h;
  };
  return source;
}

/** MTH of a tree of `size` leaves. */
export async function treeHash(size: number, source: HashSource): Promise<Hash> {
  return size === 0 ? EMPTY_TREE_HASH : source(0, size);
}

/** RFC 6962 PATH(m, D[n]): the audit path of leaf `index` in a tree of `size` leaves. */
export async function inclusionProof(
  index: number,
  size: number,
  source: HashSource,
): Promise<Hash[]> {
  if (index < 0 || index >= size)
    throw new RangeError(`leaf ${index} is not in a tree of size ${size}`);
  const path: Hash[] = [];
  const walk = async (m: number, start: number, end: number): Promise<void> => {
    if (end - start === 1) return;
    const k = splitPoint(end - start);
    if (m < k) {
      await walk(m, start, start + k);
      path.push(await source(start + k, end));
    } else {
      await walk(m - k, start + k, end);
      path.push(await source(start, start + k));
    }
  };
  await walk(index, 0, size);
  return path;
}

/** RFC 6962 PROOF(m, D[n]): proves the tree of size `oldSize` is a prefix of `newSize`. */
export async function consistencyProof(
  oldSize: number,
  newSize: number,
  source: HashSource,
): Promise<Hash[]> {
  if (oldSize < 0 || oldSize > newSize)
    throw new RangeError(`no consistency proof from size ${oldSize} to ${newSize}`);
  if (oldSize === 0 || oldSize === newSize) return [];
  const proof: Hash[] = [];
  const sub = async (m: number, start: number, end: number, complete: boolean): Promise<void> => {
    const n = end - start;
    if (m === n) {
      if (!complete) proof.push(await source(start, end));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      await sub(m, start, start + k, complete);
      proof.push(await source(start + k, end));
    } else {
      await sub(m - k, start + k, end, false);
      proof.push(await source(start, start + k));
    }
  };
  await sub(oldSize, 0, newSize, true);
  return proof;
}

function equal(a: Hash, b: Hash): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/** RFC 9162 §2.1.3.2: verifies an inclusion proof against a root. */
export function verifyInclusion(
  index: number,
  size: number,
  leaf: Hash,
  proof: readonly Hash[],
  root: Hash,
): boolean {
  if (leaf.length !== 32 || root.length !== 32 || proof.some((p) => p.length !== 32)) return false;
  if (index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r: Hash = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

/** RFC 9162 §2.1.4.2: verifies a consistency proof between two roots. */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Hash,
  newRoot: Hash,
  proof: readonly Hash[],
): boolean {
  if (oldSize < 0 || oldSize > newSize) return false;
  if (oldSize === newSize) return proof.length === 0 && equal(oldRoot, newRoot);
  if (oldSize === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  if (oldRoot.length !== 32 || newRoot.length !== 32 || proof.some((p) => p.length !== 32))
    return false;
  let path = [...proof];
  // If the old size is a power of two, the old root is the first node of the path.
  if (isPowerOfTwo(oldSize)) path = [oldRoot, ...path];
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Hash;
  let sr = path[0] as Hash;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(fr, oldRoot) && equal(sr, newRoot);
}

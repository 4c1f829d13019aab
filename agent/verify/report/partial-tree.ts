import { nodeHash } from "../../integrity/format.js";
import { Frontier } from "../../integrity/frontier.js";
import { EMPTY_TREE_HASH, type Hash, inclusionProof, splitPoint } from "../../integrity/merkle.js";
import type { InclusionProofJson } from "../../integrity/proofs.js";

/**
 * An RFC 6962 tree that can prove the inclusion of its leaves from `keepFrom` on while
 * holding only those leaves and the frontier of the ones before (at most log2(n) hashes):
 * the report proves its newest records without keeping a hash per record of a huge log.
 *
 * Why that is enough: an inclusion proof of leaf m asks for the siblings on m's path. Those
 * to the right of m lie at or after m, so among the kept leaves; those to the left are
 * perfect subtrees aligned to their size, and one that starts before `keepFrom` is either
 * a piece of the frontier at `keepFrom` (its binary decomposition) or is made of such
 * pieces followed by kept leaves. `keepFrom` is rounded down to a multiple of a power of
 * two at least as large as the number of leaves to prove, so that no piece straddles it.
 */
export class PartialTree {
  private readonly before = new Frontier();
  private readonly kept: Buffer[] = [];
  private readonly memo = new Map<string, Hash>();
  readonly keepFrom: number;

  /** A tree whose leaves from `provable` before the end (given `expected` leaves) are kept. */
  constructor(expected: number, provable: number) {
    let align = 1;
    while (align < provable) align *= 2;
    const from = Math.max(0, expected - provable);
    this.keepFrom = from - (from % align);
  }

  get size(): number {
    return this.before.size + this.kept.length;
  }

  append(leaf: Buffer): void {
    if (this.before.size < this.keepFrom) {
      this.before.append(leaf);
      this.piecesCache = null;
    } else this.kept.push(leaf);
  }

  /** MTH of the first `size` leaves (size ≥ keepFrom). */
  root(size = this.size): Buffer {
    if (size === 0) return EMPTY_TREE_HASH;
    return Buffer.from(this.hash(0, size));
  }

  /** The inclusion proof of leaf `seq` (keepFrom ≤ seq < size) in the tree of `size` leaves. */
  async prove(seq: number, size: number): Promise<InclusionProofJson> {
    const hex = (h: Uint8Array) => Buffer.from(h).toString("hex");
    return {
      type: "inclusion",
      seq,
      treeSize: size,
      leafHash: hex(this.hash(seq, seq + 1)),
      rootHash: hex(this.root(size)),
      proof: (await inclusionProof(seq, size, (a, b) => this.hash(a, b))).map(hex),
    };
  }

  /** Whether leaf `seq` can be proven. */
  holds(seq: number): boolean {
    return seq >= this.keepFrom && seq < this.size;
  }

  private pieces(): Map<string, Hash> {
    const out = new Map<string, Hash>();
    const { hashes, widths } = this.before.save();
    let start = 0;
    widths.forEach((w, i) => {
      out.set(`${start}:${start + w}`, Buffer.from(hashes[i] as string, "hex"));
      start += w;
    });
    return out;
  }

  private piecesCache: Map<string, Hash> | null = null;

  /** MTH(D[start:end]) from the frontier's pieces and the kept leaves. */
  private hash(start: number, end: number): Hash {
    if (start >= this.keepFrom && end - start === 1)
      return this.kept[start - this.keepFrom] as Buffer;
    const key = `${start}:${end}`;
    this.piecesCache ??= this.pieces();
    const known = this.piecesCache.get(key) ?? this.memo.get(key);
    if (known) return known;
    if (end <= this.keepFrom)
      throw new RangeError(`subtree ${key} lies before the kept leaves (from ${this.keepFrom})`);
    const k = splitPoint(end - start);
    const h = nodeHash(this.hash(start, start + k), this.hash(start + k, end));
    this.memo.set(key, h);
    return h;
  }
}

import { nodeHash } from "./format.js";
import { EMPTY_TREE_HASH } from "./merkle.js";

/**
 * The RFC 6962 Merkle tree of a growing list of leaves kept as its frontier (a compact
 * range): the roots of the perfect subtrees it is made of, largest first — at most
 * log2(n) + 1 hashes however many leaves were appended. Folding them right to left gives
 * MTH(D[n]), since RFC 6962 splits a tree at the largest power of two below its size.
 */
export class Frontier {
  private readonly hashes: Buffer[] = [];
  private readonly widths: number[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** A frontier saved with save(): the tree it was taken of, to append to. */
  static restore(saved: { hashes: readonly string[]; widths: readonly number[] }): Frontier {
    const f = new Frontier();
    saved.hashes.forEach((h, i) => {
      f.hashes.push(Buffer.from(h, "hex"));
      const width = saved.widths[i] as number;
      f.widths.push(width);
      f.count += width;
    });
    return f;
  }

  /** The frontier as text, for a state file. */
  save(): { hashes: string[]; widths: number[] } {
    return { hashes: this.hashes.map((h) => h.toString("hex")), widths: [...this.widths] };
  }

  /**
   * Appends one leaf hash. A Buffer is kept as it is, not copied (a leaf hash is never
   * written to once computed); the caller must not modify it afterwards.
   */
  append(leaf: Uint8Array): void {
    let hash: Buffer = Buffer.isBuffer(leaf) ? leaf : Buffer.from(leaf);
    const hashes = this.hashes;
    const widths = this.widths;
    let width = 1;
    while (widths.length > 0 && widths[widths.length - 1] === width) {
      hash = nodeHash(hashes.pop() as Buffer, hash);
      widths.pop();
      width *= 2;
    }
    hashes.push(hash);
    widths.push(width);
    this.count++;
  }

  /** MTH of the leaves appended so far. */
  root(): Buffer {
    if (this.hashes.length === 0) return EMPTY_TREE_HASH;
    let root = this.hashes[this.hashes.length - 1] as Buffer;
    for (let i = this.hashes.length - 2; i >= 0; i--)
      root = nodeHash(this.hashes[i] as Buffer, root);
    return root;
  }
}

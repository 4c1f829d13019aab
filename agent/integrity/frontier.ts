import { hash as oneShotHash } from "node:crypto";
import { EMPTY_TREE_HASH } from "./merkle.js";

/**
 * The RFC 6962 Merkle tree of a growing list of leaves kept as its frontier (a compact
 * range): the roots of the perfect subtrees it is made of, largest first — at most
 * log2(n) + 1 hashes however many leaves were appended. Folding them right to left gives
 * MTH(D[n]), since RFC 6962 splits a tree at the largest power of two below its size.
 *
 * Hashes are held as 32-character latin1 strings, not Buffers: the verifier appends a leaf
 * per record, and a hash made as a string costs half what a Buffer does (0.36 against
 * 0.77 µs a node hash on this machine; bench/RESULTS.md).
 */
export class Frontier {
  private readonly hashes: string[] = [];
  private readonly widths: number[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** A frontier saved with save(): the tree it was taken of, to append to. */
  static restore(saved: { hashes: readonly string[]; widths: readonly number[] }): Frontier {
    const f = new Frontier();
    saved.hashes.forEach((h, i) => {
      f.hashes.push(Buffer.from(h, "hex").toString("latin1"));
      const width = saved.widths[i] as number;
      f.widths.push(width);
      f.count += width;
    });
    return f;
  }

  /** The frontier as text, for a state file. */
  save(): { hashes: string[]; widths: number[] } {
    return {
      hashes: this.hashes.map((h) => Buffer.from(h, "latin1").toString("hex")),
      widths: [...this.widths],
    };
  }

  /** Appends one leaf hash (32 bytes). */
  append(leaf: Uint8Array): void {
    const bytes = Buffer.isBuffer(leaf) ? leaf : Buffer.from(leaf.buffer, leaf.byteOffset, 32);
    this.appendLatin1(bytes.toString("latin1", 0, 32));
  }

  /** Appends the leaf hash at bytes `at` to `at + 32` of `bytes`. */
  appendFrom(bytes: Buffer, at: number): void {
    this.appendLatin1(bytes.toString("latin1", at, at + 32));
  }

  private appendLatin1(leaf: string): void {
    let hash = leaf;
    const hashes = this.hashes;
    const widths = this.widths;
    let width = 1;
    while (widths.length > 0 && widths[widths.length - 1] === width) {
      hash = nodeHashLatin1(hashes.pop() as string, hash);
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
    let root = this.hashes[this.hashes.length - 1] as string;
    for (let i = this.hashes.length - 2; i >= 0; i--)
      root = nodeHashLatin1(this.hashes[i] as string, root);
    return Buffer.from(root, "latin1");
  }
}

/** 0x01 ‖ left ‖ right, the input of a node hash, reused. */
const nodeInput = Buffer.alloc(65, 0x01);

/** RFC 6962 §2.1 interior node hash of two hashes held as latin1 strings, as one. */
export function nodeHashLatin1(left: string, right: string): string {
  nodeInput.write(left, 1, 32, "latin1");
  nodeInput.write(right, 33, 32, "latin1");
  return oneShotHash("sha256", nodeInput, "binary");
}

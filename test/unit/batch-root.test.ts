import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Frontier } from "../../agent/integrity/frontier.js";
import { EMPTY_TREE_HASH, leavesSource, treeHash } from "../../agent/integrity/merkle.js";
import { merkleRootOf } from "../../agent/verify/stream-chain.js";

describe("merkleRootOf (batch roots folded from one buffer of leaf hashes)", () => {
  it("is the empty tree's hash for no leaves", () => {
    expect(merkleRootOf(Buffer.alloc(0), 0).equals(EMPTY_TREE_HASH)).toBe(true);
  });

  it("equals treeHash over leavesSource, and Frontier.root, for random sizes 1..3000", async () => {
    const sizes = [1, 2, 3, 4, 5, 7, 8, 9, 1000, 1024, 1025, 2047, 2048, 3000];
    for (let i = 0; i < 40; i++) sizes.push(1 + Math.floor(Math.random() * 3000));
    for (const size of sizes) {
      const leaves = Array.from({ length: size }, () => randomBytes(32));
      const expected = Buffer.from(await treeHash(size, leavesSource(leaves)));
      // A larger buffer than the leaves: only the first `size` are folded.
      const buffer = Buffer.concat([...leaves, randomBytes(64)]);
      expect(merkleRootOf(buffer, size).toString("hex"), `size ${size}`).toBe(
        expected.toString("hex"),
      );
      const frontier = new Frontier();
      for (const leaf of leaves) frontier.append(leaf);
      expect(frontier.root().toString("hex"), `size ${size}`).toBe(expected.toString("hex"));
    }
  });
});

import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { leafHash, nodeHash } from "../../agent/integrity/format.js";
import {
  isPowerOfTwo,
  memoLeavesSource,
  consistencyProof,
  EMPTY_TREE_HASH,
  type Hash,
  type HashSource,
  inclusionProof,
  leavesSource,
  splitPoint,
  treeHash,
  verifyConsistency,
  verifyInclusion,
} from "../../agent/integrity/merkle.js";
import { type KeyValueReader, type Put, TreeStore, tileKey } from "../../agent/store/tree-store.js";
import { prng } from "../helpers/prng.js";

/**
 * RFC 6962 / RFC 9162 Merkle trees: known answers from the certificate-transparency test
 * vectors, the published rejection probes, and properties over random trees, for both the
 * in-memory leaves source and the tiled TreeStore.
 */

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => Buffer.from(s, "hex");
const hexes = (hs: readonly Hash[]) => hs.map(hex);

/** Seeded (test/helpers/prng.ts) so a failing property run can be replayed. */
const rng = (seed: number): (() => number) => prng(seed).next;
const randInt = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

/** Leaf hashes of "leaf <i>" for i in [0, n). */
function makeLeaves(n: number, tag = "leaf"): Buffer[] {
  return Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`${tag} ${i}`)));
}

/**
 * An independent reference MTH (RFC 6962 §2.1), hashing with node:crypto directly and
 * memoized so large trees stay cheap. Used to check both proof sources.
 */
function referenceMth(leaves: readonly Hash[]): (start: number, end: number) => Buffer {
  const memo = new Map<number, Buffer>();
  const mth = (start: number, end: number): Buffer => {
    const n = end - start;
    if (n === 1) return Buffer.from(leaves[start] as Hash);
    const key = start * 4294967296 + end;
    const hit = memo.get(key);
    if (hit) return hit;
    let k = 1;
    while (k * 2 < n) k *= 2;
    const h = createHash("sha256")
      .update(Buffer.from([0x01]))
      .update(mth(start, start + k))
      .update(mth(start + k, end))
      .digest();
    memo.set(key, h);
    return h;
  };
  return mth;
}

// ---------------------------------------------------------------------------------------
// Known answers.
//
// Source: google/certificate-transparency cpp/merkletree/merkle_tree_test.cc (kInputs,
// kSHA256Roots, kSHA256Paths, kSHA256Proofs, kSHA256EmptyTreeHash) and the same vectors in
// transparency-dev/merkle proof/verify_test.go (inclusionProofs, consistencyProofs, roots,
// leaves; it adds the 6→7 consistency proof). The C++ file numbers leaves from 1; the
// indices below are 0-based. Leaf and node hash answers: transparency-dev/merkle
// rfc6962/rfc6962_test.go.
// ---------------------------------------------------------------------------------------

const INPUTS = [
  "",
  "00",
  "10",
  "2021",
  "3031",
  "40414243",
  "5051525354555657",
  "606162636465666768696a6b6c6d6e6f",
];

const EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** ROOTS[n] is the root of the tree of the first n inputs. */
const ROOTS = [
  EMPTY,
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

const INCLUSION: { index: number; size: number; proof: string[] }[] = [
  { index: 0, size: 1, proof: [] },
  {
    index: 0,
    size: 8,
    proof: [
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
  },
  {
    index: 5,
    size: 8,
    proof: [
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  },
  {
    index: 2,
    size: 3,
    proof: ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
  },
  {
    index: 1,
    size: 5,
    proof: [
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
  },
];

const CONSISTENCY: { size1: number; size2: number; proof: string[] }[] = [
  { size1: 1, size2: 1, proof: [] },
  {
    size1: 1,
    size2: 8,
    proof: [
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
  },
  {
    size1: 6,
    size2: 8,
    proof: [
      "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  },
  {
    size1: 2,
    size2: 5,
    proof: [
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
  },
  {
    size1: 6,
    size2: 7,
    proof: [
      "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  },
];

/** transparency-dev/merkle proof/verify_test.go: an arbitrary 32-byte hash. */
const SOME_HASH = unhex("abacaba000000000000000000000000000000000000000000060061e00123456");

const vectorLeaves = INPUTS.map((d) => leafHash(unhex(d)));
const vectorSource = leavesSource(vectorLeaves);

describe("RFC 6962 hashing (known answers)", () => {
  it("hashes leaves and nodes with the 0x00 / 0x01 prefixes", () => {
    expect(hex(EMPTY_TREE_HASH)).toBe(EMPTY);
    // echo -n 00 | xxd -r -p | sha256sum: the empty leaf differs from the empty tree.
    expect(hex(leafHash(Buffer.alloc(0)))).toBe(
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    );
    expect(hex(leafHash(Buffer.from("L123456")))).toBe(
      "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56",
    );
    expect(hex(nodeHash(Buffer.from("N123"), Buffer.from("N456")))).toBe(
      "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb",
    );
  });

  it("splits at the largest power of two below n", () => {
    expect([2, 3, 4, 5, 7, 8, 9, 16, 17, 255, 256, 257].map(splitPoint)).toEqual([
      1, 2, 2, 4, 4, 4, 8, 8, 16, 128, 128, 256,
    ]);
  });

  it("gives the published roots for sizes 0..8", async () => {
    for (let n = 0; n <= 8; n++) {
      expect(hex(await treeHash(n, vectorSource)), `size ${n}`).toBe(ROOTS[n]);
    }
  });

  it("gives the published inclusion proofs (audit paths)", async () => {
    for (const v of INCLUSION) {
      const proof = await inclusionProof(v.index, v.size, vectorSource);
      expect(hexes(proof), `leaf ${v.index} of ${v.size}`).toEqual(v.proof);
      expect(
        verifyInclusion(
          v.index,
          v.size,
          vectorLeaves[v.index]!,
          v.proof.map(unhex),
          unhex(ROOTS[v.size]!),
        ),
      ).toBe(true);
    }
  });

  it("gives the published consistency proofs", async () => {
    for (const v of CONSISTENCY) {
      const proof = await consistencyProof(v.size1, v.size2, vectorSource);
      expect(hexes(proof), `${v.size1} -> ${v.size2}`).toEqual(v.proof);
      expect(
        verifyConsistency(
          v.size1,
          v.size2,
          unhex(ROOTS[v.size1]!),
          unhex(ROOTS[v.size2]!),
          v.proof.map(unhex),
        ),
      ).toBe(true);
    }
  });

  it("accepts an async HashSource and gives the same answers", async () => {
    const asyncSource: HashSource = async (s, e) => vectorSource(s, e);
    expect(hex(await treeHash(7, asyncSource))).toBe(ROOTS[7]);
    expect(hexes(await inclusionProof(5, 8, asyncSource))).toEqual(INCLUSION[2]!.proof);
    expect(hexes(await consistencyProof(6, 7, asyncSource))).toEqual(CONSISTENCY[4]!.proof);
  });

  it("refuses proofs for leaves or sizes outside the tree", async () => {
    await expect(inclusionProof(0, 0, vectorSource)).rejects.toThrow(RangeError);
    await expect(inclusionProof(8, 8, vectorSource)).rejects.toThrow(RangeError);
    await expect(inclusionProof(-1, 8, vectorSource)).rejects.toThrow(RangeError);
    await expect(consistencyProof(5, 4, vectorSource)).rejects.toThrow(RangeError);
    await expect(consistencyProof(-1, 4, vectorSource)).rejects.toThrow(RangeError);
    expect(await consistencyProof(0, 8, vectorSource)).toEqual([]);
    expect(await consistencyProof(8, 8, vectorSource)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------
// Proof shapes. Source: transparency-dev/merkle proof/proof_test.go (TestInclusion,
// TestConsistency), which lists each proof as node ids (level, index); a node is the
// subtree of leaves [index·2^level, (index+1)·2^level), and a "rehash" group of nodes
// collapses into the one subtree covering their union. Written here as leaf ranges.
// ---------------------------------------------------------------------------------------

type Range = [number, number];

/** "[a,b) [c,d)" → [[a, b], [c, d]]. */
function rs(text: string): Range[] {
  return text
    .split(" ")
    .filter(Boolean)
    .map((t) => {
      const m = /^\[(\d+),(\d+)\)$/.exec(t);
      if (!m) throw new Error(`bad range ${t}`);
      return [Number(m[1]), Number(m[2])];
    });
}

const INCLUSION_SHAPES: { size: number; index: number; ranges: Range[] }[] = [
  { size: 1, index: 0, ranges: rs("") },
  { size: 2, index: 0, ranges: rs("[1,2)") },
  { size: 2, index: 1, ranges: rs("[0,1)") },
  { size: 3, index: 1, ranges: rs("[0,1) [2,3)") },
  { size: 7, index: 0, ranges: rs("[1,2) [2,4) [4,7)") },
  { size: 7, index: 1, ranges: rs("[0,1) [2,4) [4,7)") },
  { size: 7, index: 2, ranges: rs("[3,4) [0,2) [4,7)") },
  { size: 7, index: 3, ranges: rs("[2,3) [0,2) [4,7)") },
  { size: 7, index: 4, ranges: rs("[5,6) [6,7) [0,4)") },
  { size: 7, index: 5, ranges: rs("[4,5) [6,7) [0,4)") },
  { size: 7, index: 6, ranges: rs("[4,6) [0,4)") },
  { size: 4, index: 2, ranges: rs("[3,4) [0,2)") },
  { size: 5, index: 3, ranges: rs("[2,3) [0,2) [4,5)") },
  { size: 6, index: 3, ranges: rs("[2,3) [0,2) [4,6)") },
  { size: 6, index: 4, ranges: rs("[5,6) [0,4)") },
  { size: 15, index: 10, ranges: rs("[11,12) [8,10) [12,15) [0,8)") },
  { size: 31, index: 24, ranges: rs("[25,26) [26,28) [28,31) [16,24) [0,16)") },
  {
    size: 95,
    index: 81,
    ranges: rs("[80,81) [82,84) [84,88) [88,95) [64,80) [0,64)"),
  },
];

const CONSISTENCY_SHAPES: { size1: number; size2: number; ranges: Range[] }[] = [
  { size1: 1, size2: 2, ranges: rs("[1,2)") },
  { size1: 1, size2: 4, ranges: rs("[1,2) [2,4)") },
  { size1: 1, size2: 6, ranges: rs("[1,2) [2,4) [4,6)") },
  { size1: 2, size2: 3, ranges: rs("[2,3)") },
  { size1: 2, size2: 8, ranges: rs("[2,4) [4,8)") },
  { size1: 3, size2: 7, ranges: rs("[2,3) [3,4) [0,2) [4,7)") },
  { size1: 4, size2: 7, ranges: rs("[4,7)") },
  { size1: 5, size2: 7, ranges: rs("[4,5) [5,6) [6,7) [0,4)") },
  { size1: 6, size2: 7, ranges: rs("[4,6) [6,7) [0,4)") },
  { size1: 7, size2: 8, ranges: rs("[6,7) [7,8) [4,6) [0,4)") },
  { size1: 1, size2: 1, ranges: rs("") },
  { size1: 2, size2: 2, ranges: rs("") },
  { size1: 3, size2: 3, ranges: rs("") },
  { size1: 4, size2: 4, ranges: rs("") },
  { size1: 5, size2: 5, ranges: rs("") },
  { size1: 7, size2: 7, ranges: rs("") },
  { size1: 8, size2: 8, ranges: rs("") },
  { size1: 2, size2: 4, ranges: rs("[2,4)") },
  { size1: 3, size2: 5, ranges: rs("[2,3) [3,4) [0,2) [4,5)") },
  { size1: 3, size2: 6, ranges: rs("[2,3) [3,4) [0,2) [4,6)") },
  { size1: 4, size2: 6, ranges: rs("[4,6)") },
  { size1: 1, size2: 7, ranges: rs("[1,2) [2,4) [4,7)") },
  { size1: 10, size2: 15, ranges: rs("[8,10) [10,12) [12,15) [0,8)") },
  { size1: 24, size2: 31, ranges: rs("[16,24) [24,31) [0,16)") },
  {
    size1: 81,
    size2: 95,
    ranges: rs("[80,81) [81,82) [82,84) [84,88) [88,95) [64,80) [0,64)"),
  },
];

describe("proof shapes (transparency-dev/merkle node lists)", () => {
  const leaves = makeLeaves(95, "shape");
  const ref = referenceMth(leaves);

  /** A source that records the ranges asked for, in order. */
  function recording(): { source: HashSource; asked: Range[] } {
    const asked: Range[] = [];
    return {
      asked,
      source: (s, e) => {
        asked.push([s, e]);
        return ref(s, e);
      },
    };
  }

  it("inclusion proofs are the published subtrees, in order", async () => {
    for (const c of INCLUSION_SHAPES) {
      const { source, asked } = recording();
      const proof = await inclusionProof(c.index, c.size, source);
      expect(asked, `leaf ${c.index} of ${c.size}`).toEqual(c.ranges);
      expect(hexes(proof)).toEqual(c.ranges.map(([s, e]) => hex(ref(s, e))));
      expect(verifyInclusion(c.index, c.size, leaves[c.index]!, proof, ref(0, c.size))).toBe(true);
    }
  });

  it("consistency proofs are the published subtrees, in order", async () => {
    for (const c of CONSISTENCY_SHAPES) {
      const { source, asked } = recording();
      const proof = await consistencyProof(c.size1, c.size2, source);
      expect(asked, `${c.size1} -> ${c.size2}`).toEqual(c.ranges);
      expect(hexes(proof)).toEqual(c.ranges.map(([s, e]) => hex(ref(s, e))));
      expect(verifyConsistency(c.size1, c.size2, ref(0, c.size1), ref(0, c.size2), proof)).toBe(
        true,
      );
    }
  });
});

// ---------------------------------------------------------------------------------------
// Rejections: the probes of transparency-dev/merkle proof/verify_test.go
// (corruptInclusionProof, corruptConsistencyProof, TestVerifyInclusion*, TestVerifyConsistency).
// ---------------------------------------------------------------------------------------

const empty = Buffer.alloc(0);

function flip(h: Hash, mask: number, byte = 0): Buffer {
  const out = Buffer.from(h);
  out[byte] = (out[byte] as number) ^ mask;
  return out;
}

function inclusionProbes(index: number, size: number, leaf: Hash, proof: Hash[], root: Hash) {
  const probes: [string, number, number, Hash, Hash[], Hash][] = [
    ["index - 1", index - 1, size, leaf, proof, root],
    ["index + 1", index + 1, size, leaf, proof, root],
    ["index ^ 2", index ^ 2, size, leaf, proof, root],
    ["size * 2", index, size * 2, leaf, proof, root],
    ["size / 2", index, Math.floor(size / 2), leaf, proof, root],
    ["wrong leaf", index, size, Buffer.from("WrongLeaf"), proof, root],
    ["empty root", index, size, leaf, proof, EMPTY_TREE_HASH],
    ["random root", index, size, leaf, proof, SOME_HASH],
    ["trailing garbage", index, size, leaf, [...proof, empty], root],
    ["trailing root", index, size, leaf, [...proof, root], root],
    ["preceding garbage", index, size, leaf, [empty, ...proof], root],
    ["preceding root", index, size, leaf, [root, ...proof], root],
  ];
  for (let i = 0; i < proof.length; i++) {
    for (const [mask, byte] of [
      [8, 0],
      [1, 31],
      [0x80, 17],
    ] as const) {
      const bad = [...proof];
      bad[i] = flip(bad[i]!, mask, byte);
      probes.push([`proof[${i}] byte ${byte} ^ ${mask}`, index, size, leaf, bad, root]);
    }
  }
  if (proof.length > 0)
    probes.push(["removed component", index, size, leaf, proof.slice(0, -1), root]);
  if (proof.length > 1) {
    probes.push([
      "inserted component",
      index,
      size,
      leaf,
      [proof[0]!, SOME_HASH, ...proof.slice(1)],
      root,
    ]);
  }
  return probes;
}

function consistencyProbes(size1: number, size2: number, root1: Hash, root2: Hash, proof: Hash[]) {
  const wrong = Buffer.from("WrongRoot");
  const probes: [string, number, number, Hash, Hash, Hash[]][] = [
    ["size1 - 1", size1 - 1, size2, root1, root2, proof],
    ["size1 + 1", size1 + 1, size2, root1, root2, proof],
    ["size1 ^ 2", size1 ^ 2, size2, root1, root2, proof],
    ["size2 * 2", size1, size2 * 2, root1, root2, proof],
    ["size2 / 2", size1, Math.floor(size2 / 2), root1, root2, proof],
    ["wrong root1", size1, size2, wrong, root2, proof],
    ["wrong root2", size1, size2, root1, wrong, proof],
    ["swapped roots", size1, size2, root2, root1, proof],
    ["empty proof", size1, size2, root1, root2, []],
    ["trailing garbage", size1, size2, root1, root2, [...proof, empty]],
    ["trailing root1", size1, size2, root1, root2, [...proof, root1]],
    ["trailing root2", size1, size2, root1, root2, [...proof, root2]],
    ["preceding garbage", size1, size2, root1, root2, [empty, ...proof]],
    ["preceding root1", size1, size2, root1, root2, [root1, ...proof]],
    ["preceding root2", size1, size2, root1, root2, [root2, ...proof]],
    ["preceding proof[0]", size1, size2, root1, root2, [proof[0]!, ...proof]],
    ["truncated proof", size1, size2, root1, root2, proof.slice(0, -1)],
  ];
  for (let i = 0; i < proof.length; i++) {
    for (const [mask, byte] of [
      [16, 0],
      [1, 31],
      [0x80, 9],
    ] as const) {
      const bad = [...proof];
      bad[i] = flip(bad[i]!, mask, byte);
      probes.push([`proof[${i}] byte ${byte} ^ ${mask}`, size1, size2, root1, root2, bad]);
    }
  }
  return probes;
}

describe("verification rejects corrupted proofs", () => {
  it("rejects every probe around the published inclusion proofs", () => {
    for (const v of INCLUSION.slice(1)) {
      const leaf = vectorLeaves[v.index]!;
      const proof = v.proof.map(unhex);
      const root = unhex(ROOTS[v.size]!);
      expect(verifyInclusion(v.index, v.size, leaf, proof, root)).toBe(true);
      for (const [desc, i, n, l, p, r] of inclusionProbes(v.index, v.size, leaf, proof, root)) {
        expect(verifyInclusion(i, n, l, p, r), `leaf ${v.index} of ${v.size}: ${desc}`).toBe(false);
      }
    }
  });

  it("rejects every probe around the published consistency proofs", () => {
    for (const v of CONSISTENCY.filter((c) => c.proof.length > 0)) {
      const root1 = unhex(ROOTS[v.size1]!);
      const root2 = unhex(ROOTS[v.size2]!);
      const proof = v.proof.map(unhex);
      expect(verifyConsistency(v.size1, v.size2, root1, root2, proof)).toBe(true);
      for (const [desc, m, n, r1, r2, p] of consistencyProbes(
        v.size1,
        v.size2,
        root1,
        root2,
        proof,
      )) {
        expect(verifyConsistency(m, n, r1, r2, p), `${v.size1} -> ${v.size2}: ${desc}`).toBe(false);
      }
    }
  });

  it("handles the degenerate inclusion cases (TestVerifyInclusion, ...SingleEntry)", () => {
    for (const [index, size] of [
      [0, 0],
      [0, 1],
      [1, 0],
      [2, 1],
    ] as const) {
      expect(verifyInclusion(index, size, SOME_HASH, [], empty)).toBe(false);
      expect(verifyInclusion(index, size, empty, [], EMPTY_TREE_HASH)).toBe(false);
      expect(verifyInclusion(index, size, SOME_HASH, [], EMPTY_TREE_HASH)).toBe(false);
    }
    const hash = leafHash(Buffer.from("data"));
    expect(verifyInclusion(0, 1, hash, [], hash)).toBe(true);
    expect(verifyInclusion(0, 1, hash, [], empty)).toBe(false);
    expect(verifyInclusion(0, 1, empty, [], hash)).toBe(false);
    // Go's {empty, empty} "wrong hash size" case is left out: verifyInclusion does not check
    // hash lengths, so a 1-leaf "tree" whose root equals its leaf verifies whatever its size.
    expect(verifyInclusion(0, 1, hash, [hash], hash)).toBe(false);
  });

  it("handles the degenerate consistency cases (TestVerifyConsistency)", () => {
    const r1 = Buffer.from("don't care 1");
    const r2 = Buffer.from("don't care 2");
    const cases: [number, number, Hash, Hash, Hash[], boolean][] = [
      [0, 0, r1, r2, [], false],
      [1, 1, r1, r2, [], false],
      // Sizes that are always consistent.
      [0, 0, r1, r1, [], true],
      [0, 1, r1, r2, [], true],
      [1, 1, r2, r2, [], true],
      // Time travel to the past.
      [1, 0, r1, r2, [], false],
      [2, 1, r1, r2, [], false],
      // Empty proof.
      [1, 2, r1, r2, [], false],
      // Roots don't match.
      [0, 0, EMPTY_TREE_HASH, r2, [], false],
      [1, 1, EMPTY_TREE_HASH, r2, [], false],
      // Roots match but the proof is not empty.
      [0, 0, EMPTY_TREE_HASH, EMPTY_TREE_HASH, [EMPTY_TREE_HASH], false],
      [0, 1, EMPTY_TREE_HASH, EMPTY_TREE_HASH, [EMPTY_TREE_HASH], false],
      [1, 1, EMPTY_TREE_HASH, EMPTY_TREE_HASH, [EMPTY_TREE_HASH], false],
    ];
    for (const [m, n, a, b, p, want] of cases) {
      expect(verifyConsistency(m, n, a, b, p), `${m} -> ${n}`).toBe(want);
    }
  });
});

// ---------------------------------------------------------------------------------------
// Properties over random trees.
// ---------------------------------------------------------------------------------------

describe("properties over random trees up to 3000 leaves", () => {
  const seed = 0x5eed6962;
  const r = rng(seed);
  const sizes = [1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 127, 128, 129, 1023, 1024, 1025, 2999, 3000];
  for (let i = 0; i < 8; i++) sizes.push(randInt(r, 1, 3000));
  const all = makeLeaves(3000, `prop ${seed}`);
  const ref = referenceMth(all);

  it(`leavesSource agrees with the reference MTH (seed ${seed})`, async () => {
    const source = leavesSource(all);
    for (const n of [1, 2, 3, 255, 256, 257, 1000, 3000]) {
      expect(hex(await treeHash(n, source)), `size ${n}`).toBe(hex(ref(0, n)));
    }
    for (let k = 0; k < 40; k++) {
      const n = randInt(r, 1, 600);
      const i = randInt(r, 0, n - 1);
      const m = randInt(r, 0, n);
      expect(hexes(await inclusionProof(i, n, source))).toEqual(
        hexes(await inclusionProof(i, n, ref)),
      );
      expect(hexes(await consistencyProof(m, n, source))).toEqual(
        hexes(await consistencyProof(m, n, ref)),
      );
    }
  });

  it(`every inclusion proof verifies, and fails for a neighbour index or a flipped bit (seed ${seed})`, async () => {
    for (const n of sizes) {
      const root = ref(0, n);
      // Every leaf for the smaller trees, a random sample of ~200 for the larger ones.
      const indices =
        n <= 300
          ? Array.from({ length: n }, (_, i) => i)
          : Array.from({ length: 200 }, () => randInt(r, 0, n - 1));
      indices.push(0, n - 1);
      for (const i of indices) {
        const proof = await inclusionProof(i, n, ref);
        const what = `leaf ${i} of ${n}`;
        expect(verifyInclusion(i, n, all[i]!, proof, root), what).toBe(true);
        if (i + 1 < n) expect(verifyInclusion(i + 1, n, all[i]!, proof, root), what).toBe(false);
        if (i > 0) expect(verifyInclusion(i - 1, n, all[i]!, proof, root), what).toBe(false);
        if (proof.length > 0) {
          const bad = [...proof];
          const at = randInt(r, 0, proof.length - 1);
          bad[at] = flip(bad[at]!, 1 << randInt(r, 0, 7), randInt(r, 0, 31));
          expect(verifyInclusion(i, n, all[i]!, bad, root), `${what}, flipped proof[${at}]`).toBe(
            false,
          );
          expect(verifyInclusion(i, n, all[i]!, proof.slice(0, -1), root), `${what}, short`).toBe(
            false,
          );
          expect(verifyInclusion(i, n, all[i]!, [...proof, SOME_HASH], root), `${what}, long`).toBe(
            false,
          );
        }
      }
    }
  });

  it(`every consistency proof verifies, and fails when corrupted (seed ${seed})`, async () => {
    for (const n of sizes) {
      const root2 = ref(0, n);
      const olds =
        n <= 300
          ? Array.from({ length: n + 1 }, (_, m) => m)
          : Array.from({ length: 200 }, () => randInt(r, 0, n));
      olds.push(1, n - 1, n);
      for (const m of olds) {
        const proof = await consistencyProof(m, n, ref);
        const root1 = m === 0 ? EMPTY_TREE_HASH : ref(0, m);
        const what = `${m} -> ${n}`;
        expect(verifyConsistency(m, n, root1, root2, proof), what).toBe(true);
        if (proof.length > 0) {
          const bad = [...proof];
          const at = randInt(r, 0, proof.length - 1);
          bad[at] = flip(bad[at]!, 1 << randInt(r, 0, 7), randInt(r, 0, 31));
          expect(verifyConsistency(m, n, root1, root2, bad), `${what}, flipped proof[${at}]`).toBe(
            false,
          );
          expect(verifyConsistency(m, n, root1, root2, proof.slice(0, -1)), `${what}, short`).toBe(
            false,
          );
          expect(
            verifyConsistency(m, n, root1, root2, [...proof, SOME_HASH]),
            `${what}, long`,
          ).toBe(false);
          expect(verifyConsistency(m, n, root1, SOME_HASH, proof), `${what}, root2`).toBe(false);
          expect(verifyConsistency(m, n, SOME_HASH, root2, proof), `${what}, root1`).toBe(false);
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------
// TreeStore: same roots and proofs as an in-memory source, across tile boundaries,
// random append batches and reloads from the stored tiles.
// ---------------------------------------------------------------------------------------

class MapStore implements KeyValueReader {
  readonly map = new Map<string, Buffer>();
  reads = 0;
  async get(key: Buffer): Promise<Buffer | undefined> {
    this.reads++;
    const v = this.map.get(key.toString("hex"));
    return v ? Buffer.from(v) : undefined;
  }
  apply(puts: Put[]): void {
    for (const p of puts) {
      expect(p.type).toBe("put");
      this.map.set(p.key.toString("hex"), Buffer.from(p.value));
    }
  }
}

describe("TreeStore", () => {
  it("lays out tile keys as 'T' || level || 64-bit big-endian index", () => {
    expect(hex(tileKey(0, 0))).toBe("54000000000000000000");
    expect(hex(tileKey(2, 0x1_0000_0002))).toBe("54020000000100000002");
    expect(hex(tileKey(1, 255))).toBe("540100000000000000ff");
  });

  it("reproduces the published roots and proofs for the 8-leaf vector tree", async () => {
    const db = new MapStore();
    let store = await TreeStore.load(db, 0);
    for (let n = 1; n <= 8; n++) {
      db.apply(store.append([vectorLeaves[n - 1]!]));
      if (n % 3 === 0) store = await TreeStore.load(db, n);
      expect(store.size).toBe(n);
      expect(hex(await treeHash(n, store.source())), `size ${n}`).toBe(ROOTS[n]);
    }
    for (const v of INCLUSION) {
      expect(hexes(await inclusionProof(v.index, v.size, store.source()))).toEqual(v.proof);
    }
    for (const v of CONSISTENCY) {
      expect(hexes(await consistencyProof(v.size1, v.size2, store.source()))).toEqual(v.proof);
    }
  });

  /** Checks a store of `size` leaves against the reference at a few interesting points. */
  async function checkStore(
    store: TreeStore,
    size: number,
    ref: ReturnType<typeof referenceMth>,
    r: () => number,
  ) {
    const source = store.source();
    expect(store.size).toBe(size);
    expect(hex(await treeHash(size, source)), `root at ${size}`).toBe(hex(ref(0, size)));
    const indices = new Set([0, size - 1, randInt(r, 0, size - 1)]);
    for (const b of [255, 256, 257, 65535, 65536]) if (b < size) indices.add(b);
    for (const i of indices) {
      expect(hexes(await inclusionProof(i, size, source)), `leaf ${i} of ${size}`).toEqual(
        hexes(await inclusionProof(i, size, ref)),
      );
    }
    const olds = new Set([1, size - 1, randInt(r, 1, size)]);
    for (const b of [255, 256, 257, 65535, 65536]) if (b <= size) olds.add(b);
    for (const m of olds) {
      if (m < 1) continue;
      expect(hexes(await consistencyProof(m, size, source)), `${m} -> ${size}`).toEqual(
        hexes(await consistencyProof(m, size, ref)),
      );
      // Past tree sizes are served from the same tiles.
      expect(hex(await treeHash(m, source)), `past root ${m}`).toBe(hex(ref(0, m)));
    }
  }

  it("matches the reference across tile boundaries with random batches and reloads", async () => {
    const seed = 0x71e5;
    const r = rng(seed);
    const total = 65537 + 3;
    const leaves = makeLeaves(total, `tiles ${seed}`);
    const ref = referenceMth(leaves);
    const checkpoints = new Set([1, 2, 255, 256, 257, 511, 512, 513, 65535, 65536, 65537]);

    const db = new MapStore();
    let store = await TreeStore.load(db, 0);
    let size = 0;
    let reloads = 0;
    while (size < total) {
      // Land exactly on every checkpoint; otherwise take a random batch (mostly small,
      // sometimes several tiles at once).
      const next = [...checkpoints].filter((c) => c > size).sort((a, b) => a - b)[0] ?? total;
      const batch = Math.min(next - size, r() < 0.1 ? randInt(r, 256, 3000) : randInt(r, 1, 300));
      db.apply(store.append(leaves.slice(size, size + batch)));
      size += batch;
      if (checkpoints.has(size) || r() < 0.05) {
        store = await TreeStore.load(db, size);
        reloads++;
      }
      if (checkpoints.has(size)) await checkStore(store, size, ref, r);
    }
    expect(reloads).toBeGreaterThan(10);
    await checkStore(store, total, ref, r);
  });

  it("a reloaded store keeps appending exactly like one that never reloaded", async () => {
    const leaves = makeLeaves(700, "reload");
    const ref = referenceMth(leaves);
    const a = new MapStore();
    const b = new MapStore();
    const steady = await TreeStore.load(a, 0);
    let reloaded = await TreeStore.load(b, 0);
    let size = 0;
    for (const batch of [1, 254, 1, 1, 255, 1, 187]) {
      const slice = leaves.slice(size, size + batch);
      a.apply(steady.append(slice));
      b.apply(reloaded.append(slice));
      size += batch;
      reloaded = await TreeStore.load(b, size);
      expect(hex(await treeHash(size, reloaded.source()))).toBe(hex(ref(0, size)));
      expect(hex(await treeHash(size, steady.source()))).toBe(hex(ref(0, size)));
    }
    // Both stores wrote the same tiles.
    expect([...b.map.entries()].map(([k, v]) => [k, hex(v)]).sort()).toEqual(
      [...a.map.entries()].map(([k, v]) => [k, hex(v)]).sort(),
    );
  });

  it("append returns one put per touched tile, holding that tile's hashes", async () => {
    const leaves = makeLeaves(300, "puts");
    const db = new MapStore();
    const store = await TreeStore.load(db, 0);
    const puts = store.append(leaves.slice(0, 257));
    db.apply(puts);
    const byKey = new Map(puts.map((p) => [hex(p.key), p.value]));
    expect(byKey.size).toBe(puts.length);
    // Level 0 tile 0: leaves 0..255; tile 1: leaf 256; level 1 tile 0: the first subtree root.
    expect(byKey.get(hex(tileKey(0, 0)))).toEqual(Buffer.concat(leaves.slice(0, 256)));
    expect(byKey.get(hex(tileKey(0, 1)))).toEqual(leaves[256]);
    expect(hex(byKey.get(hex(tileKey(1, 0)))!)).toBe(hex(referenceMth(leaves)(0, 256)));
    expect(puts).toHaveLength(3);
  });

  it("refuses to load when a tile it needs is missing or short", async () => {
    const leaves = makeLeaves(10, "missing");
    const db = new MapStore();
    const store = await TreeStore.load(db, 0);
    db.apply(store.append(leaves));
    await expect(TreeStore.load(db, 11)).rejects.toThrow(/holds 10 hashes, expected 11/);
    await expect(TreeStore.load(new MapStore(), 5)).rejects.toThrow(/holds 0 hashes/);
  });
});

describe("trees past 2^32 leaves", () => {
  it("isPowerOfTwo is exact above 32 bits (bitwise operators would truncate)", () => {
    expect([1, 2, 4, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 52].every(isPowerOfTwo)).toBe(true);
    expect([0, 3, 6, 2 ** 32 + 4, 2 ** 33 + 2 ** 32, 2 ** 32 - 1].some(isPowerOfTwo)).toBe(false);
  });
});

describe("memoLeavesSource", () => {
  it("gives leavesSource's hashes for every range, and keeps them as the array grows", () => {
    const leaves = Array.from({ length: 40 }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));
    const memo = memoLeavesSource(leaves);
    const plain = leavesSource(leaves);
    for (let end = 1; end <= 30; end++)
      for (let start = 0; start < end; start++)
        expect(Buffer.from(memo(start, end)).equals(Buffer.from(plain(start, end)))).toBe(true);
    leaves.push(leafHash(Buffer.from("leaf 40")));
    expect(Buffer.from(memo(0, 41)).equals(Buffer.from(leavesSource(leaves)(0, 41)))).toBe(true);
  });
});

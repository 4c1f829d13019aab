import { describe, expect, it } from "vitest";
import { leafHash, leafHashHex } from "../../agent/integrity/format.js";
import { leavesSource } from "../../agent/integrity/merkle.js";
import { hashLines, treeRoots } from "../../agent/verify/leaf-hashes.js";
import { prng } from "../helpers/prng.js";

/**
 * The verifier's faster hash paths give exactly the RFC 6962 hashes of format.ts and
 * merkle.ts: leaf hashes of text, whatever the characters and lengths, in line and on the
 * worker thread, and tree roots of any ranges of them.
 */

const TEXTS = [
  "",
  "a",
  '{"chainId":"c","prev":"00"}',
  "é€😀\u2028\u0000\u007f",
  "\ud800 lone \udc00 surrogates",
  "x".repeat(70_000), // longer than the reused encoding buffer
  "€".repeat(30_000),
];

function randomTexts(n: number): string[] {
  const rng = prng(0x1eaf);
  const pieces = ["a", "Z", " ", '"', "\\", "é", "€", "😀", "\u0000", "\ud800", "中", "{}"];
  return Array.from({ length: n }, (_, i) => {
    let s = `${i}:`;
    for (let k = rng.int(rng.chance(0.01) ? 5000 : 60); k > 0; k--) s += rng.pick(pieces);
    return s;
  });
}

/** Prefixes (as checkpoints ask) and arbitrary ranges (as batches do) of n leaves. */
function randomRanges(n: number): [number, number][] {
  const rng = prng(n);
  const ranges: [number, number][] = [
    [0, 1],
    [0, 2],
    [0, n],
    [n - 1, n],
  ];
  for (let k = 0; k < 12; k++) ranges.push([0, 1 + rng.int(n)]);
  for (let k = 0; k < 12; k++) {
    const from = rng.int(n);
    ranges.push([from, from + 1 + rng.int(n - from)]);
  }
  for (let from = 0; from < n; from += 1000) ranges.push([from, Math.min(n, from + 1000)]);
  return ranges;
}

describe("verifier hashing", () => {
  it("leafHashHex is the leaf hash of the text's UTF-8 bytes", () => {
    for (const text of [...TEXTS, ...randomTexts(300)])
      expect(leafHashHex(text)).toBe(leafHash(Buffer.from(text, "utf8")).toString("hex"));
  });

  // A slow caller leaves the chunks to the worker; a fast one hashes most of them itself.
  for (const [mode, useWorker, callerMs] of [
    ["in line", false, 0],
    ["on a worker, a fast caller", true, 0],
    ["on a worker, a slow caller", true, 1],
  ] as const) {
    it(`hashLines ${mode}: leaf hashes, tree roots, every chunk visited once`, async () => {
      const texts = [...TEXTS, ...randomTexts(9000)];
      const visited: [number, number][] = [];
      const ranges = randomRanges(texts.length);
      const { digests, roots } = await hashLines(
        texts.map((text) => ({ text })),
        (start, end) => {
          visited.push([start, end]);
          for (const until = performance.now() + callerMs; performance.now() < until;);
        },
        ranges,
        useWorker,
      );
      const leaves = texts.map((t) => leafHash(Buffer.from(t, "utf8")));
      expect(digests).toEqual(Buffer.concat(leaves));
      let next = 0;
      for (const [start, end] of visited) {
        expect(start).toBe(next);
        expect(end).toBeGreaterThan(start);
        next = end;
      }
      expect(next).toBe(texts.length);

      const reference = leavesSource(leaves);
      ranges.forEach(([from, to], k) =>
        expect(roots.subarray(32 * k, 32 * k + 32), `${from}..${to}`).toEqual(
          Buffer.from(reference(from, to)),
        ),
      );
      expect(treeRoots(digests, ranges)).toEqual(roots);
      expect(() => treeRoots(digests, [[3, 3]])).toThrow(RangeError);
    });
  }

  it("tree roots of ranges that take subtrees from the pass from 0, or cannot", () => {
    const leaves = randomTexts(3000).map((t) => leafHash(Buffer.from(t, "utf8")));
    const reference = leavesSource(leaves);
    const batches = (size: number, from = 0): [number, number][] =>
      Array.from({ length: Math.floor((3000 - from) / size) }, (_, i) => [
        from + i * size,
        from + (i + 1) * size,
      ]);
    for (const ranges of [
      [...batches(1000), [0, 1000], [0, 2000], [0, 3000]], // batches and their checkpoints
      [...batches(256), [0, 3000]],
      [...batches(96, 7), [0, 1500]], // the checkpoints' tree stops halfway
      [...batches(640), [0, 700]], // it ends inside the first batch it could serve
      [
        [512, 1024],
        [1024, 1500],
        [0, 1],
      ],
      batches(1000), // no pass from 0
    ] as [number, number][][]) {
      const roots = treeRoots(Buffer.concat(leaves), ranges);
      ranges.forEach(([from, to], k) =>
        expect(roots.subarray(32 * k, 32 * k + 32), `${from}..${to}`).toEqual(
          Buffer.from(reference(from, to)),
        ),
      );
    }
  });

  it("a caller that fails ends the worker and passes its error on", async () => {
    const lines = randomTexts(2000).map((text) => ({ text }));
    const failing = () => {
      throw new Error("boom");
    };
    await expect(hashLines(lines, failing, [[0, 2000]], true)).rejects.toThrow("boom");
  });

  it("hashLines with no lines", async () => {
    for (const useWorker of [false, true]) {
      const hashed = await hashLines([], () => {}, [], useWorker);
      expect(hashed.digests.length).toBe(0);
    }
  });
});

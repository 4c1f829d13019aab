import { describe, expect, it } from "vitest";
import { leafHash, leafHashHex, nodeHash, nodeHashBinary } from "../../agent/chain/format.js";
import { leafHashesAlongside } from "../../agent/verify/leaf-hashes.js";
import { prng } from "../helpers/prng.js";

/**
 * The verifier's faster hash paths give exactly the RFC 6962 hashes of format.ts: leaf
 * hashes of text (in line and on the worker thread, whatever the characters and lengths)
 * and node hashes over binary strings.
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

describe("verifier hashing", () => {
  it("leafHashHex is the leaf hash of the text's UTF-8 bytes", () => {
    for (const text of [...TEXTS, ...randomTexts(300)])
      expect(leafHashHex(text)).toBe(leafHash(Buffer.from(text, "utf8")).toString("hex"));
  });

  it("nodeHashBinary is nodeHash over the same bytes", () => {
    const rng = prng(7);
    for (let i = 0; i < 200; i++) {
      const left = Buffer.from(rng.bytes(32));
      const right = Buffer.from(rng.bytes(32));
      const binary = nodeHashBinary(left.toString("binary"), right.toString("binary"));
      expect(Buffer.from(binary, "binary")).toEqual(nodeHash(left, right));
    }
    expect(() => nodeHashBinary("short", "x".repeat(32))).toThrow(RangeError);
  });

  for (const useWorker of [false, true]) {
    it(`leafHashesAlongside ${useWorker ? "on a worker thread" : "in line"}: same hashes, every chunk visited once`, async () => {
      const texts = [...TEXTS, ...randomTexts(9000)];
      const lines = texts.map((text) => ({ text }));
      const visited: [number, number][] = [];
      const hashes = await leafHashesAlongside(
        lines,
        (start, end) => visited.push([start, end]),
        useWorker,
      );
      expect(hashes).toEqual(texts.map(leafHashHex));
      let next = 0;
      for (const [start, end] of visited) {
        expect(start).toBe(next);
        expect(end).toBeGreaterThan(start);
        next = end;
      }
      expect(next).toBe(texts.length);
    });
  }

  it("leafHashesAlongside with no lines", async () => {
    expect(await leafHashesAlongside([], () => {}, true)).toEqual([]);
    expect(await leafHashesAlongside([], () => {}, false)).toEqual([]);
  });
});

import { describe, expect, it } from "vitest";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import { leafHash } from "../../agent/integrity/format.js";
import { checkLineBytes, checkLineTexts } from "../../agent/verify/line-check.js";
import { LineCheckers } from "../../agent/verify/line-checkers.js";
import { ReceiveTimes, splitTime } from "../../agent/verify/receive-times.js";
import { prng, testSeed } from "../helpers/prng.js";

/**
 * Step 1 of verification for a page of lines (line-check.ts), whether the lines come as
 * stored bytes or as text, on this thread or on checker threads: the same seqs, leaf hashes,
 * links, receive times and problems.
 */

const CHAIN = "line-check-chain";
const SEED = testSeed("test/unit/line-check.test.ts");

function envelope(seq: number, time: string, body: string): string {
  return canonicalize({
    chainId: CHAIN,
    prev: (seq % 16).toString(16).repeat(64),
    record: { logRecord: { body: { stringValue: body } } },
    seq: String(seq),
    timeReceivedUnixNano: time,
    v: 1,
  } as JsonValue);
}

/** Valid lines and every kind of bad one, in a seeded order. */
function lines(n: number): string[] {
  const rng = prng(SEED.seed);
  const bad = [
    "",
    "not json",
    envelope(1, "1", "x").replace(CHAIN, "other-chain"),
    envelope(2, "1", "x").replace('"v":1', '"v":2'),
    `${envelope(3, "1", "x").slice(0, -1)},"extra":1}`,
    envelope(4, "1", "x").replace('{"chainId"', '{ "chainId"'),
  ];
  return Array.from({ length: n }, (_, i) =>
    rng.chance(0.1)
      ? rng.pick(bad)
      : envelope(
          i,
          rng.pick(["1700000000123456789", "0042", "", "x1", "9".repeat(30)]),
          `é ${i} ☃`,
        ),
  );
}

describe("checking a page of record lines", () => {
  const texts = lines(500);
  const bytes = () => Buffer.from(texts.map((t) => `${t}\n`).join(""), "utf8");

  it(`reads the same from bytes as from text, and hashes each line as RFC 6962 leaf (seed ${SEED.hex})`, () => {
    const page = bytes();
    const copy = Buffer.from(page);
    const fromBytes = checkLineBytes(page, CHAIN);
    expect(page.equals(copy)).toBe(true); // the page is left as it was
    const fromText = checkLineTexts(texts, CHAIN);
    expect(fromBytes).toStrictEqual(fromText);
    expect(fromBytes.count).toBe(texts.length);
    texts.forEach((t, i) => {
      const valid = !Number.isNaN(fromBytes.seqs[i] as number);
      expect(valid, `line ${i}: ${fromBytes.problems.get(i)}`).toBe(!fromBytes.problems.has(i));
      if (!valid) return;
      expect(fromBytes.hashes.subarray(64 * i, 64 * i + 32)).toEqual(
        leafHash(Buffer.from(t, "utf8")),
      );
      expect(fromBytes.hashes.subarray(64 * i + 32, 64 * i + 64).toString("hex")).toBe(
        JSON.parse(t).prev,
      );
    });
    expect(fromBytes.problems.size).toBeGreaterThan(10);
    expect([...fromBytes.problems.values()]).toContain(
      `record of chain other-chain stored with chain ${CHAIN}`,
    );
  });

  it("calls a line that is not valid UTF-8 malformed, and hashes no replacement for it", () => {
    const good = envelope(7, "1", "ok");
    const broken = Buffer.from(`${envelope(8, "1", "AB")}\n`, "utf8");
    broken[broken.indexOf("AB")] = 0xc3; // a lead byte followed by "B": ill-formed
    const page = Buffer.concat([Buffer.from(`${good}\n`), broken]);
    const out = checkLineBytes(page, CHAIN);
    expect(out.seqs[0]).toBe(7);
    expect(out.seqs[1]).toBeNaN();
    expect(out.problems.get(1)).toBe("not valid UTF-8");
  });

  it("gives the same results on checker threads, in order, and leaves a pooled buffer usable", async () => {
    const checkers = new LineCheckers(2);
    try {
      const pages = Array.from({ length: 12 }, (_, p) =>
        Buffer.from(
          texts
            .slice(p * 40, p * 40 + 40)
            .map((t) => `${t}\n`)
            .join(""),
        ),
      );
      const expected = pages.map((p) => checkLineBytes(Buffer.from(p), CHAIN));
      const results = await Promise.all(pages.map((p) => checkers.check(p, CHAIN)));
      expect(results).toStrictEqual(expected);
      // A small Buffer is a slice of Node's shared pool: it is copied, not moved away.
      const small = Buffer.from(`${texts[1]}\n`);
      const neighbour = Buffer.from("still here");
      await checkers.check(small, CHAIN);
      expect(small.toString()).toBe(`${texts[1]}\n`);
      expect(neighbour.toString()).toBe("still here");
    } finally {
      await checkers.close();
    }
  });
});

describe("receive times", () => {
  it("keeps the earliest and latest as digits without leading zeros, exact at any length", () => {
    const t = new ReceiveTimes();
    expect([t.earliest, t.latest]).toEqual([null, null]);
    for (const s of ["1700000000123456789", "0001700000000123456788", "x", "", "-5", "12a"])
      t.add(s);
    expect([t.earliest, t.latest]).toEqual(["1700000000123456788", "1700000000123456789"]);
    t.add("9".repeat(30));
    t.add("1".repeat(31));
    t.add("0");
    expect([t.earliest, t.latest]).toEqual(["0", "1".repeat(31)]);
    expect(splitTime("000")).toEqual([0, 0]);
    expect(splitTime("123456789")).toEqual([0, 123456789]);
    expect(splitTime("1000000001")).toEqual([1, 1]);
    expect(splitTime("1e9")).toBeNull();
    expect(splitTime(`00${"7".repeat(25)}`)).toBe("7".repeat(25));
  });
});

import { describe, expect, it } from "vitest";
import { isCanonicalJson, scanEnvelope } from "../../agent/integrity/canonical-check.js";
import { checkEnvelope, parseEnvelope } from "../../agent/integrity/chain-check.js";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import {
  jsonStructureProblem,
  MAX_LINE_DEPTH,
  nestedDeeperThan,
} from "../../agent/integrity/json-structure.js";
import { ProgressLine } from "../../agent/verify/progress.js";
import { RetiredKeys } from "../../agent/verify/retired-keys.js";
import { formatFindings } from "../../agent/verify/report-text.js";
import type { Finding } from "../../agent/verify/types.js";

/**
 * The pieces behind verify's fixes for issue 12, on their own: the duplicate-name and depth
 * scan, the walks that no longer recurse, the grouped findings and the progress line.
 * test/integration/verify-hardening.test.ts runs them on real agent output.
 */

const nested = (depth: number, inner = "1") => `${"[".repeat(depth)}${inner}${"]".repeat(depth)}`;

describe("jsonStructureProblem", () => {
  it("passes JSON without repeated names, whatever objects share a name", () => {
    for (const text of [
      "{}",
      "[]",
      '{"a":1,"b":{"a":2,"b":[{"a":3},{"a":4}]},"c":"\\"a\\":1,\\"a\\":2"}',
      '[{"x":1},{"x":1}]',
      '{"a":[{"x":1}],"x":2}',
      '{"b":1,"a":2}', // unsorted is not this scan's business
      '{ "a" : 1 , "b" : 2 }',
      "not json at all {",
    ])
      expect(jsonStructureProblem(text), text).toBeNull();
  });

  it("finds a repeated name at any depth, spelled any way", () => {
    expect(jsonStructureProblem('{"a":1,"a":2}')).toMatch(/repeated member name "a"/);
    expect(jsonStructureProblem('{"z":1,"a":2,"z":3}')).toMatch(/repeated member name "z"/);
    expect(jsonStructureProblem('[1,{"x":{"y":[{"k":1,"k":1}]}}]')).toMatch(/"k"/);
    expect(jsonStructureProblem('{"seq":"1","\\u0073eq":"2"}')).toMatch(/"seq"/);
    expect(jsonStructureProblem('{ "a" : 1 , "a" : 2 }')).toMatch(/"a"/);
  });

  it("refuses nesting deeper than the limit, at the limit's first level past it", () => {
    expect(jsonStructureProblem(nested(MAX_LINE_DEPTH))).toBeNull();
    expect(jsonStructureProblem(nested(MAX_LINE_DEPTH + 1))).toMatch(
      new RegExp(`nested deeper than ${MAX_LINE_DEPTH} levels`),
    );
    expect(jsonStructureProblem(nested(3), 2)).toMatch(/deeper than 2/);
    expect(jsonStructureProblem(nested(2_000_000))).toMatch(/deeper than/);
  });

  it("nestedDeeperThan walks parsed values without recursion", () => {
    const deep = JSON.parse(nested(1_000_000)) as unknown;
    expect(nestedDeeperThan(deep)).toBe(true);
    expect(nestedDeeperThan(JSON.parse(nested(MAX_LINE_DEPTH)))).toBe(false);
    expect(nestedDeeperThan({ a: { b: [1] } }, 3)).toBe(false);
    expect(nestedDeeperThan({ a: { b: [[1]] } }, 3)).toBe(true);
  });
});

describe("walks over stored JSON that no longer recurse", () => {
  it("canonicalize writes any depth, as RFC 8785 does", () => {
    expect(canonicalize({ b: [1, { d: null, c: "x" }, [], {}], a: true })).toBe(
      '{"a":true,"b":[1,{"c":"x","d":null},[],{}]}',
    );
    expect(canonicalize([[[]], {}])).toBe("[[[]],{}]");
    const text = nested(1_000_000);
    expect(canonicalize(JSON.parse(text) as JsonValue)).toBe(text);
    expect(() => canonicalize({ a: Number.NaN })).toThrow(/NaN/);
    expect(() => canonicalize({ a: undefined } as unknown as JsonValue)).toThrow(
      /not a JSON value/,
    );
  });

  it("the canonical checks refuse deep text the same way every time", () => {
    const line = `{"chainId":"c","prev":"${"0".repeat(64)}","record":{"a":${nested(100_000)}},"seq":"0","timeReceivedUnixNano":"1","v":1}`;
    for (let i = 0; i < 3; i++) {
      expect(isCanonicalJson(line)).toBe(false);
      expect(scanEnvelope(line)).toBeNull();
      expect(checkEnvelope(line)).toMatch(/nested deeper than/);
      expect(parseEnvelope(line)).toMatch(/nested deeper than/);
    }
    const duplicated = line.replace('"record":{"a":', '"record":{"a":1,"a":');
    expect(checkEnvelope(duplicated)).toMatch(/repeated member name "a"/);
  });
});

describe("grouped findings", () => {
  const f = (over: Partial<Finding>): Finding => ({
    category: "missing",
    chainId: "c",
    location: "records-x.ndjson:1",
    detail: "d",
    ...over,
  });

  it("prints a lone finding as before, and a run as one range", () => {
    expect(formatFindings([f({ seq: 3, detail: "records 3 are absent" })])).toEqual([
      "  missing       records-x.ndjson:1: records 3 are absent",
    ]);
    const lines = formatFindings([
      f({ seq: 1200, lastSeq: 1899, detail: "gap" }),
      f({ seq: 1200, lastSeq: 1599, manifest: 12, detail: "batch 12" }),
      f({ seq: 1600, lastSeq: 1899, manifest: 13, detail: "batch 13" }),
      f({ category: "modified", seq: 7 }),
    ]);
    expect(lines[0]).toBe(
      "  missing       seq 1,200–1,899 (700 records), batches 12–13: 3 findings",
    );
    expect(lines[1]).toMatch(/^ {16}first: records-x\.ndjson:1: gap$/);
    expect(lines[2]).toBe("  modified      records-x.ndjson:1: d");
    expect(lines.at(-1)).toMatch(/--verbose lists each one/);
  });

  it("keeps separate ranges apart, and groups lines of one file and manifest indexes", () => {
    const lines = formatFindings([
      f({ category: "inserted", seq: 10 }),
      f({ category: "inserted", seq: 11 }),
      f({ category: "inserted", seq: 40 }),
      f({ category: "malformed", location: "records-x.ndjson:5" }),
      f({ category: "malformed", location: "records-x.ndjson:6" }),
      f({ category: "malformed", location: "records-x.ndjson:7" }),
      f({ manifest: 3, lastManifest: 4 }),
      f({ manifest: 5 }),
    ]).filter((l) => !l.includes("first:"));
    expect(lines).toEqual([
      "  inserted      seq 10–11 (2 records): 2 findings",
      "  inserted      records-x.ndjson:1: d",
      "  malformed     records-x.ndjson:5–7 (3 lines): 3 findings",
      "  missing       manifests 3–5 (3 manifests): 2 findings",
      expect.stringMatching(/grouped/),
    ]);
  });

  it("lists every finding with verbose", () => {
    const all = [f({ seq: 1 }), f({ seq: 2 })];
    expect(formatFindings(all, { verbose: true })).toHaveLength(2);
  });
});

describe("the progress line", () => {
  it("draws at most every interval, with the count, rate and chain, and clears itself", () => {
    const written: string[] = [];
    let now = 1_000;
    const line = new ProgressLine(
      { write: (t: string) => written.push(t), columns: 200 },
      () => now,
    );
    line.startSource("file:/data/out");
    now += 1_000;
    line.records("chain-a", 1_000);
    now += 100;
    line.records("chain-a", 2_000); // within the interval: not drawn
    now += 1_000;
    line.records("chain-b", 500); // chain-a's 2,000 and chain-b's 500
    line.done();
    expect(written).toHaveLength(3);
    expect(written[0]).toContain(
      "verifying file:/data/out: 1,000 records read (1,000/s), chain chain-a",
    );
    expect(written[1]).toContain("2,500 records read");
    expect(written[1]).toContain("chain chain-b");
    expect(written[2]).toBe("\r\u001b[2K");
  });

  it("writes nothing when nothing was read", () => {
    const written: string[] = [];
    const line = new ProgressLine({ write: (t: string) => written.push(t) });
    line.startSource("file:x");
    line.done();
    expect(written).toEqual([]);
  });
});

describe("retired keys", () => {
  it("retire a key from its rotation entry, until a later entry names it again", () => {
    const retired = RetiredKeys.of([
      { entry: 5, treeSize: 30, keyId: "k+b", newKeyId: "k+a" }, // B → A, back
      { entry: 2, treeSize: 10, keyId: "k+a", newKeyId: "k+b" }, // A → B
      { entry: 4, treeSize: 20, keyId: "k+a", newKeyId: "k+c" }, // by A once retired: void
    ]);
    expect(retired.atEntry("k+a", 2)).toBeUndefined(); // the rotation entry itself
    expect(retired.atEntry("k+a", 3)?.entry).toBe(2);
    expect(retired.atEntry("k+a", 6)).toBeUndefined(); // brought back at 5
    expect(retired.atEntry("k+b", 6)?.entry).toBe(5);
    expect(retired.atEntry("k+c", 9)).toBeUndefined();
    expect(retired.atSize("k+a", 10)).toBeUndefined();
    expect(retired.atSize("k+a", 11)?.entry).toBe(2);
    expect(retired.atSize("k+a", 30)?.entry).toBe(2);
    expect(retired.atSize("k+a", 31)).toBeUndefined();
    expect(retired.atSize("k+b", 31)?.entry).toBe(5);
  });
});

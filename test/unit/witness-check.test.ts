import { describe, expect, it } from "vitest";
import { leafHash } from "../../agent/integrity/format.js";
import {
  consistencyProof,
  EMPTY_TREE_HASH,
  leavesSource,
  treeHash,
} from "../../agent/integrity/merkle.js";
import { checkExtends, EMPTY_TREE, type TreeHead } from "../../agent/witness/check.js";
import { LogDirectory } from "../../agent/witness/logs.js";
import { KeyedMutex } from "../../agent/witness/mutex.js";
import { isRefusal, parseAddCheckpoint } from "../../agent/witness/request.js";
import { generateSigningKey } from "../../agent/integrity/signing.js";

/**
 * The witness's rules without a server: which checkpoint extends which (check.ts, every
 * tlog-witness status), the add-checkpoint body, log lookup, and the per-log queue.
 */

const leaves = Array.from({ length: 20 }, (_, i) => leafHash(Buffer.from(`l${i}`)));
const source = leavesSource(leaves);
const head = async (size: number): Promise<TreeHead> => ({
  size,
  rootHash: Buffer.from(await treeHash(size, source)),
});
const proof = async (m: number, n: number) =>
  (await consistencyProof(m, n, source)).map((h) => Buffer.from(h));

describe("checkExtends", () => {
  it("accepts every real extension 0 < m ≤ n ≤ 20, and from the empty tree", async () => {
    for (let n = 0; n <= 20; n++) {
      expect(checkExtends(EMPTY_TREE, 0, [], await head(n))).toBeNull();
      for (let m = 1; m <= n; m++)
        expect(
          checkExtends(await head(m), m, await proof(m, n), await head(n)),
          `${m}→${n}`,
        ).toBeNull();
    }
  });

  it("refuses with the spec's status and the reason counted", async () => {
    const five = await head(5);
    const other = { size: 8, rootHash: Buffer.alloc(32, 7) };
    const cases: [TreeHead, number, Buffer[], TreeHead, number, string][] = [
      [five, 6, [], five, 400, "malformed"],
      [EMPTY_TREE, 0, [], { size: 0, rootHash: Buffer.alloc(32) }, 422, "invalid_proof"],
      [five, 3, await proof(3, 8), await head(8), 409, "stale_old_size"],
      [five, 3, [], await head(3), 409, "rollback"],
      [five, 0, [], { size: 5, rootHash: Buffer.alloc(32, 1) }, 409, "fork"],
      [EMPTY_TREE, 0, await proof(2, 5), five, 422, "invalid_proof"],
      [five, 5, await proof(2, 5), five, 422, "invalid_proof"],
      [five, 5, [], { size: 5, rootHash: Buffer.alloc(32, 1) }, 422, "fork"],
      [five, 5, [], await head(8), 422, "invalid_proof"],
      // A proof that does not verify is refused, but proves nothing by itself: not a fork.
      [five, 5, await proof(5, 8), other, 422, "invalid_proof"],
      [five, 5, (await proof(5, 8)).slice(1), await head(8), 422, "invalid_proof"],
    ];
    for (const [cosigned, old, p, next, status, reason] of cases)
      expect(checkExtends(cosigned, old, p, next), `${old}→${next.size} ${reason}`).toMatchObject({
        status,
        reason,
      });
    expect(checkExtends(five, 0, [], five)).toMatchObject({ latestSize: 5 });
    expect(checkExtends(EMPTY_TREE, 0, [], { size: 0, rootHash: EMPTY_TREE_HASH })).toBeNull();
  });
});

describe("parseAddCheckpoint", () => {
  it("splits the old size, the proof and the note at the first empty line", () => {
    const hash = Buffer.alloc(32, 3);
    const note = "o\n1\nroot\n\n\u2014 o sig\n";
    const r = parseAddCheckpoint(Buffer.from(`old 12\n${hash.toString("base64")}\n\n${note}`));
    expect(r).toEqual({ oldSize: 12, proof: [hash], note, origin: "o" });
  });

  it("refuses non-canonical sizes, bad hashes and too many proof lines as malformed", () => {
    const line = `${Buffer.alloc(32).toString("base64")}\n`;
    for (const body of [
      "old 007\n\nx\n",
      "old  1\n\nx\n",
      "old 1 \n\nx\n",
      "old 99999999999999999999\n\nx\n",
      "old 1\nAAAA\n\nx\n",
      `old 1\n${Buffer.alloc(32).toString("base64url")}_\n\nx\n`,
      `old 1\n${line.repeat(64)}\nx\n`,
      "\ufeffold 1\n\nx\n",
    ]) {
      const r = parseAddCheckpoint(Buffer.from(body));
      expect(isRefusal(r) && r.status === 400 && r.reason === "malformed", body).toBe(true);
    }
    expect(isRefusal(parseAddCheckpoint(Buffer.from(`old 1\n${line.repeat(63)}\nx\n`)))).toBe(
      false,
    );
  });
});

describe("LogDirectory", () => {
  it("finds the exact origin first, else the longest prefix", () => {
    const key = generateSigningKey("k").public;
    const logs = new LogDirectory([
      { originPrefix: "a/", keys: [key] },
      { originPrefix: "a/b/", keys: [key] },
      { origin: "a/b/c", keys: [key] },
    ]);
    expect(logs.find("a/b/c")?.label).toBe("a/b/c");
    expect(logs.find("a/b/d")).toMatchObject({ origin: "a/b/d", label: "a/b/*" });
    expect(logs.find("a/x")?.label).toBe("a/*");
    expect(logs.find("b")).toBeNull();
  });
});

describe("KeyedMutex", () => {
  it("runs calls for one key one at a time, in order, and other keys alongside", async () => {
    const mutex = new KeyedMutex();
    const events: string[] = [];
    const task = (name: string, ms: number) => async () => {
      events.push(`${name} start`);
      await new Promise((r) => setTimeout(r, ms));
      events.push(`${name} end`);
      if (name === "a1") throw new Error("a1 fails");
      return name;
    };
    const results = await Promise.allSettled([
      mutex.run("a", task("a1", 20)),
      mutex.run("a", task("a2", 1)),
      mutex.run("b", task("b1", 5)),
    ]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled", "fulfilled"]);
    expect(events.indexOf("a2 start")).toBeGreaterThan(events.indexOf("a1 end"));
    expect(events.indexOf("b1 end")).toBeLessThan(events.indexOf("a1 end"));
  });
});

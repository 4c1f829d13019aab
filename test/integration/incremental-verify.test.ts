import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { fileSource } from "../../agent/exporters/file/reader.js";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import { emptyState, readState, writeState } from "../../agent/verify/state.js";
import { verifySource } from "../../agent/verify/verify.js";
import { makeTempDir, postAuditRecords, startInProcessAgent, waitFor } from "../helpers/agent.js";

/**
 * `verify --state`: a clean run records what it established; the next run reads and checks
 * only what came after, proving that the new records extend the verified tree, and reports
 * a rewritten or removed tail against what the state vouches for.
 */

const BATCH = 20;
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Runs an agent on `dir` (same WAL and output each time) and sends `count` records. */
async function produce(dir: string, from: number, count: number): Promise<string> {
  const a = await startInProcessAgent({ dir, grpc: false, batchMaxRecords: BATCH });
  try {
    expect(await postAuditRecords(a.httpUrl, from, count)).toBe(200);
    const last = from + count - 1;
    await waitFor(
      () =>
        a.agent.sealed.sealedThrough === last && a.agent.deliveries[0]?.deliveredThrough === last,
      15_000,
      "delivered",
    );
  } finally {
    await a.stop();
  }
  return a.outDir;
}

/**
 * An agent's output of `count` records in a temp dir, verified clean once with a new state:
 * what most cases start from.
 */
async function cleanRun(prefix: string, count: number) {
  const tmp = makeTempDir(prefix);
  cleanups.push(tmp.cleanup);
  const out = await produce(tmp.path, 0, count);
  const trusted = readTrustedKeys([join(tmp.path, "keys", "signing.pub")]);
  const state = emptyState();
  expect((await verifySource(fileSource(out), trusted, [], { state })).findings).toEqual([]);
  const chainId = Object.keys(state.chains)[0] as string;
  return { tmp, out, trusted, state, chainId, chainDir: join(out, chainId) };
}

describe("incremental verification (verify --state)", () => {
  it("checks only what came after a clean run, and catches a rewrite after it", async () => {
    const tmp = makeTempDir("incremental-");
    cleanups.push(tmp.cleanup);
    const out = await produce(tmp.path, 0, 100);
    const trusted = readTrustedKeys([join(tmp.path, "keys", "signing.pub")]);
    const statePath = join(tmp.path, "verifier-state.json");

    // A full run with no state file yet: clean, and the state vouches for every sealed record.
    const state = readState(statePath);
    expect(state).toEqual(emptyState());
    const full = await verifySource(fileSource(out), trusted, [], { state });
    expect(full.findings).toEqual([]);
    expect(full.ok).toBe(true);
    const chainId = Object.keys(state.chains)[0] as string;
    expect(state.chains[chainId]?.treeSize).toBe(100);
    writeState(statePath, state);

    // More records; the next run starts from the state and only reads what is new.
    await produce(tmp.path, 100, 60);
    const next = readState(statePath);
    let read = 0;
    const incremental = await verifySource(fileSource(out), trusted, [], {
      state: next,
      onRecords: (_, n) => (read = n),
    });
    expect(incremental.findings).toEqual([]);
    expect(incremental.chains[0]?.records).toBe(160);
    expect(next.chains[chainId]?.treeSize).toBe(160);
    expect(read).toBeLessThan(160);
    writeState(statePath, next);

    // A record after the state point rewritten (re-hashed links would need the key for the
    // batch root): the incremental run reports it and the state does not advance.
    await produce(tmp.path, 160, 40);
    const chainDir = join(out, chainId);
    const segment = readdirSync(chainDir)
      .filter((n) => n.startsWith("records-"))
      .sort()
      .pop() as string;
    const text = readFileSync(join(chainDir, segment), "utf8");
    writeFileSync(join(chainDir, segment), text.replace('"record 170"', '"record 17O"'));
    const after = readState(statePath);
    const tampered = await verifySource(fileSource(out), trusted, [], { state: after });
    expect(tampered.findings.map((f) => f.category)).toContain("modified");
    expect(after.chains[chainId]?.treeSize).toBe(160);
  });

  it("advances past records no batch covers yet (read while the agent writes), reporting them", async () => {
    const tmp = makeTempDir("incremental-");
    cleanups.push(tmp.cleanup);
    const out = await produce(tmp.path, 0, 100);
    const trusted = readTrustedKeys([join(tmp.path, "keys", "signing.pub")]);
    const state = emptyState();
    expect((await verifySource(fileSource(out), trusted, [], { state })).findings).toEqual([]);
    await produce(tmp.path, 100, 60);
    const chainId = Object.keys(state.chains)[0] as string;
    const chainDir = join(out, chainId);
    const last = readdirSync(chainDir)
      .filter((n) => n.startsWith("records-"))
      .sort()
      .pop() as string;
    const lines = readFileSync(join(chainDir, last), "utf8").split("\n").filter(Boolean);
    // A genuine-looking next record (linked to seq 159) that no signed batch covers yet.
    const newest = lines[lines.length - 1] as string;
    const link = createHash("sha256")
      .update(Buffer.from([0]))
      .update(newest)
      .digest("hex");
    const tail = newest
      .replace(/"prev":"[0-9a-f]{64}"/, `"prev":"${link}"`)
      .replace(/"seq":"159"/, '"seq":"160"');
    writeFileSync(join(chainDir, last), [...lines, tail].map((l) => `${l}\n`).join(""));
    const report = await verifySource(fileSource(out), trusted, [], { state });
    expect(report.findings.map((f) => [f.category, f.seq])).toEqual([["inserted", 160]]);
    expect(state.chains[chainId]?.treeSize).toBe(160);
  });

  it("reports a tail removed below what the state vouches for, and a removed chain", async () => {
    const { out, trusted, state, chainId } = await cleanRun("incremental-", 100);
    const chainDir = join(out, chainId);
    // Cut the last batches: records and manifests (a consistent-looking, shorter chain).
    for (const name of readdirSync(chainDir)) {
      const path = join(chainDir, name);
      const lines = readFileSync(path, "utf8").split("\n").filter(Boolean);
      const keep = name.startsWith("records-") ? lines.slice(0, 60) : lines.slice(0, 3);
      writeFileSync(path, keep.map((l) => `${l}\n`).join(""));
    }
    const report = await verifySource(fileSource(out), trusted, [], {
      state: structuredClone(state),
    });
    expect(report.findings.map((f) => f.category)).toContain("truncated");
    // The same cut without a state file verifies: only a checkpoint or state kept elsewhere
    // can tell (integrity-format §7.3).
    expect((await verifySource(fileSource(out), trusted)).findings).toEqual([]);

    const empty = makeTempDir("incremental-empty-");
    cleanups.push(empty.cleanup);
    const gone = await verifySource(fileSource(empty.path), trusted, [], {
      state: structuredClone(state),
    });
    expect(gone.findings.map((f) => [f.category, f.chainId])).toEqual([["truncated", chainId]]);
  });
});

describe("incremental verification of the manifests", () => {
  it("resumes the chain of manifests where the state left it, with the same summary as a full run", async () => {
    const { tmp, out, trusted, state, chainId } = await cleanRun("incremental-manifests-", 60);
    const earlier = state.chains[chainId]?.manifests;
    expect(earlier).toMatchObject({ next: 3, batches: 3, sealedThrough: 59, checkpoints: 3 });
    expect(earlier?.lastHash).toMatch(/^[0-9a-f]{64}$/);

    await produce(tmp.path, 60, 40);
    const incremental = await verifySource(fileSource(out), trusted, [], { state });
    const full = await verifySource(fileSource(out), trusted);
    expect(incremental.findings).toEqual([]);
    // What the summary says of batches, keys and checkpoints does not depend on the state.
    const pick = (r: typeof full) =>
      r.chains.map(({ batches, keys, checkpoints, latestCheckpoint, sealedThrough }) => ({
        batches,
        keys,
        checkpoints,
        latestCheckpoint,
        sealedThrough,
      }));
    expect(pick(incremental)).toEqual(pick(full));
    expect(state.chains[chainId]?.manifests).toMatchObject({ next: 5, batches: 5 });
  });

  it("does not check again the manifests the state vouches for, but the last of them must still be there", async () => {
    const { out, trusted, state, chainId } = await cleanRun("incremental-manifests-", 60);
    const chainDir = join(out, chainId);
    const segment = readdirSync(chainDir).find((n) => n.startsWith("manifests-")) as string;
    const original = readFileSync(join(chainDir, segment), "utf8");
    const lines = original.split("\n").filter(Boolean);

    // Entry 0's signature altered on a backend that is not write-once: an incremental run
    // does not read it again (the state vouches for it); a full run and a spot check do.
    const resigned = lines.map((l, i) =>
      i === 0
        ? l.replace(/"signature":"(.)/, (_m, c: string) => `"signature":"${c === "A" ? "B" : "A"}`)
        : l,
    );
    writeFileSync(join(chainDir, segment), resigned.map((l) => `${l}\n`).join(""));
    expect(
      (await verifySource(fileSource(out), trusted, [], { state: structuredClone(state) }))
        .findings,
    ).toEqual([]);
    const full = await verifySource(fileSource(out), trusted);
    expect(full.findings.map((f) => f.category)).toContain("bad-signature");
    const spotted = await verifySource(fileSource(out), trusted, [], {
      state: structuredClone(state),
      spotCheck: 10,
    });
    expect(spotted.findings.map((f) => f.category)).toContain("bad-signature");

    // The last entry the state vouches for rewritten: history below the state changed.
    const rewritten = lines.map((l, i) =>
      i === lines.length - 1
        ? l.replace(/"createdAt":"[^"]*"/, '"createdAt":"2020-01-01T00:00:00.000Z"')
        : l,
    );
    expect(rewritten).not.toEqual(lines);
    writeFileSync(join(chainDir, segment), rewritten.map((l) => `${l}\n`).join(""));
    const modified = await verifySource(fileSource(out), trusted, [], {
      state: structuredClone(state),
    });
    expect(modified.findings.map((f) => [f.category, f.manifest])).toContainEqual(["modified", 2]);
    expect(modified.ok).toBe(false);
  });
});

describe("a report of a backend damaged everywhere", () => {
  it("lists the first findings of a chain and counts the rest, and fails", async () => {
    const tmp = makeTempDir("findings-limit-");
    cleanups.push(tmp.cleanup);
    const out = await produce(tmp.path, 0, 60);
    const trusted = readTrustedKeys([join(tmp.path, "keys", "signing.pub")]);
    const chainDir = join(out, readdirSync(out)[0] as string);
    // Every manifest gone: each record is one no signed batch covers.
    for (const name of readdirSync(chainDir))
      if (name.startsWith("manifests-")) writeFileSync(join(chainDir, name), "");
    const all = await verifySource(fileSource(out), trusted);
    expect(all.findings).toHaveLength(60);
    const limited = await verifySource(fileSource(out), trusted, [], { maxFindings: 5 });
    expect(limited.findings).toEqual(all.findings.slice(0, 5));
    expect(limited.ok).toBe(false);
    expect(limited.chains[0]?.notes).toContain(
      "55 more findings were not listed: a report lists the first 5 of a chain",
    );
  });
});

describe("verify --state on the command line", () => {
  it("writes the state on a clean run, reads only what is new the next time, and spot-checks", async () => {
    const { spawnSync } = await import("node:child_process");
    const { CLI } = await import("../helpers/agent.js");
    const tmp = makeTempDir("incremental-cli-");
    cleanups.push(tmp.cleanup);
    const out = await produce(tmp.path, 0, 60);
    const statePath = join(tmp.path, "state.json");
    const pub = join(tmp.path, "keys", "signing.pub");
    const run = (...extra: string[]) =>
      spawnSync(
        process.execPath,
        [CLI, "verify", "--source", `file:${out}`, "--trust", pub, "--json", ...extra],
        { encoding: "utf8" },
      );
    const first = run("--state", statePath);
    expect(first.status, first.stderr).toBe(0);
    const chainId = Object.keys(readState(statePath).chains)[0] as string;
    expect(readState(statePath).chains[chainId]?.treeSize).toBe(60);

    await produce(tmp.path, 60, 40);
    // An old record altered: an incremental run does not read it again, a spot check does.
    const chainDir = join(out, chainId);
    const segment = readdirSync(chainDir).find((n) => n.startsWith("records-")) as string;
    const text = readFileSync(join(chainDir, segment), "utf8");
    writeFileSync(join(chainDir, segment), text.replace('"record 5"', '"record S"'));
    const unseen = run("--state", statePath);
    expect(unseen.status, unseen.stderr).toBe(0);
    expect(readState(statePath).chains[chainId]?.treeSize).toBe(100);
    const spotted = run("--state", statePath, "--spot-check", "1000");
    expect(spotted.status).toBe(1);
    const report = JSON.parse(spotted.stdout) as { findings: { category: string; seq?: number }[] };
    expect(report.findings.map((f) => [f.category, f.seq])).toContainEqual(["modified", 5]);
    // A full run (no state) finds it too; --spot-check without --state is a usage error.
    expect(run().status).toBe(1);
    expect(run("--spot-check", "3").status).toBe(2);
  });
});

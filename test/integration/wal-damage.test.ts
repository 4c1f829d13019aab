import {
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import type { WalReport } from "../../agent/cli/wal-check.js";
import type { DeclaredLossReport } from "../../agent/verify/types.js";
import { AgentError } from "../../agent/common/errors.js";
import {
  CLI,
  makeTempDir,
  postAuditRecords,
  readOutput,
  startInProcessAgent,
  verifyOutputArgs,
  waitFor,
} from "../helpers/agent.js";

/**
 * A damaged write-ahead log is never opened destructively (issue 14): a WAL directory whose
 * CURRENT file is gone holds every record still, and LevelDB, opening it, would start an empty
 * database and delete the old tables. The agent refuses, changes nothing, and says how to
 * recover; after that one step every record is there.
 */

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An agent's WAL in a temp dir holding 50 acknowledged, delivered records; the agent stopped. */
async function walWith50(prefix: string) {
  const tmp = makeTempDir(prefix);
  cleanups.push(tmp.cleanup);
  const first = await startInProcessAgent({ dir: tmp.path, grpc: false });
  expect(await postAuditRecords(first.httpUrl, 0, 50)).toBe(200);
  await waitFor(() => first.agent.deliveries[0]?.deliveredThrough === 49, 10_000, "delivery");
  const chainId = first.agent.chainId;
  await first.stop();
  return { tmp, chainId, wal: join(tmp.path, "wal") };
}

describe("a write-ahead log without its CURRENT file", () => {
  it("is refused with WAL_DAMAGED and the command that recovers it; nothing is deleted", async () => {
    const { tmp, chainId, wal } = await walWith50("wal-damage-");
    const current = readFileSync(join(wal, "CURRENT"), "utf8");
    unlinkSync(join(wal, "CURRENT"));
    const before = readdirSync(wal)
      .filter((n) => !n.startsWith("LOG"))
      .map((n) => [n, statSync(join(wal, n)).size] as const)
      .sort();

    const err = await startInProcessAgent({ dir: tmp.path, grpc: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe("WAL_DAMAGED");
    expect((err as Error).message).toContain(`printf '${current.trim()}\\n' > ${wal}/CURRENT`);
    // Nothing changed: the same files, the same sizes, still no CURRENT.
    expect(existsSync(join(wal, "CURRENT"))).toBe(false);
    expect(
      readdirSync(wal)
        .filter((n) => !n.startsWith("LOG"))
        .map((n) => [n, statSync(join(wal, n)).size] as const)
        .sort(),
    ).toEqual(before);

    // The one recovery step the error gives, and the chain goes on where it was.
    writeFileSync(join(wal, "CURRENT"), `${current.trim()}\n`);
    const again = await startInProcessAgent({ dir: tmp.path, grpc: false });
    cleanups.push(() => again.stop());
    expect(again.agent.chainId).toBe(chainId);
    expect(await postAuditRecords(again.httpUrl, 50, 5)).toBe(200);
    await waitFor(() => again.agent.deliveries[0]?.deliveredThrough === 54, 10_000, "delivery");
    const out = await readOutput(again.outDir);
    expect(out.records).toHaveLength(55);
    expect(out.findings).toEqual([]);
  });
});

describe("a write-ahead log that lost acknowledged records", () => {
  it("is refused with WAL_RECORDS_LOST naming the lost range, instead of reusing their seqs", async () => {
    const { tmp, chainId, wal } = await walWith50("wal-lost-");
    // The records (and the keys naming the chain) were only in LevelDB's log: delete it.
    expect(readdirSync(wal)).toContain("AUDIT-HEAD");
    for (const n of readdirSync(wal)) if (n.endsWith(".log")) unlinkSync(join(wal, n));

    const err = await startInProcessAgent({ dir: tmp.path, grpc: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe("WAL_RECORDS_LOST");
    expect((err as Error).message).toContain(
      `chain ${chainId} was acknowledged through seq 49 (${join(wal, "AUDIT-HEAD")}), but the log holds none of that chain, so seq 0..49 are gone`,
    );
    // Refused again on the next start: no new chain was written over the old one.
    const again = await startInProcessAgent({ dir: tmp.path, grpc: false }).catch(
      (e: unknown) => e,
    );
    expect((again as AgentError).code).toBe("WAL_RECORDS_LOST");
  });
});

describe("audit-agent wal check", () => {
  const check = (wal: string) =>
    spawnSync(process.execPath, [CLI, "wal", "check", "--dir", wal, "--json"], {
      encoding: "utf8",
    });

  it("says what a sound WAL holds (exit 0), and names the lost range of one that lost records (exit 1)", async () => {
    const { chainId, wal } = await walWith50("wal-check-");
    const sound = check(wal);
    expect(sound.status, sound.stderr).toBe(0);
    const report = JSON.parse(sound.stdout) as WalReport;
    expect(report).toMatchObject({
      chainId,
      head: { seq: 49 },
      journaled: { chainId, seq: 49 },
      // Delivered everywhere, so released: the log holds none of them.
      held: null,
      intact: [],
      damaged: [],
      problems: [],
    });
    expect(report.sealed.sealedThrough).toBe(49);
    expect(Object.keys(report.cursors)).toEqual(["file"]);

    // Another WAL whose records were only in LevelDB's log (opening one, as the check just
    // did, moves them into a table): the log deleted.
    const other = await walWith50("wal-check-lost-");
    for (const n of readdirSync(other.wal)) if (n.endsWith(".log")) unlinkSync(join(other.wal, n));
    const lost = check(other.wal);
    expect(lost.status).toBe(1);
    expect((JSON.parse(lost.stdout) as WalReport).problems).toEqual([
      `${join(other.wal, "AUDIT-HEAD")} names chain ${other.chainId}, which the log no longer holds`,
    ]);
  });
});

/** `audit-agent <args>`, synchronously. */
const cli = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });

interface VerifyJson {
  ok: boolean;
  chains: Array<{ chainId: string; records: number; notes: string[] }>;
  findings: unknown[];
  declaredLosses?: DeclaredLossReport[];
}

/** `audit-agent verify --json` of the file exporter's output under `dir`. */
function verifyOutput(dir: string, status = 0): VerifyJson {
  const run = cli(...verifyOutputArgs(dir));
  expect(run.status, run.stderr).toBe(status);
  return JSON.parse(run.stdout) as VerifyJson;
}

describe("a write-ahead log directory deleted while its exported output exists", () => {
  it("is refused (the anchor beside it remembers the chain); wal new-chain declares the loss and verify reports it", async () => {
    const { tmp, chainId, wal } = await walWith50("wal-deleted-");
    rmSync(wal, { recursive: true, force: true });

    const err = await startInProcessAgent({ dir: tmp.path, grpc: false }).catch((e: unknown) => e);
    expect((err as AgentError).code).toBe("WAL_RECORDS_LOST");
    expect((err as Error).message).toContain(
      `chain ${chainId} was acknowledged through seq 49 (${wal}.anchor), but the log holds none of that chain, so seq 0..49 are gone`,
    );
    expect((err as Error).message).toContain(`audit-agent wal new-chain --dir ${wal}`);
    // wal check says the same, without opening anything.
    const check = cli("wal", "check", "--dir", wal, "--json");
    expect(check.status).toBe(1);

    // The one way on: a new chain that declares the loss.
    const declared = cli("wal", "new-chain", "--dir", wal, "--reason", "volume deleted by mistake");
    expect(declared.status, declared.stderr).toBe(0);
    expect(declared.stdout).toContain(`chain ${chainId}: acknowledged through seq 49`);
    expect(declared.stdout).toContain("declared lost: seq 0..49");
    // Nothing more to declare: a second new-chain refuses.
    const again = cli("wal", "new-chain", "--dir", wal, "--reason", "again");
    expect(again.stderr).toContain("WAL_NOTHING_LOST");

    const next = await startInProcessAgent({ dir: tmp.path, grpc: false });
    expect(next.agent.chainId).not.toBe(chainId);
    expect(await postAuditRecords(next.httpUrl, 50, 5)).toBe(200);
    await waitFor(() => next.agent.deliveries[0]?.deliveredThrough === 4, 10_000, "delivery");
    await next.stop();

    const report = verifyOutput(tmp.path);
    expect(report.ok).toBe(true);
    expect(report.findings).toEqual([]);
    expect(report.declaredLosses).toEqual([
      expect.objectContaining({
        chainId,
        declaredBy: next.agent.chainId,
        lostFrom: 0,
        lostThrough: 49,
        // Every declared record was exported before the WAL went: none is missing.
        missingFrom: null,
        reason: "volume deleted by mistake",
      }),
    ]);
    const old = report.chains.find((c) => c.chainId === chainId);
    expect(old?.notes.join("\n")).toContain("missing: none");
  });

  it("a declared loss the backend does not cover is reported with the seqs missing from it", async () => {
    const { tmp, chainId, wal } = await walWith50("wal-deleted-tail-");
    rmSync(wal, { recursive: true, force: true });
    expect(cli("wal", "new-chain", "--dir", wal, "--reason", "disk died").status).toBe(0);
    const next = await startInProcessAgent({ dir: tmp.path, grpc: false });
    expect(await postAuditRecords(next.httpUrl, 50, 1)).toBe(200);
    await waitFor(() => next.agent.deliveries[0]?.deliveredThrough === 0, 10_000, "delivery");
    await next.stop();
    // The backend lost the old chain's last 10 lines too (as if they were never exported).
    const segment = join(tmp.path, "out", chainId);
    for (const name of readdirSync(segment).filter((n) => n.startsWith("records-"))) {
      const lines = readFileSync(join(segment, name), "utf8").split("\n").filter(Boolean);
      writeFileSync(join(segment, name), `${lines.slice(0, 40).join("\n")}\n`);
    }
    // The old chain's own findings (its records end before its batches do) fail the run.
    const report = verifyOutput(tmp.path, 1);
    expect(report.declaredLosses?.[0]).toMatchObject({ chainId, missingFrom: 40, lostThrough: 49 });
  });
});

describe("the wal commands on a WAL a running agent holds", () => {
  it("refuse with WAL_IN_USE and change nothing: repair would rewrite it, new-chain move it", async () => {
    const tmp = makeTempDir("wal-in-use-");
    cleanups.push(tmp.cleanup);
    const running = await startInProcessAgent({ dir: tmp.path, grpc: false });
    cleanups.push(() => running.stop());
    expect(await postAuditRecords(running.httpUrl, 0, 10)).toBe(200);
    const wal = join(tmp.path, "wal");
    // LevelDB's own info log (LOG, LOG.old) is rotated by any open attempt, lock or not.
    const data = () =>
      readdirSync(wal)
        .filter((n) => !n.startsWith("LOG"))
        .sort();
    const before = data();
    for (const args of [
      ["wal", "repair", "--dir", wal],
      ["wal", "new-chain", "--dir", wal, "--reason", "by mistake"],
    ]) {
      const r = cli(...args);
      expect(r.status, r.stdout).not.toBe(0);
      expect(r.stderr).toContain("WAL_IN_USE");
    }
    expect(readdirSync(tmp.path).filter((n) => n.startsWith("wal."))).toEqual(["wal.anchor"]);
    expect(data()).toEqual(before);
    // The agent goes on as if nothing happened.
    expect(await postAuditRecords(running.httpUrl, 10, 10)).toBe(200);
    await waitFor(() => running.agent.deliveries[0]?.deliveredThrough === 19, 10_000, "delivery");
  });
});

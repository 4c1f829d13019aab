import { spawnSync } from "node:child_process";
import {
  existsSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { WalReport } from "../../agent/cli/wal-check.js";
import { AgentError } from "../../agent/common/errors.js";
import { parseConfig } from "../../agent/config/load.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { CLI, makeTempDir, postAuditRecords, testConfigYaml, waitFor } from "../helpers/agent.js";
import { deriveSeed, prng, testSeed } from "../helpers/prng.js";

/**
 * Each way LevelDB's files can be damaged under a WAL that holds acknowledged records not
 * yet delivered everywhere (issue 14). Whatever the damage, the agent either recovers every
 * acknowledged record or refuses to start with a coded error; a damaged record it cannot
 * see at open is caught when it is read back, before any backend gets it (the agent then
 * names it and refuses requests). Never a silent start with fewer records, never a deleted
 * table. Byte positions come from a printed seed.
 */

const SEED = testSeed("test/integration/wal-damage-matrix.test.ts");
const REFUSALS = ["WAL_DAMAGED", "WAL_RECORDS_LOST", "WAL_RECORD_ALTERED"];

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * The test config plus an exporter that never delivers (nothing listens at port 1), so the
 * WAL keeps every record: the file exporter has them, the other backend does not yet.
 */
function heldConfig(dir: string) {
  const yaml = testConfigYaml({ dir, grpc: false })
    .replace(
      "exporters:\n  file:\n",
      "exporters:\n  otlp_http/down:\n    endpoint: http://127.0.0.1:1\n    audit: true\n    retry_on_failure:\n      initial_interval: 50ms\n      max_interval: 200ms\n  file:\n",
    )
    .replace("exporters: [file]", "exporters: [file, otlp_http/down]");
  return parseConfig(yaml, "held.yaml", {});
}

async function start(dir: string): Promise<{ agent: RunningAgent; url: string }> {
  const agent = await startAgent(heldConfig(dir), createLogger("error"));
  return { agent, url: `http://${agent.addresses().otlp?.http}/v1/logs` };
}

/** 100 acknowledged records: 0..49 in a table (.ldb), 50..99 in LevelDB's log. */
async function heldWal(prefix: string) {
  const tmp = makeTempDir(prefix);
  cleanups.push(tmp.cleanup);
  for (const from of [0, 50]) {
    const { agent, url } = await start(tmp.path);
    expect(await postAuditRecords(url, from, 50)).toBe(200);
    const file = agent.deliveries.find((d) => d.exporterId === "file");
    await waitFor(() => file?.deliveredThrough === from + 49, 10_000, "file delivery");
    await agent.shutdown(1000);
  }
  return { tmp, wal: join(tmp.path, "wal") };
}

const walFiles = (wal: string, ext: string) =>
  readdirSync(wal)
    .filter((n) => n.endsWith(ext))
    .map((n) => join(wal, n));

type Damage = (wal: string, rng: ReturnType<typeof prng>) => string;

const DAMAGES: Record<string, Damage> = {
  ".log truncated": (wal, rng) => {
    const log = walFiles(wal, ".log")[0] as string;
    const size = statSync(log).size;
    const to = 1 + rng.int(size - 1);
    truncateSync(log, to);
    return `${log} truncated from ${size} to ${to} bytes`;
  },
  ".log bit-flipped": (wal, rng) => flip(walFiles(wal, ".log")[0] as string, rng),
  ".ldb truncated": (wal, rng) => {
    const ldb = walFiles(wal, ".ldb")[0] as string;
    const size = statSync(ldb).size;
    const to = rng.int(size);
    truncateSync(ldb, to);
    return `${ldb} truncated from ${size} to ${to} bytes`;
  },
  ".ldb bit-flipped": (wal, rng) => flip(walFiles(wal, ".ldb")[0] as string, rng),
};

function flip(path: string, rng: ReturnType<typeof prng>): string {
  const bytes = readFileSync(path);
  const at = rng.int(bytes.length);
  const bit = rng.int(8);
  bytes[at] = (bytes[at] as number) ^ (1 << bit);
  writeFileSync(path, bytes);
  return `${path}: bit ${bit} of byte ${at} of ${bytes.length} flipped`;
}

describe(`a WAL holding undelivered records, damaged (seed ${SEED.hex})`, () => {
  for (const [name, damage] of Object.entries(DAMAGES)) {
    it(`${name}: every acknowledged record recovered, or a coded refusal; no table deleted`, async () => {
      const { tmp, wal } = await heldWal("wal-matrix-");
      const tables = walFiles(wal, ".ldb").sort();
      expect(tables.length, "records 0..49 are in a table").toBeGreaterThan(0);
      const rng = prng(deriveSeed(SEED.seed, Object.keys(DAMAGES).indexOf(name)));
      const what = damage(wal, rng);

      let started: { agent: RunningAgent; url: string } | null = null;
      try {
        started = await start(tmp.path);
      } catch (err) {
        // Refused: coded, and the tables are all still there.
        expect(err, `${what}: ${String(err)}`).toBeInstanceOf(AgentError);
        expect(REFUSALS, `${what}: ${String(err)}`).toContain((err as AgentError).code);
        expect(walFiles(wal, ".ldb").sort(), what).toEqual(expect.arrayContaining(tables));
        return;
      }
      const { agent } = started;
      // The other backend reads every held record back from disk while it retries: an
      // altered one is caught there, if anywhere.
      await new Promise((r) => setTimeout(r, 1500));
      const altered = agent.wal.faults.altered;
      await agent.shutdown(1000);
      if (altered) {
        expect(altered.seq, what).toBeGreaterThanOrEqual(0);
        expect(altered.seq, what).toBeLessThanOrEqual(99);
        return;
      }
      // Started and saw nothing wrong: then every acknowledged record is there, intact.
      const check = spawnSync(process.execPath, [CLI, "wal", "check", "--dir", wal, "--json"], {
        encoding: "utf8",
      });
      const report = JSON.parse(check.stdout) as WalReport;
      expect(report.problems, what).toEqual([]);
      expect(report.intact, what).toEqual([{ from: 0, through: 99 }]);
    });
  }
});

describe("audit-agent wal repair", () => {
  const repair = (wal: string) =>
    spawnSync(process.execPath, [CLI, "wal", "repair", "--dir", wal, "--json"], {
      encoding: "utf8",
    });

  it("rebuilds a WAL without CURRENT, keeps a copy as it was, and says every record survived", async () => {
    const { tmp, wal } = await heldWal("wal-repair-");
    unlinkSync(join(wal, "CURRENT"));
    const run = repair(wal);
    expect(run.status, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { copy: string; report: WalReport };
    expect(existsSync(result.copy)).toBe(true);
    expect(existsSync(join(result.copy, "CURRENT"))).toBe(false);
    expect(result.report.intact).toEqual([{ from: 0, through: 99 }]);
    expect(result.report.problems).toEqual([]);
    const { agent } = await start(tmp.path);
    expect(agent.wal.headSeq).toBe(99);
    await agent.shutdown(1000);
  });

  it("after records were lost, names exactly which seqs survived and exits 1", async () => {
    const { wal } = await heldWal("wal-repair-lost-");
    // Records 50..99 were only in LevelDB's log.
    for (const log of walFiles(wal, ".log")) unlinkSync(log);
    const run = repair(wal);
    expect(run.status, run.stderr).toBe(1);
    const { report } = JSON.parse(run.stdout) as { report: WalReport };
    expect(report.intact).toEqual([{ from: 0, through: 49 }]);
    expect(report.problems.join("\n")).toContain("seq 50..99 are lost");
  });
});

import { cpSync, existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ClassicLevel } from "classic-level";
import { AgentError } from "../common/errors.js";
import { Store } from "../store/store.js";
import { type WalReport, walCheck } from "./wal-check.js";

/**
 * `audit-agent wal repair --dir DIR`: LevelDB's own repair (it rebuilds the database's
 * manifest and CURRENT from the tables and logs it finds, keeping every record it can
 * read), on a WAL the agent refuses as WAL_DAMAGED; then the full check of `wal check`, so
 * the operator learns exactly which seqs survived, intact and linked. A copy of the
 * directory as it was is kept first: repair rewrites files, and the damaged ones are
 * evidence.
 */
export interface RepairResult {
  copy: string;
  report: WalReport;
}

export async function walRepair(directory: string): Promise<RepairResult> {
  if (!existsSync(directory))
    throw new AgentError("WAL_OPEN_FAILED", `no write-ahead log at ${directory}`);
  await refuseInUse(directory);
  const copy = `${directory.replace(/\/+$/, "")}.before-repair-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  try {
    cpSync(directory, copy, { recursive: true, preserveTimestamps: true });
  } catch (err) {
    // No repair without the copy of the WAL as it was; a partial copy is not kept.
    rmSync(copy, { recursive: true, force: true });
    throw new AgentError(
      "WAL_REPAIR_FAILED",
      `cannot copy ${directory} to ${copy} before repairing it (${(err as Error).message}); nothing was changed. Free space or make the parent directory writable, then run the command again`,
      { cause: err },
    );
  }
  try {
    await ClassicLevel.repair(directory);
  } catch (err) {
    throw new AgentError(
      "WAL_REPAIR_FAILED",
      `LevelDB could not repair ${directory} (${(err as Error).message}); the directory as it was is copied at ${copy}. Restore the WAL from a backup, or start a new chain: \`audit-agent wal new-chain --dir ${directory} --reason "<what happened>"\``,
      { cause: err },
    );
  }
  return { copy, report: await walCheck(directory) };
}

/**
 * LevelDB's repair ignores the lock a running agent holds, and would rewrite the files under
 * it: opening the store first takes the lock, or says who has it (WAL_IN_USE). A WAL too
 * damaged to open is what repair is for.
 */
async function refuseInUse(directory: string): Promise<void> {
  if (!existsSync(join(directory, "CURRENT"))) return; // no agent can have it open
  try {
    await (await Store.open(directory)).close();
  } catch (err) {
    if (err instanceof AgentError && err.code === "WAL_IN_USE") throw err;
  }
}

export function formatRepair(r: RepairResult, format: (report: WalReport) => string): string {
  const next =
    r.report.problems.length === 0
      ? "the WAL is sound again: start the agent"
      : `records were lost or altered: the agent will refuse this WAL. Keep ${r.copy}; start a new chain that declares the loss with \`audit-agent wal new-chain --dir ${r.report.directory} --reason "<what happened>"\``;
  return `LevelDB repair done; the directory as it was is copied at ${r.copy}\n${format(r.report)}${next}\n`;
}

import { existsSync, readdirSync } from "node:fs";
import { AgentError } from "../common/errors.js";
import { acknowledgedHead } from "../store/head-journal.js";
import { storedChainId, storedHead } from "../store/chain-log.js";
import { CURSOR_RANGE, exporterOfCursorKey } from "../store/keyspace.js";
import { type RecordSurvey, surveyRecords } from "../store/record-survey.js";
import { SealedLog } from "../store/sealed-log.js";
import { Store } from "../store/store.js";

/**
 * `audit-agent wal check --dir DIR`: what a write-ahead log holds and whether it is sound,
 * for an operator deciding what to do with one (docs/errors.md: WAL_DAMAGED,
 * WAL_RECORDS_LOST, WAL_RECORD_ALTERED). Run with the agent stopped (LevelDB's lock). It
 * reads every record held through the same checks as export, and goes on past damage, so
 * it says exactly which seqs survive.
 */
export interface WalReport {
  directory: string;
  chainId: string | null;
  head: { seq: number; hash: string } | null;
  /** How far the chain was acknowledged (AUDIT-HEAD or the anchor beside the directory). */
  journaled: { chainId: string; seq: number; file: string } | null;
  held: { firstSeq: number; lastSeq: number; bytes: number } | null;
  /** Runs of intact, linked records, and the records found damaged. */
  intact: RecordSurvey["intact"];
  damaged: RecordSurvey["damaged"];
  sealed: { entries: number; sealedThrough: number };
  cursors: Record<string, string>;
  problems: string[];
}

export async function walCheck(directory: string): Promise<WalReport> {
  const acked = acknowledgedHead(directory);
  const journaled = acked && { chainId: acked.chainId, seq: acked.seq, file: acked.file };
  if (!existsSync(directory) || readdirSync(directory).length === 0) {
    if (!acked) throw new AgentError("WAL_OPEN_FAILED", `no write-ahead log at ${directory}`);
    return {
      ...emptyReport(directory),
      journaled,
      problems: [
        `the directory holds no log, but ${acked.file} says chain ${acked.chainId} was acknowledged through seq ${acked.seq} here: seq 0..${acked.seq} are lost to this WAL (what was exported is in the backends)`,
      ],
    };
  }
  const store = await Store.open(directory);
  try {
    const chainId = await storedChainId(store);
    const head = await storedHead(store);
    const survey = await surveyRecords(store);
    const sealed = await SealedLog.open(store, chainId ?? "");
    const cursors: Record<string, string> = {};
    for await (const [key, value] of store.entries(CURSOR_RANGE))
      cursors[exporterOfCursorKey(key)] = value.toString("utf8");
    const first = survey.intact[0]?.from ?? survey.damaged[0]?.from;
    const last = Math.max(
      survey.intact.at(-1)?.through ?? -1,
      survey.damaged.at(-1)?.through ?? -1,
    );
    return {
      directory,
      chainId,
      head,
      journaled,
      held: first === undefined ? null : { firstSeq: first, lastSeq: last, bytes: survey.bytes },
      intact: survey.intact,
      damaged: survey.damaged,
      sealed: { entries: sealed.entryCount, sealedThrough: sealed.sealedThrough },
      cursors,
      problems: problemsOf(chainId, head?.seq ?? -1, journaled, survey),
    };
  } finally {
    await store.close();
  }
}

function emptyReport(directory: string): WalReport {
  return {
    directory,
    chainId: null,
    head: null,
    journaled: null,
    held: null,
    intact: [],
    damaged: [],
    sealed: { entries: 0, sealedThrough: -1 },
    cursors: {},
    problems: [],
  };
}

function problemsOf(
  chainId: string | null,
  headSeq: number,
  journaled: WalReport["journaled"],
  survey: RecordSurvey,
): string[] {
  const problems: string[] = [];
  if (journaled && journaled.chainId !== chainId)
    problems.push(
      `${journaled.file} names chain ${journaled.chainId}, which the log no longer holds${chainId ? ` (it holds chain ${chainId})` : ""}`,
    );
  else if (journaled && headSeq < journaled.seq)
    problems.push(
      `acknowledged through seq ${journaled.seq} (${journaled.file}) but the log ends at seq ${headSeq}: seq ${headSeq + 1}..${journaled.seq} are lost`,
    );
  for (const d of survey.damaged) problems.push(`records ${d.from}..${d.through}: ${d.detail}`);
  for (let i = 1; i < survey.intact.length; i++) {
    const before = survey.intact[i - 1] as { through: number };
    const run = survey.intact[i] as { from: number };
    if (run.from > before.through + 1 && !survey.damaged.some((d) => d.from === before.through + 1))
      problems.push(`records ${before.through + 1}..${run.from - 1} are absent`);
    else if (run.from === before.through + 1)
      problems.push(`record ${run.from} does not link to seq ${before.through}`);
  }
  return problems;
}

export function formatWalReport(r: WalReport): string {
  const runs = r.intact.map((s) => `${s.from}..${s.through}`).join(", ");
  const lines = [
    `write-ahead log ${r.directory}`,
    `  chain ${r.chainId ?? "(none)"}, head seq ${r.head?.seq ?? -1}${r.journaled ? `, acknowledged through seq ${r.journaled.seq} (${r.journaled.file})` : ""}`,
    `  records held: ${r.held ? `seq ${r.held.firstSeq}..${r.held.lastSeq}; intact and linked: ${runs || "none"} (${r.held.bytes} bytes), each checked against its leaf hash and link` : "none"}`,
    `  sealed: ${r.sealed.entries} entries, through seq ${r.sealed.sealedThrough}`,
    `  exporters' cursors (seq:entry): ${
      Object.entries(r.cursors)
        .map(([id, c]) => `${id} ${c}`)
        .join(", ") || "none"
    }`,
    r.problems.length === 0 ? "OK: sound" : `DAMAGED: ${r.problems.length} problems`,
    ...r.problems.map((p) => `  ${p}`),
  ];
  return `${lines.join("\n")}\n`;
}

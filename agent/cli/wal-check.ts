import { existsSync } from "node:fs";
import { AgentError } from "../common/errors.js";
import { ChunkIndex, RecordAlteredError } from "../store/chunk-index.js";
import { readJournal } from "../store/head-journal.js";
import { storedChainId, storedHead } from "../store/chain-log.js";
import { CURSOR_RANGE, exporterOfCursorKey } from "../store/keyspace.js";
import { SealedLog } from "../store/sealed-log.js";
import { Store } from "../store/store.js";

/**
 * `audit-agent wal check --dir DIR`: what a write-ahead log holds and whether it is sound,
 * for an operator deciding what to do with one (docs/errors.md: WAL_DAMAGED,
 * WAL_RECORDS_LOST, WAL_RECORD_ALTERED). Run with the agent stopped (LevelDB's lock). It
 * reads every record held through the same check as export, so an altered one is found.
 */
export interface WalReport {
  directory: string;
  chainId: string | null;
  head: { seq: number; hash: string } | null;
  journaled: { chainId: string; seq: number } | null;
  held: { firstSeq: number; lastSeq: number; bytes: number } | null;
  sealed: { entries: number; sealedThrough: number };
  cursors: Record<string, string>;
  problems: string[];
}

export async function walCheck(directory: string): Promise<WalReport> {
  if (!existsSync(directory))
    throw new AgentError("WAL_OPEN_FAILED", `no write-ahead log at ${directory}`);
  const store = await Store.open(directory);
  try {
    const chainId = await storedChainId(store);
    const head = await storedHead(store);
    const journal = readJournal(directory);
    const problems: string[] = [];
    if (journal && journal.chainId !== chainId)
      problems.push(`AUDIT-HEAD names chain ${journal.chainId}, which the log no longer holds`);
    else if (journal && (head?.seq ?? -1) < journal.seq)
      problems.push(
        `acknowledged through seq ${journal.seq} (AUDIT-HEAD) but the log ends at seq ${head?.seq ?? -1}: seq ${(head?.seq ?? -1) + 1}..${journal.seq} are lost`,
      );
    const index = await ChunkIndex.scan(store, 0);
    const first = index.firstSeq;
    let last = first === null ? -1 : first - 1;
    let bytes = 0;
    try {
      for (let after = (first ?? 0) - 1; ;) {
        const batch = await index.read(after, 10_000, 64 << 20);
        if (batch.length === 0) break;
        for (const r of batch) bytes += r.value.length;
        after = last = (batch[batch.length - 1] as { seq: number }).seq;
      }
    } catch (err) {
      if (!(err instanceof RecordAlteredError)) throw err;
      problems.push(`record seq ${err.damage.seq} ${err.damage.detail}`);
    }
    const sealed = await SealedLog.open(store, chainId ?? "");
    const cursors: Record<string, string> = {};
    for await (const [key, value] of store.entries(CURSOR_RANGE))
      cursors[exporterOfCursorKey(key)] = value.toString("utf8");
    return {
      directory,
      chainId,
      head,
      journaled: journal && { chainId: journal.chainId, seq: journal.seq },
      held: first === null ? null : { firstSeq: first, lastSeq: last, bytes },
      sealed: { entries: sealed.entryCount, sealedThrough: sealed.sealedThrough },
      cursors,
      problems,
    };
  } finally {
    await store.close();
  }
}

export function formatWalReport(r: WalReport): string {
  const lines = [
    `write-ahead log ${r.directory}`,
    `  chain ${r.chainId ?? "(none)"}, head seq ${r.head?.seq ?? -1}${r.journaled ? `, acknowledged through seq ${r.journaled.seq} (AUDIT-HEAD)` : ""}`,
    `  records held: ${r.held ? `seq ${r.held.firstSeq}..${r.held.lastSeq} (${r.held.bytes} bytes), each checked against its leaf hash and link` : "none"}`,
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

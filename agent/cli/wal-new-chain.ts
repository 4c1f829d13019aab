import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, renameSync } from "node:fs";
import { AgentError } from "../common/errors.js";
import { MAX_REASON } from "../integrity/manifest.js";
import { createChain, storedChainId, storedHead } from "../store/chain-log.js";
import { acknowledgedHead, writeAcknowledgedHead } from "../store/head-journal.js";
import { CURSOR_RANGE } from "../store/keyspace.js";
import { Store } from "../store/store.js";

/**
 * `audit-agent wal new-chain --dir DIR --reason TEXT`: the one way past WAL_RECORDS_LOST.
 * The agent refuses a WAL that lost acknowledged records rather than reuse their seqs or
 * quietly start over; this command moves the old directory aside (kept as evidence, never
 * deleted) and makes a new chain in DIR whose first sealed entry declares, signed, which
 * seqs of the old chain were acknowledged but may not be in the backends (integrity-format
 * §10.5). Verifiers report that declaration; nothing about the loss is left to silence.
 */
export interface NewChainResult {
  predecessor: string;
  acknowledgedThrough: number;
  /** Every exporter had delivered the old chain through this seq (-1: none, or unknown). */
  deliveredThrough: number;
  lostFrom: number;
  lostThrough: number;
  /** Where the old directory now is, or null when there was none. */
  keptAt: string | null;
  chainId: string;
}

export async function walNewChain(directory: string, reason: string): Promise<NewChainResult> {
  if (reason.trim() === "" || reason.length > MAX_REASON)
    throw new AgentError(
      "WAL_NEW_CHAIN_USAGE",
      `--reason must say what happened, in 1 to ${MAX_REASON} characters`,
    );
  const acked = acknowledgedHead(directory);
  if (!acked)
    throw new AgentError(
      "WAL_NOTHING_LOST",
      `nothing says a chain was acknowledged at ${directory} (no AUDIT-HEAD, no anchor): there is no loss to declare. An empty directory starts a new chain by itself`,
    );
  const old = await inspectOld(directory, acked.chainId);
  if (old.headSeq !== null && old.headSeq >= acked.seq)
    throw new AgentError(
      "WAL_NOTHING_LOST",
      `the write-ahead log at ${directory} holds chain ${acked.chainId} through seq ${old.headSeq}, all that was acknowledged: there is no loss to declare`,
    );
  const lostThrough = acked.seq;
  const lostFrom = Math.min(old.deliveredThrough + 1, lostThrough);
  let keptAt: string | null = null;
  if (existsSync(directory) && readdirSync(directory).length > 0) {
    keptAt = `${directory.replace(/\/+$/, "")}.lost-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    renameSync(directory, keptAt);
  }
  const chainId = randomBytes(16).toString("hex");
  const store = await Store.open(directory);
  try {
    await createChain(store, chainId, {
      chainId: acked.chainId,
      lostFrom,
      lostThrough,
      reason,
    });
  } finally {
    await store.close();
  }
  // The journal and anchor name the new chain now: the old one's loss is declared.
  await writeAcknowledgedHead(directory, { chainId, seq: -1, hash: "" });
  return {
    predecessor: acked.chainId,
    acknowledgedThrough: acked.seq,
    deliveredThrough: old.deliveredThrough,
    lostFrom,
    lostThrough,
    keptAt,
    chainId,
  };
}

/** What the old directory still says about the chain: its head, and how far all exporters got. */
async function inspectOld(
  directory: string,
  chainId: string,
): Promise<{ headSeq: number | null; deliveredThrough: number }> {
  const unknown = { headSeq: null, deliveredThrough: -1 };
  if (!existsSync(directory) || readdirSync(directory).length === 0) return unknown;
  let store: Store;
  try {
    store = await Store.open(directory);
  } catch (err) {
    // A running agent holds it: that is no loss to declare, and nothing may be moved.
    if (err instanceof AgentError && err.code === "WAL_IN_USE") throw err;
    return unknown; // damaged: what it held is for `wal check` and `wal repair` to say
  }
  try {
    if ((await storedChainId(store)) !== chainId) return unknown;
    const head = await storedHead(store);
    let delivered = Number.POSITIVE_INFINITY;
    for await (const [, value] of store.entries(CURSOR_RANGE))
      delivered = Math.min(delivered, Number(value.toString("utf8").split(":")[0]));
    return {
      headSeq: head?.seq ?? -1,
      deliveredThrough: Number.isFinite(delivered) ? delivered : -1,
    };
  } finally {
    await store.close();
  }
}

export function formatNewChain(r: NewChainResult, directory: string): string {
  return [
    `chain ${r.predecessor}: acknowledged through seq ${r.acknowledgedThrough}; every exporter had delivered through seq ${r.deliveredThrough}`,
    `declared lost: seq ${r.lostFrom}..${r.lostThrough} (verifiers report what of it the backends do not hold)`,
    r.keptAt
      ? `the old write-ahead log is kept at ${r.keptAt}: keep it as evidence`
      : "the old write-ahead log directory was gone",
    `new chain ${r.chainId} in ${directory}: start the agent; its first sealed entry declares the loss`,
    "with witnesses and a fixed extensions.signing.origin: the witnesses hold the old chain's tree for that origin and will refuse the new one; give the new chain its own origin (for example with the chain id in it)",
    "",
  ].join("\n");
}

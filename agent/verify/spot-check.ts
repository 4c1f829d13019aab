import { randomInt } from "node:crypto";
import { checkEnvelope } from "../integrity/chain-check.js";
import { leafHash } from "../integrity/format.js";
import { Frontier } from "../integrity/frontier.js";
import type { ChainReader, ReadProblems } from "../exporters/source.js";
import type { Finding } from "./types.js";
import { findingAdder, range } from "./verify-findings.js";
import type { BatchInfo } from "./verify-manifests.js";
import { leafOf, RecordWindow, windowRecord } from "./record-window.js";

/**
 * Spot checks for incremental runs (`verify --state … --spot-check N`): records an earlier
 * run verified are not read again, so a backend that is not write-once could change them
 * unseen. N signed batches among those are picked at random and read again whole: their
 * records must link to each other and to the batch's signed `prevLeaf`, and reproduce its
 * signed Merkle root. With N at least the number of batches, every one is checked.
 */
export async function spotCheck(
  reader: ChainReader,
  batches: readonly BatchInfo[],
  before: number,
  count: number,
  findings: Finding[],
): Promise<void> {
  const eligible = batches.filter((b) => Number(b.lastSeq) < before);
  await checkBatches(reader, pick(eligible, count), findings);
}

/** Reads again each of `batches` (verified batch entries) and checks its records. */
export async function checkBatches(
  reader: ChainReader,
  batches: readonly BatchInfo[],
  findings: Finding[],
): Promise<void> {
  const ordered = [...batches].sort((a, b) => Number(a.firstSeq) - Number(b.firstSeq));
  for (const batch of ordered) await checkBatch(reader, batch, findings);
}

/** `count` of `items` at random (all of them when there are no more). */
export function pick<T>(items: readonly T[], count: number): T[] {
  if (count >= items.length) return [...items];
  const pool = [...items];
  for (let i = 0; i < count; i++) {
    const j = i + randomInt(pool.length - i);
    [pool[i], pool[j]] = [pool[j] as T, pool[i] as T];
  }
  return pool.slice(0, count);
}

async function checkBatch(reader: ChainReader, batch: BatchInfo, findings: Finding[]) {
  const chainId = reader.chainId;
  const add = findingAdder(findings, chainId);
  const first = Number(batch.firstSeq);
  const last = Number(batch.lastSeq);
  const tree = new Frontier();
  let held = 0;
  const committed = new Map<number, string>([[last, batch.lastLeaf]]);
  const window = new RecordWindow(
    chainId,
    committed,
    { reordered: add, copies: add, links: add },
    (rec) => {
      if (rec.seq > last) return;
      held++;
      tree.append(leafOf(rec));
    },
    undefined,
    first > 0 ? { seq: first - 1, leaf: Buffer.from(batch.prevLeaf, "hex") } : undefined,
  );
  const quiet: ReadProblems = { finding: () => {}, note: () => {} };
  // Read through the record after the batch: it carries the link that checks the last one.
  let done = false;
  for await (const page of reader.records(quiet, first)) {
    for (const line of page) {
      const env = checkEnvelope(line.text);
      if (typeof env === "string" || env.chainId !== chainId) continue;
      const seq = Number(env.seq);
      if (seq < first) continue;
      if (seq > last + 1) {
        done = true;
        break;
      }
      const rec = windowRecord(
        seq,
        leafHash(Buffer.from(line.text, "utf8")),
        Buffer.from(env.prev, "hex"),
        line.location,
        env.timeReceivedUnixNano,
      );
      window.add(rec);
    }
    if (done) break;
  }
  const next = window.end();
  if (next <= last)
    add(
      "missing",
      batch.location,
      `spot check: records ${range(next, last)} of signed batch ${batch.index} are absent`,
      { seq: next, lastSeq: last, manifest: Number(batch.index) },
    );
  else if (held === last - first + 1 && tree.root().toString("hex") !== batch.batchRoot)
    add(
      "modified",
      batch.location,
      `spot check: records ${range(first, last)} do not match the Merkle root signed in batch ${batch.index}`,
      { seq: first, lastSeq: last, manifest: Number(batch.index) },
    );
}

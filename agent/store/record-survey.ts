import { appendChunkRecords, chunkOf, storedCount } from "./chunk.js";
import { alteredRecord, prevOf } from "./chunk-index.js";
import { RECORD_RANGE, seqOfRecordKey } from "./keyspace.js";
import type { StoredRecord } from "./record.js";
import type { Store } from "./store.js";

/**
 * Every record a WAL holds, read chunk by chunk and checked as export checks them (each
 * record against its stored leaf hash, each `prev` against the record before it, across
 * chunks too), for `wal check` and `wal repair`: which seqs survive, intact and linked, and
 * which are damaged or absent. Unlike a read for export it goes on past a damaged chunk.
 */
export interface SeqRange {
  from: number;
  through: number;
}

export interface RecordSurvey {
  /** Runs of intact records, each linked from its first record to its last. */
  intact: SeqRange[];
  /** Records held but altered (or unreadable), with what is wrong. */
  damaged: Array<SeqRange & { detail: string }>;
  /** Bytes of the intact records. */
  bytes: number;
}

export async function surveyRecords(store: Store): Promise<RecordSurvey> {
  const survey: RecordSurvey = { intact: [], damaged: [], bytes: 0 };
  let lastLeaf: string | null = null;
  let run: SeqRange | null = null;
  for await (const [key, stored] of store.entries(RECORD_RANGE)) {
    const firstSeq = seqOfRecordKey(key);
    const count = storedCount(stored);
    const records = await intactRecords(firstSeq, stored, count, survey);
    if (records === null) {
      lastLeaf = null;
      run = null;
      continue;
    }
    const first = records[0] as StoredRecord;
    const last = records[records.length - 1] as StoredRecord;
    // A run goes on only with the very next seq that links to it: a gap or a broken link
    // starts another.
    if (run !== null && run.through === firstSeq - 1 && prevOf(first.value) === lastLeaf)
      run.through = last.seq;
    else survey.intact.push((run = { from: firstSeq, through: last.seq }));
    lastLeaf = last.leafHashHex();
    for (const r of records) survey.bytes += r.value.length;
  }
  return survey;
}

/** The records of one stored chunk when every one is intact; else null, the damage noted. */
async function intactRecords(
  firstSeq: number,
  stored: Buffer,
  count: number,
  survey: RecordSurvey,
): Promise<StoredRecord[] | null> {
  const through = firstSeq + Math.max(count, 1) - 1;
  try {
    const chunk = await chunkOf(stored);
    const damage = alteredRecord(firstSeq, chunk, count);
    if (damage) {
      survey.damaged.push({
        from: firstSeq,
        through,
        detail: `seq ${damage.seq} ${damage.detail}`,
      });
      return null;
    }
    const records: StoredRecord[] = [];
    appendChunkRecords(records, firstSeq, chunk, firstSeq, Infinity, Infinity, 0);
    return records.length > 0 ? records : null;
  } catch (err) {
    survey.damaged.push({
      from: firstSeq,
      through,
      detail: `its chunk cannot be read (${(err as Error).message})`,
    });
    return null;
  }
}

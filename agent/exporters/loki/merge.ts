import type { Entry } from "./query.js";
import type { Batch } from "./windows.js";

/**
 * Merges the streams (and shards) of one chain into storage order: by timestamp, then by
 * the record's seq, then by stream and line, so equal timestamps come out the same way on
 * every read.
 *
 * Each stream hands on complete windows: a batch says the stream has nothing more before
 * `through`. Entries older than every open stream's `through` can be handed on; the stream
 * whose `through` is the smallest is read next. A stream is read only once all it held
 * was handed on, so at most one batch per stream is held (see windows.ts for a batch's
 * bound).
 */
export async function* mergeStreams(
  streams: readonly AsyncGenerator<Batch>[],
): AsyncGenerator<Entry[]> {
  const open = streams.map((it) => ({ it, held: [] as Entry[], through: -1n, done: false }));
  try {
    for (;;) {
      const reading = open.filter((s) => !s.done);
      if (reading.length === 0) return;
      const next = reading.reduce((m, s) => (s.through < m.through ? s : m));
      const got = await next.it.next();
      if (got.done) next.done = true;
      else {
        next.held.push(...got.value.entries);
        next.through = got.value.through;
      }
      const bound = open
        .filter((s) => !s.done)
        .reduce<bigint | null>((m, s) => (m === null || s.through < m ? s.through : m), null);
      const out: Entry[] = [];
      for (const s of open) {
        let n = 0;
        while (n < s.held.length && (bound === null || (s.held[n] as Entry).ts < bound)) n++;
        if (n > 0) out.push(...s.held.splice(0, n));
      }
      if (out.length > 0) yield out.sort(storageOrder);
    }
  } finally {
    await Promise.all(open.map((s) => s.it.return(undefined)));
  }
}

export function storageOrder(a: Entry, b: Entry): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
  const sa = recordSeq(a.line);
  const sb = recordSeq(b.line);
  if (sa !== sb) return sa < sb ? -1 : 1;
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  return a.line < b.line ? -1 : a.line > b.line ? 1 : 0;
}

/**
 * The seq of a record line, read without parsing it: `"seq":"N"` of the envelope, its last
 * occurrence (RFC 8785 orders the envelope's members, `seq` after `record`). Other lines:
 * Infinity.
 */
function recordSeq(line: string): number {
  const at = line.lastIndexOf('"seq":"');
  if (at < 0) return Infinity;
  const m = /^\d+/.exec(line.slice(at + 7, at + 40));
  return m ? Number(m[0]) : Infinity;
}

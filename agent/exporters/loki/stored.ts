import { RetryableExportError } from "../api.js";
import { type LokiQuery, type Range, labelText } from "./query.js";

/**
 * What Loki already holds of a batch that is about to be sent again (after a crash, or a
 * retry whose request may have arrived). Loki drops a re-sent entry only within its stream,
 * and Loki 3 shards a busy stream (`shard_streams`: `__stream_shard__`), spreading a push's
 * entries over the shards anew each time: a re-sent batch would land in other shards and be
 * stored twice. So the sink asks first, and sends only what is not there.
 *
 * The answer must be complete: a query_range with limit N returns N entries per stream and
 * query shard, merged (docs/exporter-loki.md, Reading back), so a window that comes back
 * full, or larger than a gRPC message, is split in two until each part comes back short.
 */
export async function storedStamps(
  query: LokiQuery,
  labels: Record<string, string>,
  range: Range,
  /** The line this exporter sends at a timestamp of the range. */
  expected: (ts: bigint) => string | undefined,
): Promise<Set<bigint>> {
  const found = new Set<bigint>();
  const selector = labelText(labels);
  query.acquire();
  try {
    const pending: Range[] = [range];
    while (pending.length > 0) {
      const [start, end] = pending.pop() as Range;
      let answer: Awaited<ReturnType<LokiQuery["range"]>>;
      try {
        answer = await query.range(selector, [start, end], { direction: "forward" });
      } catch (err) {
        throw new RetryableExportError(
          `before sending a batch again, Loki was asked what it already holds, and could not answer: ${(err as Error).message}`,
          undefined,
          { cause: err },
        );
      }
      const splittable = end - start > 1n;
      const full = answer.kind === "entries" && answer.entries.length >= answer.limit;
      if ((answer.kind === "too-big" || full) && splittable) {
        const mid = start + (end - start) / 2n;
        pending.push([mid, end], [start, mid]);
        continue;
      }
      if (answer.kind !== "entries")
        throw new RetryableExportError(
          `before sending a batch again, Loki was asked what it already holds: ${answer.detail}`,
        );
      for (const e of answer.entries) if (expected(e.ts) === e.line) found.add(e.ts);
    }
  } finally {
    await query.release();
  }
  return found;
}

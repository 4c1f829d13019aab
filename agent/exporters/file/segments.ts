import { readdir } from "node:fs/promises";
import { join } from "node:path";

/**
 * Output files come in pairs named by the seq of the first record they hold, zero-padded
 * so that name order is seq order: records-00000000000000000000.ndjson holds record lines,
 * manifests-00000000000000000000.ndjson the signed manifests (with checkpoints) of the
 * batches whose records start in that records segment.
 */
export type SegmentKind = "records" | "manifests";

const SEGMENT = /^(records|manifests)-(\d{20})\.ndjson$/;

export function segmentName(firstSeq: number, kind: SegmentKind = "records"): string {
  return `${kind}-${String(firstSeq).padStart(20, "0")}.ndjson`;
}

/** Segment file paths of one kind in a chain directory, in seq order. */
export async function listSegments(
  chainDir: string,
  kind: SegmentKind = "records",
): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(chainDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return names
    .filter((n) => SEGMENT.exec(n)?.[1] === kind)
    .sort()
    .map((n) => join(chainDir, n));
}

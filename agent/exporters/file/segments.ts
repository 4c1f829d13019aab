import { readdir } from "node:fs/promises";
import { join } from "node:path";

/**
 * Segment files are named by the seq of their first record, zero-padded so that name
 * order is seq order: records-00000000000000000000.ndjson.
 */
const SEGMENT = /^records-(\d{20})\.ndjson$/;

export function segmentName(firstSeq: number): string {
  return `records-${String(firstSeq).padStart(20, "0")}.ndjson`;
}

/** Segment file paths of one chain directory, in seq order. */
export async function listSegments(chainDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(chainDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return names
    .filter((n) => SEGMENT.test(n))
    .sort()
    .map((n) => join(chainDir, n));
}

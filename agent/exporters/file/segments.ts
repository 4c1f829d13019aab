import type { Dirent } from "node:fs";
import { readdir, stat } from "node:fs/promises";
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

/** A directory entry named like a segment: its path, and why it cannot be read as one. */
export interface SegmentEntry {
  name: string;
  path: string;
  /** Null for a regular file (or a link to one); else what it is instead, e.g. "a directory". */
  problem: string | null;
}

/**
 * The entries of a chain directory named like segments of one kind, in seq order, each with
 * what keeps it from being read as a segment: only a regular file, or a symbolic link to
 * one, holds lines. A missing directory has none.
 */
export async function segmentEntries(
  chainDir: string,
  kind: SegmentKind = "records",
): Promise<SegmentEntry[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(chainDir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const named = entries
    .filter((e) => SEGMENT.exec(e.name)?.[1] === kind)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: SegmentEntry[] = [];
  for (const e of named) {
    const path = join(chainDir, e.name);
    out.push({ name: e.name, path, problem: await notASegmentFile(e, path) });
  }
  return out;
}

async function notASegmentFile(entry: Dirent, path: string): Promise<string | null> {
  if (entry.isFile()) return null;
  if (!entry.isSymbolicLink()) return `${kindOf(entry)}, not a file`;
  let target;
  try {
    target = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ELOOP" || code === "ENOTDIR")
      return "a symbolic link to nothing (dangling)";
    throw err;
  }
  return target.isFile() ? null : `a symbolic link to ${kindOf(target)}, not to a file`;
}

/** What a directory entry that is not a regular file is, for a finding. */
function kindOf(e: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isBlockDevice(): boolean;
  isCharacterDevice(): boolean;
}): string {
  if (e.isDirectory()) return "a directory";
  if (e.isFIFO()) return "a named pipe";
  if (e.isSocket()) return "a socket";
  if (e.isBlockDevice() || e.isCharacterDevice()) return "a device";
  return "a special file";
}

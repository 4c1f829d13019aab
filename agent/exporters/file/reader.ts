import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ChainFinding, StoredLine } from "../../integrity/chain-check.js";
import { AgentError } from "../../common/errors.js";
import { type AuditSource, addManifestLine, type ChainData } from "../source.js";
import { listSegments } from "./segments.js";

/**
 * A quick reader of the file exporter's record lines for tests and tools: an identical
 * repeated line is skipped, a differing one reported. The verifier does not use this; it
 * reads every copy through fileSource() and judges them itself (docs/integrity-format.md §6, §7).
 */
export interface FileChain {
  chainId: string;
  lines: StoredLine[];
  findings: ChainFinding[];
}

const SEQ_FIELD = /"seq":"(\d+)"/;

export async function readFileExport(directory: string): Promise<FileChain[]> {
  return (await fileSource(directory).readChains()).map(quickChain);
}

/** Applies the quick reader's rule to what fileSource read: identical copies skipped, differing ones reported. */
function quickChain(data: ChainData): FileChain {
  const lines: StoredLine[] = [];
  const findings: ChainFinding[] = data.findings.map((f) => ({
    kind: f.category as ChainFinding["kind"],
    seq: f.seq ?? null,
    location: f.location,
    detail: f.detail,
  }));
  const bySeq = new Map<number, string>();
  for (const line of data.records) {
    const m = SEQ_FIELD.exec(line.text);
    const seq = m ? Number(m[1]) : null;
    if (seq !== null && bySeq.has(seq)) {
      if (bySeq.get(seq) !== line.text) {
        findings.push({
          kind: "duplicate",
          seq,
          location: line.location,
          detail: `a second, different record with seq ${seq}`,
        });
      }
      continue; // identical re-write: harmless, skipped
    }
    if (seq !== null) bySeq.set(seq, line.text);
    lines.push(line);
  }
  return { chainId: data.chainId, lines, findings };
}

/**
 * The file exporter's side of `verify --source file:DIR`: every record and manifest line
 * of every chain under DIR, in storage order, copies included (judging them is the
 * verifier's job).
 */
export function fileSource(directory: string): AuditSource {
  return {
    description: `file:${directory}`,
    async readChains(): Promise<ChainData[]> {
      let entries;
      try {
        entries = await readdir(directory, { withFileTypes: true });
      } catch (err) {
        throw new AgentError(
          "SOURCE_UNREADABLE",
          `cannot read ${directory}: ${(err as Error).message}`,
        );
      }
      const chains: ChainData[] = [];
      for (const entry of entries
        .filter((e) => e.isDirectory())
        .sort((a, b) => (a.name < b.name ? -1 : 1))) {
        chains.push(await readChainData(join(directory, entry.name)));
      }
      return chains;
    },
  };
}

async function readLines(
  path: string,
): Promise<{ line: string; location: string; terminated: boolean }[]> {
  const text = await readFile(path, "utf8");
  const parts = text.split("\n");
  const last = parts.pop() as string;
  const out = parts.map((line, i) => ({
    line,
    location: `${basename(path)}:${i + 1}`,
    terminated: true,
  }));
  if (last !== "")
    out.push({ line: last, location: `${basename(path)}:${parts.length + 1}`, terminated: false });
  return out;
}

async function readChainData(chainDir: string): Promise<ChainData> {
  const chainId = basename(chainDir);
  const data: ChainData = { chainId, records: [], manifests: [], findings: [], notes: [] };
  for (const segment of await listSegments(chainDir, "records")) {
    for (const { line, location, terminated } of await readLines(segment)) {
      if (!terminated) {
        data.findings.push({
          category: "malformed",
          chainId,
          location,
          detail: "unterminated final line (an interrupted write, or a cut file)",
        });
        continue;
      }
      data.records.push({ text: line, location });
    }
  }
  for (const segment of await listSegments(chainDir, "manifests")) {
    for (const { line, location, terminated } of await readLines(segment)) {
      if (!terminated) {
        data.findings.push({
          category: "malformed",
          chainId,
          location,
          detail: "manifest entry: unterminated final line",
        });
        continue;
      }
      addManifestLine(data, line, location);
    }
  }
  return data;
}

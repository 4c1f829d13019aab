import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ChainFinding, StoredLine } from "../../chain/chain-check.js";
import { AgentError } from "../../common/errors.js";
import { type AuditSource, addManifestLine, type ChainData } from "../../verify/types.js";
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
  const chains: FileChain[] = [];
  const entries = await readdir(directory, { withFileTypes: true });
  for (const entry of entries
    .filter((e) => e.isDirectory())
    .sort((a, b) => (a.name < b.name ? -1 : 1))) {
    chains.push(await readFileChain(join(directory, entry.name)));
  }
  return chains;
}

export async function readFileChain(chainDir: string): Promise<FileChain> {
  const lines: StoredLine[] = [];
  const findings: ChainFinding[] = [];
  const bySeq = new Map<number, string>();
  let maxSeq = -1;
  for (const segment of await listSegments(chainDir)) {
    const text = await readFile(segment, "utf8");
    const parts = text.split("\n");
    if (parts[parts.length - 1] === "") parts.pop();
    parts.forEach((line, i) => {
      const location = `${basename(segment)}:${i + 1}`;
      const m = SEQ_FIELD.exec(line);
      const seq = m ? Number(m[1]) : null;
      if (seq !== null && seq <= maxSeq && bySeq.has(seq)) {
        if (bySeq.get(seq) !== line) {
          findings.push({
            kind: "duplicate",
            seq,
            location,
            detail: `a second, different record with seq ${seq}`,
          });
        }
        return; // identical re-write: harmless, skipped
      }
      if (seq !== null) {
        bySeq.set(seq, line);
        if (seq > maxSeq) maxSeq = seq;
      }
      lines.push({ text: line, location });
    });
  }
  return { chainId: basename(chainDir), lines, findings };
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

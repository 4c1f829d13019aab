import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ChainFinding, StoredLine } from "../../chain/chain-check.js";
import { listSegments } from "./segments.js";

/**
 * Reads what the file exporter wrote. A line whose seq was already read (a re-write
 * after a crash) is skipped when byte-identical to the first copy and reported as a
 * `duplicate` finding when it differs (docs/integrity-format.md §6).
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

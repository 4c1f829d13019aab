import { createReadStream } from "node:fs";
import { readdir } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";
import { basename, join } from "node:path";
import type { ChainFinding, StoredLine } from "../../integrity/chain-check.js";
import { AgentError } from "../../common/errors.js";
import {
  type AuditSource,
  type ChainData,
  type ChainReader,
  type Finding,
  parseManifestLine,
  type ReadProblems,
  readChains,
  type RecordBytes,
  type StoredText,
} from "../source.js";
import { segmentPieces, skipBefore, withoutInvalidUtf8 } from "./segment-pages.js";
import { type SegmentKind, segmentEntries } from "./segments.js";

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
  return (await readChains(fileSource(directory))).map(quickChain);
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
 * verifier's job). Segments are read line by line, a page at a time, so reading holds one
 * page, not the log.
 */
export function fileSource(directory: string): AuditSource {
  return {
    description: `file:${directory}`,
    async *chains(): AsyncIterable<ChainReader> {
      let entries;
      try {
        entries = await readdir(directory, { withFileTypes: true });
      } catch (err) {
        throw new AgentError(
          "SOURCE_UNREADABLE",
          `cannot read ${directory}: ${(err as Error).message}`,
        );
      }
      const dirs = entries.filter((e) => e.isDirectory()).map((e) => e.name);
      for (const name of dirs.sort((a, b) => (a < b ? -1 : 1)))
        yield fileChain(join(directory, name));
    },
  };
}

function fileChain(chainDir: string): ChainReader {
  const chainId = basename(chainDir);
  const unterminated = (location: string, what: string): Finding => ({
    category: "malformed",
    chainId,
    location,
    detail: `${what}unterminated final line (an interrupted write, or a cut file)`,
  });
  async function* recordBytes(problems: ReadProblems, fromSeq = 0): AsyncIterable<RecordBytes> {
    let skipping = fromSeq > 0;
    const segments = await readableSegments(chainDir, "records", problems);
    for (const segment of segmentsFrom(segments, fromSeq)) {
      for await (const piece of segmentPieces(segment)) {
        if (piece.kind === "unterminated") {
          problems.finding(unterminated(piece.location, ""));
          continue;
        }
        const { page: valid, invalid } = withoutInvalidUtf8(piece.page);
        for (const location of invalid)
          problems.finding({
            category: "malformed",
            chainId,
            location,
            detail: "not valid UTF-8 (the agent writes only UTF-8)",
          });
        if (valid === null) continue;
        if (!skipping) {
          yield valid;
          continue;
        }
        const { page, reached } = skipBefore(valid, fromSeq);
        skipping = !reached;
        if (page !== null) yield page;
      }
    }
  }
  return {
    chainId,
    recordBytes,
    async *records(problems, fromSeq = 0) {
      for await (const { bytes, locate } of recordBytes(problems, fromSeq)) {
        const page: StoredText[] = [];
        const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        for (let start = 0, i = 0; start < buf.length; i++) {
          const end = buf.indexOf(0x0a, start);
          page.push({ text: buf.toString("utf8", start, end), location: locate(i) });
          start = end + 1;
        }
        yield page;
      }
    },
    async *manifests(problems) {
      for (const segment of await readableSegments(chainDir, "manifests", problems)) {
        for await (const { line, location, terminated } of segmentLines(segment)) {
          if (!terminated) {
            problems.finding({
              ...unterminated(location, "manifest entry: "),
              detail: "manifest entry: unterminated final line",
            });
            continue;
          }
          const parsed = parseManifestLine(chainId, line, location);
          if ("category" in parsed) problems.finding(parsed);
          else yield parsed;
        }
      }
    },
  };
}

/**
 * The segments that may hold records at or after `fromSeq`: a segment is named by its first
 * seq, so one followed by a segment starting at or before `fromSeq` holds only earlier ones.
 */
function segmentsFrom(paths: readonly string[], fromSeq: number): readonly string[] {
  if (fromSeq <= 0) return paths;
  let start = 0;
  for (let i = 1; i < paths.length; i++) {
    const first = firstSeqOf(paths[i] as string);
    if (first !== null && first <= fromSeq) start = i;
  }
  return paths.slice(start);
}

/** The first seq in a segment's name (records-<20 digits>.ndjson), or null. */
function firstSeqOf(path: string): number | null {
  const m = /-(\d{20})\.ndjson$/.exec(path);
  return m ? Number(m[1]) : null;
}

/**
 * The segment files of one kind in a chain directory, in seq order. An entry named like a
 * segment that is not a file (a directory, a dangling link, a pipe) holds no lines the agent
 * wrote: it is reported `malformed` where it is, and the rest is read.
 */
async function readableSegments(
  chainDir: string,
  kind: SegmentKind,
  problems: ReadProblems,
): Promise<string[]> {
  let entries;
  try {
    entries = await segmentEntries(chainDir, kind);
  } catch (err) {
    throw new AgentError(
      "SOURCE_UNREADABLE",
      `cannot read ${chainDir}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const paths: string[] = [];
  for (const e of entries) {
    if (e.problem === null) paths.push(e.path);
    else
      problems.finding({
        category: "malformed",
        chainId: basename(chainDir),
        location: e.name,
        detail: `named like a ${kind} segment but ${e.problem}: not read`,
      });
  }
  return paths;
}

/**
 * The lines of one segment file with their locations, read as a stream. A final line
 * without a newline is reported as not terminated (it was cut, or is still being written).
 * A file that cannot be read (permissions, an I/O error) makes the source unreadable.
 */
async function* segmentLines(
  path: string,
): AsyncIterable<{ line: string; location: string; terminated: boolean }> {
  const name = basename(path);
  const decoder = new StringDecoder("utf8");
  let rest = "";
  let n = 0;
  const chunks = createReadStream(path)[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<unknown>;
      try {
        next = await chunks.next();
      } catch (err) {
        throw new AgentError(
          "SOURCE_UNREADABLE",
          `cannot read ${path}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      if (next.done) break;
      rest += decoder.write(next.value as Buffer);
      let from = 0;
      for (let nl = rest.indexOf("\n"); nl >= 0; nl = rest.indexOf("\n", from)) {
        yield { line: rest.slice(from, nl), location: `${name}:${++n}`, terminated: true };
        from = nl + 1;
      }
      rest = rest.slice(from);
    }
  } finally {
    await chunks.return?.(); // closes the file when the reader stops early
  }
  rest += decoder.end();
  if (rest !== "") yield { line: rest, location: `${name}:${n + 1}`, terminated: false };
}

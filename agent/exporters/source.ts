import { jsonStructureProblem } from "../integrity/json-structure.js";

/**
 * The reading half of the exporter plugin API: what a backend reader hands the verifier.
 * Readers (one per exporter plugin) only fetch; every judgement is made by the verifier
 * (verify/verify-chain.ts), so a new backend adds a reader and reuses all the checks.
 */

export type FindingCategory =
  | "modified"
  | "missing"
  | "reordered"
  | "inserted"
  | "duplicate"
  | "truncated"
  | "bad-signature"
  | "unknown-key"
  | "malformed"
  /** `verify --witness`: the latest checkpoint lacks a quorum of witness cosignatures. */
  | "unwitnessed";

export interface Finding {
  category: FindingCategory;
  chainId: string;
  /** The record's seq, or the manifest index for manifest findings, when known. */
  seq?: number;
  manifest?: number;
  /** Where in the backend: file and line, object key, document id… */
  location: string;
  detail: string;
}

export interface StoredText {
  text: string;
  location: string;
}

/**
 * Record lines as their stored bytes, a page at a time: what a reader that holds bytes hands
 * over instead of StoredText pages, so the verifier hashes the bytes as stored, with no
 * decoding and re-encoding, and can check them on another thread.
 */
export interface RecordBytes {
  /**
   * Whole lines, each ending in "\n", exactly as stored. Its ArrayBuffer is the page's own:
   * the verifier may move it to another thread, so a reader never reuses it.
   */
  bytes: Uint8Array;
  /** Where the page's line `i` (from 0) is stored: file and line, object key and line… */
  locate(i: number): string;
}

export interface StoredManifest {
  /** The signed manifest as a JSON value (re-canonicalized for signature checks). */
  manifest: unknown;
  /** The C2SP signed checkpoint note stored with it, if any. */
  checkpoint: string | null;
  location: string;
}

export interface ChainData {
  chainId: string;
  /** Record lines in storage order, every copy included. */
  records: StoredText[];
  /** Manifests in storage order. */
  manifests: StoredManifest[];
  /** Problems found while reading (unreadable entries, extra object versions…). */
  findings: Finding[];
  /** Remarks about how the data was read (not findings). */
  notes: string[];
}

/**
 * A backend the verifier can read, e.g. file:DIR: chain by chain, each a stream of
 * manifests and a stream of record pages, so a reader never has to hold the whole log.
 */
export interface AuditSource {
  readonly description: string;
  /** The chains the backend holds, in chain id order. */
  chains(): AsyncIterable<ChainReader>;
}

/** One chain of a backend, read in storage order; each call reads the backend anew. */
export interface ChainReader {
  readonly chainId: string;
  /** Sealed-log entries in storage order; an unreadable one is reported to `problems`. */
  manifests(problems: ReadProblems): AsyncIterable<StoredManifest>;
  /**
   * Record lines in storage order, every copy included, a page at a time. With `fromSeq`,
   * the reader may skip what it can tell holds only earlier records (an incremental run
   * ignores those anyway); it may also hand them over.
   */
  records(problems: ReadProblems, fromSeq?: number): AsyncIterable<readonly StoredText[]>;
  /**
   * The same lines as `records` (same problems reported), as their stored bytes: for readers
   * that hold bytes. The verifier uses it when a reader has it.
   */
  recordBytes?(problems: ReadProblems, fromSeq?: number): AsyncIterable<RecordBytes>;
}

/** Where a reader reports what it found wrong, or worth saying, while it read. */
export interface ReadProblems {
  finding(finding: Finding): void;
  note(text: string): void;
}

/** Reads a whole source into memory: for tools, tests and cross-checks of small logs. */
export async function readChains(source: AuditSource): Promise<ChainData[]> {
  const out: ChainData[] = [];
  for await (const chain of source.chains()) {
    const data: ChainData = {
      chainId: chain.chainId,
      records: [],
      manifests: [],
      findings: [],
      notes: [],
    };
    const problems: ReadProblems = {
      finding: (f) => data.findings.push(f),
      note: (n) => data.notes.push(n),
    };
    for await (const page of chain.records(problems)) data.records.push(...page);
    for await (const m of chain.manifests(problems)) data.manifests.push(m);
    out.push(data);
  }
  return out;
}

/** One stored sealed-log entry line as a StoredManifest, or the `malformed` finding it is. */
export function parseManifestLine(
  chainId: string,
  line: string,
  location: string,
): StoredManifest | Finding {
  // JSON.parse keeps the last of a repeated member, where other readers keep the first: a
  // line with one, or nested deeper than the agent writes, is not used.
  const problem = jsonStructureProblem(line);
  if (problem !== null)
    return { category: "malformed", chainId, location, detail: `manifest entry: ${problem}` };
  let parsed: { manifest?: unknown; checkpoint?: unknown };
  try {
    parsed = JSON.parse(line) as typeof parsed;
    if (typeof parsed !== "object" || parsed === null || parsed.manifest === undefined) {
      throw new Error("no manifest member");
    }
    if (parsed.checkpoint !== null && typeof parsed.checkpoint !== "string") {
      throw new Error("checkpoint is not a string");
    }
  } catch (err) {
    return {
      category: "malformed",
      chainId,
      location,
      detail: `manifest entry: ${(err as Error).message}`,
    };
  }
  return {
    manifest: parsed.manifest,
    checkpoint: (parsed.checkpoint as string | null) ?? null,
    location,
  };
}

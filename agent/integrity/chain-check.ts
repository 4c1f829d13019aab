import { type EnvelopeHeader, matchEnvelope, scanAnyEnvelope } from "./canonical-check.js";
import {
  CHAIN_ID_PATTERN,
  FORMAT_VERSION,
  genesisHash,
  leafHashHex,
  SOURCE_FORMAT_VERSION,
  sourceProblem,
} from "./format.js";
import { canonicalize, type JsonValue } from "./jcs.js";
import { jsonStructureProblem } from "./json-structure.js";

/**
 * Checks one chain from its stored canonical lines alone: each line is canonical JSON of
 * the envelope, seqs are contiguous from `startSeq`, and each `prev` is the leaf hash of
 * the line before (the genesis value for seq 0). The signed-batch verifier builds on this.
 */

export type ChainFindingKind = "malformed" | "modified" | "missing" | "reordered" | "duplicate";

export interface ChainFinding {
  kind: ChainFindingKind;
  seq: number | null;
  /** Where the line was read from, e.g. "records-…ndjson:12". */
  location: string;
  detail: string;
}

export interface StoredLine {
  text: string;
  location: string;
}

export interface ChainCheckResult {
  chainId: string | null;
  records: number;
  firstSeq: number | null;
  lastSeq: number | null;
  lastHash: string | null;
  findings: ChainFinding[];
}

export interface Envelope {
  chainId: string;
  prev: string;
  seq: string;
  v: number;
  record: unknown;
  /** What the agent knew of who sent the record (§2.4); only on version-2 lines. */
  source?: Record<string, string>;
  timeReceivedUnixNano: string;
}

/**
 * Validates one stored record line and reads its members other than `record`; returns the
 * problem as a string if invalid. Valid lines take one scan (canonical-check.ts); any other
 * line is first scanned for repeated member names and for nesting deeper than the agent
 * writes (json-structure.ts), before anything recursive reads it, and then judged by
 * parseEnvelope, which also names the problem.
 */
export function checkEnvelope(text: string): EnvelopeHeader | string {
  const matched = matchEnvelope(text);
  if (matched !== null) return matched;
  const problem = jsonStructureProblem(text);
  if (problem !== null) return problem;
  return scanAnyEnvelope(text) ?? parseScannedEnvelope(text);
}

/** Parses and validates one stored record line; returns the problem as a string if invalid. */
export function parseEnvelope(text: string): Envelope | string {
  return jsonStructureProblem(text) ?? parseScannedEnvelope(text);
}

/** parseEnvelope of a line that jsonStructureProblem passed. */
function parseScannedEnvelope(text: string): Envelope | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
  const e = value as Partial<Envelope>;
  if (typeof e !== "object" || e === null) return "not a JSON object";
  if (e.v !== FORMAT_VERSION && e.v !== SOURCE_FORMAT_VERSION)
    return `unsupported format version ${JSON.stringify(e.v)}`;
  if (typeof e.chainId !== "string" || !CHAIN_ID_PATTERN.test(e.chainId)) return "bad chainId";
  if (typeof e.seq !== "string" || !/^(0|[1-9]\d*)$/.test(e.seq)) return "bad seq";
  if (typeof e.prev !== "string" || !/^[0-9a-f]{64}$/.test(e.prev)) return "bad prev";
  if (typeof e.timeReceivedUnixNano !== "string") return "bad timeReceivedUnixNano";
  if (typeof e.record !== "object" || e.record === null || Array.isArray(e.record))
    return "bad record";
  const sourced = Object.hasOwn(e, "source");
  if (sourced !== (e.v === SOURCE_FORMAT_VERSION))
    return sourced
      ? `member source in a version-${e.v} line (a line with a source has v ${SOURCE_FORMAT_VERSION})`
      : `a version-${e.v} line without its source member`;
  const problem = sourced ? sourceProblem(e.source) : null;
  if (problem !== null) return `bad source: ${problem}`;
  if (Object.keys(e).length !== (sourced ? 7 : 6))
    return "unexpected members in the record envelope";
  let canonical: string;
  try {
    canonical = canonicalize(value as JsonValue);
  } catch (err) {
    // JSON.parse reads 1e400 as Infinity, which RFC 8785 cannot write.
    return `not in RFC 8785 canonical form: ${(err as Error).message}`;
  }
  if (canonical !== text) return "not in RFC 8785 canonical form";
  return e as Envelope;
}

export function checkChain(lines: Iterable<StoredLine>, startSeq = 0): ChainCheckResult {
  const findings: ChainFinding[] = [];
  let chainId: string | null = null;
  let expectedSeq = startSeq;
  let prevHash: string | null = null;
  let firstSeq: number | null = null;
  let lastSeq: number | null = null;
  let records = 0;
  for (const line of lines) {
    const env = checkEnvelope(line.text);
    if (typeof env === "string") {
      findings.push({ kind: "malformed", seq: null, location: line.location, detail: env });
      continue;
    }
    const seq = Number(env.seq);
    if (chainId === null) {
      chainId = env.chainId;
      if (expectedSeq === 0 && seq === 0) prevHash = genesisHash(chainId).toString("hex");
    } else if (env.chainId !== chainId) {
      findings.push({
        kind: "malformed",
        seq,
        location: line.location,
        detail: `record of chain ${env.chainId} inside chain ${chainId}`,
      });
      continue;
    }
    if (seq < expectedSeq) {
      findings.push({
        kind: "reordered",
        seq,
        location: line.location,
        detail: `seq ${seq} appears after seq ${expectedSeq - 1}`,
      });
      continue;
    }
    if (seq > expectedSeq) {
      findings.push({
        kind: "missing",
        seq,
        location: line.location,
        detail: `seq ${expectedSeq}..${seq - 1} absent before seq ${seq}`,
      });
      prevHash = null; // the link across a gap cannot be checked
    }
    if (prevHash !== null && env.prev !== prevHash) {
      findings.push({
        kind: "modified",
        seq,
        location: line.location,
        detail: `prev ${env.prev.slice(0, 16)}… does not match the leaf hash of the record before it (${prevHash.slice(0, 16)}…): it or its predecessor was altered`,
      });
    }
    const hash = leafHashHex(line.text);
    if (firstSeq === null) firstSeq = seq;
    lastSeq = seq;
    prevHash = hash;
    expectedSeq = seq + 1;
    records++;
  }
  return { chainId, records, firstSeq, lastSeq, lastHash: prevHash, findings };
}

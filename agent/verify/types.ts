import type { Finding as ReadFinding } from "../exporters/source.js";

/** What the verifier reports. What it reads is the plugin API's (exporters/source.ts). */
export type {
  AuditSource,
  ChainData,
  FindingCategory,
  StoredManifest,
  StoredText,
} from "../exporters/source.js";

/**
 * A finding as the verifier reports it: a reader's, or one of its own, which may concern a
 * range of seqs or manifest indexes (a gap, a batch) rather than one.
 */
export interface Finding extends ReadFinding {
  /** The last seq the finding concerns, when it concerns seqs `seq` to `lastSeq`. */
  lastSeq?: number;
  /** The last manifest index it concerns, when it concerns `manifest` to `lastManifest`. */
  lastManifest?: number;
}

export interface ChainSummary {
  chainId: string;
  records: number;
  firstSeq: number | null;
  lastSeq: number | null;
  firstReceived: string | null;
  lastReceived: string | null;
  batches: number;
  sealedThrough: number;
  keys: string[];
  checkpoints: number;
  latestCheckpoint: {
    size: number;
    rootHash: string;
    origin: string;
    /** The witnesses (of `verify --witness`) whose cosignature of it verified. */
    cosigners: string[];
  } | null;
  notes: string[];
}

/**
 * A loss of records that a later chain's chain-start entry declares (integrity-format
 * §10.5): reported, not a finding. The agent lost them and said so, signed; nothing in the
 * source was altered. `missingFrom` is where the source's copy of the predecessor ends
 * within the declared range (null: it holds every declared seq).
 */
export interface DeclaredLossReport {
  chainId: string;
  declaredBy: string;
  lostFrom: number;
  lostThrough: number;
  missingFrom: number | null;
  reason: string;
  declaredAt: string;
  predecessorInSource: boolean;
}

export interface VerifyReport {
  source: string;
  chains: ChainSummary[];
  findings: Finding[];
  /** Losses declared by chain-start entries, when any chain has one. */
  declaredLosses?: DeclaredLossReport[];
  ok: boolean;
}

import type { Finding } from "../exporters/source.js";

/** What the verifier reports. What it reads is the plugin API's (exporters/source.ts). */
export type {
  AuditSource,
  ChainData,
  Finding,
  FindingCategory,
  StoredManifest,
  StoredText,
} from "../exporters/source.js";

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
  latestCheckpoint: { size: number; rootHash: string } | null;
  notes: string[];
}

export interface VerifyReport {
  source: string;
  chains: ChainSummary[];
  findings: Finding[];
  ok: boolean;
}

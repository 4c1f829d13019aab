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
  | "malformed";

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

/** A backend the verifier can read, e.g. file:DIR. */
export interface AuditSource {
  readonly description: string;
  readChains(): Promise<ChainData[]>;
}

/**
 * Reads one stored sealed-log entry line, `{"checkpoint":…,"manifest":…}` (the form every
 * backend stores), into `data`: a StoredManifest, or a `malformed` finding.
 */
export function addManifestLine(data: ChainData, line: string, location: string): void {
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
    data.findings.push({
      category: "malformed",
      chainId: data.chainId,
      location,
      detail: `manifest entry: ${(err as Error).message}`,
    });
    return;
  }
  data.manifests.push({
    manifest: parsed.manifest,
    checkpoint: (parsed.checkpoint as string | null) ?? null,
    location,
  });
}

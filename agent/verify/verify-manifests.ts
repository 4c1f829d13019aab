import { genesisHash } from "../integrity/format.js";
import { canonicalize, type JsonValue } from "../integrity/jcs.js";
import {
  checkManifestSignature,
  manifestHash,
  manifestKeyId,
  type ManifestSignatureCheck,
  manifestProblem,
  type SignedManifest,
} from "../integrity/manifest.js";
import { nestedDeeperThan } from "../integrity/json-structure.js";
import { parseVerifierKey, type PublicKey } from "../integrity/signing.js";
import { RetiredKeys, type Rotation } from "./retired-keys.js";
import type { ChainData, StoredManifest } from "./types.js";
import { type AddFinding, type FindingAt, range } from "./verify-findings.js";

/**
 * Step 2 of verifyChain (verify-chain.ts): the manifests of one chain, their structure, their
 * signatures and their own hash chain. Only the batches of verified manifests count in the
 * later steps.
 *
 * A verified key-rotation entry retires the key that signed it (retired-keys.ts): a later
 * manifest signed by that key does not verify.
 */

type SignedManifestBatch = Extract<SignedManifest, { type: "batch" }>;

/** A verified batch manifest, and where it is stored. */
export interface BatchInfo extends SignedManifestBatch {
  location: string;
}

/**
 * Where an earlier clean run left the chain of manifests (state.ts): the entries before
 * `next` verified and linked, the last of them hashing to `lastHash`, and the key rotations
 * among them. A run that resumes from it checks only the entries from `next` on.
 */
export interface ManifestsVerified {
  next: number;
  lastHash: string;
  rotations: Rotation[];
  claimedThrough: number;
  /** The chain's verified chain-start entry, when it has one (kept so every run reports it). */
  declared?: DeclaredLoss[];
}

/**
 * A verified chain-start entry (integrity-format §10.5): the chain `chainId` replaces
 * `predecessor`, whose seqs `lostFrom`..`lostThrough` were acknowledged but lost.
 */
export interface DeclaredLoss {
  chainId: string;
  predecessor: string;
  lostFrom: number;
  lostThrough: number;
  reason: string;
  declaredAt: string;
  location: string;
}

/** What step 2 found: the verified batches, and where the chain of manifests now ends. */
export interface CheckedManifests {
  batches: BatchInfo[];
  claimedThrough: number;
  retired: RetiredKeys;
  /** The losses this chain's chain-start entry declares (at most one). */
  declared: DeclaredLoss[];
  /** Where a later run may resume (meaningful when this run had no findings). */
  verified: ManifestsVerified;
}

/**
 * Step 2 over `data.manifests`, or with `resume` over the entries after what an earlier run
 * verified (entries before `resume.next` are taken as verified and not read again).
 */
export function checkManifests(
  data: ChainData,
  trusted: readonly PublicKey[],
  add: AddFinding,
  resume?: ManifestsVerified,
): CheckedManifests {
  const rotations = [...(resume?.rotations ?? []), ...rotationsOf(data, trusted)];
  const retired = RetiredKeys.of(rotations);
  const batches: BatchInfo[] = [];
  const declared = [...(resume?.declared ?? [])];
  // Highest seq any manifest claims, verified or not: records below it are not "inserted",
  // they are covered by a manifest whose own finding (unknown-key, bad-signature) says why
  // it does not count.
  let claimedThrough = resume?.claimedThrough ?? -1;
  let expectedIndex = resume?.next ?? 0;
  let prevHash = resume?.lastHash ?? genesisHash(data.chainId).toString("hex");
  // A link is judged only from a verified manifest: after a forged or untrusted one, the
  // next manifest's mismatch is a consequence, already reported.
  let prevVerified = true;
  for (const stored of data.manifests) {
    const problem = structureProblem(stored.manifest);
    if (problem) {
      add("malformed", stored.location, `manifest: ${problem}`);
      continue;
    }
    const m = stored.manifest as SignedManifest;
    const index = Number(m.index);
    const at = { manifest: index };
    if (m.chainId !== data.chainId) {
      add(
        "malformed",
        stored.location,
        `manifest of chain ${m.chainId} stored with chain ${data.chainId}`,
        at,
      );
      continue;
    }
    const sig = manifestSignature(m, stored, trusted, retired, add, at);
    if (index < expectedIndex) {
      add(
        index === expectedIndex - 1 ? "duplicate" : "reordered",
        stored.location,
        `manifest ${index} appears after manifest ${expectedIndex - 1}`,
        at,
      );
      continue;
    }
    if (index > expectedIndex) {
      add(
        "missing",
        stored.location,
        `manifests ${range(expectedIndex, index - 1)} are absent before manifest ${index}`,
        { manifest: expectedIndex, lastManifest: index - 1 },
      );
    } else if (prevVerified && m.prevManifest !== prevHash) {
      add(
        "modified",
        stored.location,
        `manifest ${index} does not link to the manifest before it`,
        at,
      );
    }
    expectedIndex = index + 1;
    prevHash = manifestHash(canonicalize(m as unknown as JsonValue));
    prevVerified = sig === "valid";
    if (m.type === "batch") claimedThrough = Math.max(claimedThrough, Number(m.lastSeq));
    if (sig !== "valid") continue; // an unverified manifest commits to nothing
    if (m.type === "batch") batches.push({ ...m, location: stored.location });
    if (m.type === "chain-start")
      declared.push({
        chainId: m.chainId,
        predecessor: m.predecessor,
        lostFrom: Number(m.lostFrom),
        lostThrough: Number(m.lostThrough),
        reason: m.reason,
        declaredAt: m.createdAt,
        location: stored.location,
      });
  }
  return {
    batches,
    claimedThrough,
    retired,
    declared,
    verified: {
      next: expectedIndex,
      lastHash: prevHash,
      rotations,
      claimedThrough,
      ...(declared.length > 0 && { declared }),
    },
  };
}

/**
 * An incremental run's check that the chain of manifests it resumes is still there: the
 * entry before `earlier.next` must be stored, and hash to what the earlier run saw. Else the
 * tail was cut (`truncated`), or history rewritten below the state (`modified`).
 */
export function checkEarlierEnd(
  /** The stored copies of entry `earlier.next − 1`, and the highest index stored. */
  last: { copies: readonly StoredManifest[]; highest: number },
  earlier: ManifestsVerified,
  chainId: string,
  add: AddFinding,
): void {
  const index = earlier.next - 1;
  if (index < 0) return;
  const hashes = last.copies.map((m) => {
    try {
      return manifestHash(canonicalize(m.manifest as JsonValue));
    } catch {
      return null;
    }
  });
  if (hashes.includes(earlier.lastHash)) return;
  const first = last.copies[0];
  if (first === undefined)
    add(
      "truncated",
      chainId,
      `the state file vouches for manifests 0–${index}, but ${last.highest < 0 ? "no manifest is stored any more" : `the stored manifests end at ${last.highest}`}: the tail was removed`,
      { manifest: index },
    );
  else
    add(
      "modified",
      first.location,
      `manifest ${index} is not the one the state file vouches for: history was rewritten`,
      { manifest: index },
    );
}

/**
 * One stored entry checked alone, as a spot check does for an entry an earlier run verified
 * (its place in the chain of manifests is what the state vouches for): its structure, chain
 * and signature (with the keys retired by the verified rotations). The batch it is, or null,
 * with the finding reported.
 */
export function checkEntryAlone(
  stored: StoredManifest,
  chainId: string,
  trusted: readonly PublicKey[],
  retired: RetiredKeys,
  add: AddFinding,
): BatchInfo | null {
  const problem = structureProblem(stored.manifest);
  if (problem) {
    add("malformed", stored.location, `manifest: ${problem}`);
    return null;
  }
  const m = stored.manifest as SignedManifest;
  const at = { manifest: Number(m.index) };
  if (m.chainId !== chainId) {
    add(
      "malformed",
      stored.location,
      `manifest of chain ${m.chainId} stored with chain ${chainId}`,
      at,
    );
    return null;
  }
  const sig = manifestSignature(m, stored, trusted, retired, add, at);
  return sig === "valid" && m.type === "batch" ? { ...m, location: stored.location } : null;
}

/** The index a stored manifest gives, read without checking it; NaN when it gives none. */
export function storedIndex(stored: StoredManifest): number {
  const index = (stored.manifest as { index?: unknown } | null)?.index;
  return typeof index === "string" && /^(0|[1-9]\d{0,15})$/.test(index)
    ? Number(index)
    : Number.NaN;
}

/**
 * What is wrong with a stored manifest's structure (§10.2), or null. A manifest nested
 * deeper than any line the agent writes is refused before anything walks it.
 */
function structureProblem(manifest: unknown): string | null {
  if (nestedDeeperThan(manifest)) return "nested deeper than any manifest the agent writes";
  return manifestProblem(manifest);
}

/** This chain's key-rotation entries whose signature verifies. */
function rotationsOf(data: ChainData, trusted: readonly PublicKey[]): Rotation[] {
  const rotations: Rotation[] = [];
  for (const stored of data.manifests) {
    if (structureProblem(stored.manifest) !== null) continue;
    const m = stored.manifest as SignedManifest;
    if (m.type !== "key-rotation" || m.chainId !== data.chainId) continue;
    if (checkManifestSignature(m, trusted) !== "valid" || !isCanonicalBase64(m.signature)) continue;
    rotations.push({
      entry: Number(m.index),
      treeSize: Number(m.treeSize),
      keyId: m.keyId,
      newKeyId: keyIdOf(m.newKey),
    });
  }
  return rotations;
}

/** `<name>+<key id>` of a verifier key, or null when it is not one. */
function keyIdOf(verifierKey: string): string | null {
  try {
    return manifestKeyId(parseVerifierKey(verifierKey));
  } catch {
    return null;
  }
}

/** Checks a manifest's signature, reporting a bad or untrusted one; says which it is. */
function manifestSignature(
  m: SignedManifest,
  stored: StoredManifest,
  trusted: readonly PublicKey[],
  retired: RetiredKeys,
  add: AddFinding,
  at: FindingAt,
): ManifestSignatureCheck {
  const index = Number(m.index);
  let sig = checkManifestSignature(m, trusted);
  const retiredBy = sig === "valid" ? retired.atEntry(m.keyId, index) : undefined;
  if (retiredBy !== undefined) {
    add(
      "bad-signature",
      stored.location,
      `manifest ${index} is signed by ${m.keyId}, which was retired at entry ${retiredBy.entry} (a key-rotation entry): a retired key no longer vouches for anything after it`,
      at,
    );
    return "invalid";
  }
  // Base64 decoders ignore padding and the unused low bits of the last character: only
  // the canonical spelling is the text that was signed and that the next manifest hashes.
  const respelled = sig === "valid" && !isCanonicalBase64(m.signature);
  if (respelled) sig = "invalid";
  if (sig === "unknown-key")
    add(
      "unknown-key",
      stored.location,
      `manifest ${index} is signed by ${m.keyId}, which is not a trusted key`,
      at,
    );
  if (sig === "invalid")
    add(
      "bad-signature",
      stored.location,
      respelled
        ? `manifest ${index}: the signature by ${m.keyId} is not in canonical base64 (its text was altered)`
        : `manifest ${index}: the signature by ${m.keyId} does not verify (altered or forged)`,
      at,
    );
  return sig;
}

function isCanonicalBase64(text: string): boolean {
  return Buffer.from(text, "base64").toString("base64") === text;
}

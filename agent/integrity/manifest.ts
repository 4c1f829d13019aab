import { createHash } from "node:crypto";
import { CHAIN_ID_PATTERN, FORMAT_VERSION } from "./format.js";
import { canonicalize, type JsonValue } from "./jcs.js";
import { type PublicKey, type SigningKey, signBytes, verifyBytes } from "./signing.js";

/**
 * Manifests: the signed statements that seal the chain (docs/integrity-format.md §10).
 * A manifest is RFC 8785 canonical JSON; its Ed25519 signature covers the canonical text
 * of every other member and is added as `signature`. Manifests form their own hash
 * chain: `prevManifest` is SHA-256 of the previous manifest's signed canonical text.
 *
 * - `batch`: seals records firstSeq..lastSeq: their count, the RFC 6962 root of their
 *   leaf hashes, the leaf hash before and at the end, and the whole tree's size and root.
 * - `key-rotation`: signed by the outgoing key, names the incoming key.
 * - `chain-start`: entry 0 of a chain that replaces one which lost acknowledged records;
 *   names that chain and the seqs of it that were lost (§10.5).
 */

export interface BatchManifest {
  v: number;
  type: "batch";
  chainId: string;
  index: string;
  firstSeq: string;
  lastSeq: string;
  count: number;
  batchRoot: string;
  prevLeaf: string;
  lastLeaf: string;
  treeSize: string;
  treeRoot: string;
  prevManifest: string;
  keyId: string;
  createdAt: string;
}

export interface RotationManifest {
  v: number;
  type: "key-rotation";
  chainId: string;
  index: string;
  /** Records sealed so far: the rotation takes effect for batches after this tree size. */
  treeSize: string;
  newKey: string;
  prevManifest: string;
  keyId: string;
  createdAt: string;
}

export interface ChainStartManifest {
  v: number;
  type: "chain-start";
  chainId: string;
  /** Always "0": only a chain's first entry declares what it succeeds. */
  index: string;
  treeSize: string;
  /** The chain that lost records. */
  predecessor: string;
  /** Decimal strings: the predecessor's seqs acknowledged but lost to the backends. */
  lostFrom: string;
  lostThrough: string;
  /** What the operator who started this chain said happened. */
  reason: string;
  prevManifest: string;
  keyId: string;
  createdAt: string;
}

export type Manifest = BatchManifest | RotationManifest | ChainStartManifest;
export type SignedManifest = Manifest & { signature: string };

/** `<name>+<8 hex>`: the key a manifest is signed with, as in the verifier key string. */
export function manifestKeyId(key: PublicKey): string {
  return `${key.name}+${key.keyId}`;
}

export function signManifest(manifest: Manifest, key: SigningKey): string {
  const unsigned = canonicalize(manifest as unknown as JsonValue);
  const signature = signBytes(key, Buffer.from(unsigned, "utf8")).toString("base64");
  return canonicalize({ ...manifest, signature } as unknown as JsonValue);
}

export function manifestHash(signedText: string): string {
  return createHash("sha256").update(signedText, "utf8").digest("hex");
}

export type ManifestSignatureCheck = "valid" | "invalid" | "unknown-key";

/** Checks a parsed manifest's signature against the trusted keys. */
export function checkManifestSignature(
  signed: SignedManifest,
  trusted: readonly PublicKey[],
): ManifestSignatureCheck {
  const key = trusted.find((k) => manifestKeyId(k) === signed.keyId);
  if (!key) return "unknown-key";
  const { signature, ...unsigned } = signed;
  const text = canonicalize(unsigned as unknown as JsonValue);
  return verifyBytes(key, Buffer.from(text, "utf8"), Buffer.from(signature, "base64"))
    ? "valid"
    : "invalid";
}

const HEX64 = /^[0-9a-f]{64}$/;
/** Characters of a chain-start entry's reason, at most. */
export const MAX_REASON = 1000;
const DECIMAL = /^(0|[1-9]\d*)$/;

/** Structural validation of a manifest object read from a backend; returns a problem or null. */
export function manifestProblem(value: unknown): string | null {
  const m = value as Partial<SignedManifest> & Record<string, unknown>;
  if (typeof m !== "object" || m === null) return "not an object";
  if (m.v !== FORMAT_VERSION) return `unsupported manifest version ${JSON.stringify(m.v)}`;
  if (typeof m.signature !== "string") return "no signature";
  if (typeof m.keyId !== "string" || typeof m.chainId !== "string") return "no keyId or chainId";
  if (typeof m.index !== "string" || !DECIMAL.test(m.index)) return "bad index";
  if (typeof m.prevManifest !== "string" || !HEX64.test(m.prevManifest)) return "bad prevManifest";
  if (typeof m.treeSize !== "string" || !DECIMAL.test(m.treeSize)) return "bad treeSize";
  if (m.type === "batch") {
    for (const f of ["firstSeq", "lastSeq"] as const)
      if (typeof m[f] !== "string" || !DECIMAL.test(m[f] as string)) return `bad ${f}`;
    for (const f of ["batchRoot", "prevLeaf", "lastLeaf", "treeRoot"] as const)
      if (typeof m[f] !== "string" || !HEX64.test(m[f] as string)) return `bad ${f}`;
    if (typeof m.count !== "number" || m.count !== Number(m.lastSeq) - Number(m.firstSeq) + 1)
      return "count does not match the seq range";
    return null;
  }
  if (m.type === "key-rotation") return typeof m.newKey === "string" ? null : "bad newKey";
  if (m.type === "chain-start") return chainStartProblem(m);
  return `unknown manifest type ${JSON.stringify(m.type)}`;
}

/** The members only a chain-start entry has (§10.5). */
function chainStartProblem(m: Partial<ChainStartManifest>): string | null {
  if (m.index !== "0" || m.treeSize !== "0") return "a chain-start entry that is not entry 0";
  if (typeof m.predecessor !== "string" || !CHAIN_ID_PATTERN.test(m.predecessor))
    return "bad predecessor";
  if (m.predecessor === m.chainId) return "a chain-start entry naming its own chain";
  for (const f of ["lostFrom", "lostThrough"] as const)
    if (typeof m[f] !== "string" || !DECIMAL.test(m[f] as string)) return `bad ${f}`;
  if (Number(m.lostFrom) > Number(m.lostThrough)) return "lostFrom is after lostThrough";
  if (typeof m.reason !== "string" || m.reason.length > MAX_REASON) return "bad reason";
  return null;
}

import { createHash, type KeyObject, sign, verify } from "node:crypto";
import { AgentError } from "../common/errors.js";
import { ed25519PublicKey, type SigningKey } from "./signing.js";

/**
 * C2SP tlog-cosignature (https://c2sp.org/tlog-cosignature), Ed25519 (`cosignature/v1`,
 * signature type 0x04): what a witness signs to say "I saw this checkpoint, consistent with
 * every one I saw before, at this time".
 *
 *   key id          = SHA-256(name || 0x0A || 0x04 || public key)[:4]
 *   verifier key    = "<name>+<key id, 8 hex>+<base64(0x04 || public key)>"
 *   signed message  = "cosignature/v1\n" "time <unix seconds>\n" <checkpoint text>
 *   signature line  = "— <name> " base64(key id || u64 big-endian time || Ed25519 signature)
 *
 * The checkpoint text is the note's text, with its final newline and without the blank line
 * or any signature line. The same Ed25519 key file as a signing key holds a witness's key:
 * only the type byte, and so the key id and verifier key, differ.
 */

const COSIGNATURE_TYPE = 0x04;
const EM_DASH = "\u2014";

export interface CosignerKey {
  name: string;
  /** 4-byte key id as 8 lowercase hex digits. */
  keyId: string;
  raw: Buffer;
  key: KeyObject;
  /** The C2SP verifier key string (type 0x04). */
  verifierKey: string;
}

export interface Cosignature {
  name: string;
  keyId: string;
  /** Unix seconds. */
  time: number;
  signature: Buffer;
}

function cosignerKeyId(name: string, raw: Buffer): string {
  return createHash("sha256")
    .update(Buffer.from(name, "utf8"))
    .update(Buffer.from([0x0a, COSIGNATURE_TYPE]))
    .update(raw)
    .digest()
    .subarray(0, 4)
    .toString("hex");
}

/** The cosigner key of a raw Ed25519 public key. */
export function cosignerKeyFromRaw(name: string, raw: Buffer): CosignerKey {
  const key = ed25519PublicKey(name, raw);
  const keyId = cosignerKeyId(name, raw);
  return {
    name,
    keyId,
    raw,
    key,
    verifierKey: `${name}+${keyId}+${Buffer.concat([Buffer.from([COSIGNATURE_TYPE]), raw]).toString("base64")}`,
  };
}

/** The cosigner key (type 0x04) of a signing key's key pair. */
export function cosignerKeyOf(key: SigningKey): CosignerKey {
  return cosignerKeyFromRaw(key.public.name, key.public.raw);
}

/** Parses a cosigner verifier key "<name>+<hex key id>+<base64(0x04 || key)>". */
export function parseCosignerKey(text: string): CosignerKey {
  const trimmed = text.trim();
  const first = trimmed.indexOf("+");
  const second = first < 0 ? -1 : trimmed.indexOf("+", first + 1);
  const bytes = second < 0 ? Buffer.alloc(0) : Buffer.from(trimmed.slice(second + 1), "base64");
  if (second < 0 || bytes[0] !== COSIGNATURE_TYPE)
    throw new AgentError(
      "KEY_BAD_WITNESS",
      `"${trimmed.slice(0, 40)}" is not a witness verifier key (name+keyid+base64 of 0x04 and an Ed25519 key, as \`audit-agent keygen --witness\` writes)`,
    );
  const key = cosignerKeyFromRaw(trimmed.slice(0, first), bytes.subarray(1));
  if (key.keyId !== trimmed.slice(first + 1, second).toLowerCase())
    throw new AgentError(
      "KEY_BAD_WITNESS",
      `witness key ${key.name}: key id ${trimmed.slice(first + 1, second)} does not match its key (expected ${key.keyId})`,
    );
  return key;
}

/** The message a cosignature signs: header, time line, then the checkpoint text. */
export function cosignedMessage(checkpointText: string, time: number): Buffer {
  return Buffer.from(`cosignature/v1\ntime ${time}\n${checkpointText}`, "utf8");
}

/**
 * A witness's signature line over `checkpointText` at `time` (unix seconds, not 0). Its key
 * id is computed from the raw key alone (no key object: a witness cosigns a thousand
 * checkpoints a second, and building one cost 15 % of its time).
 */
export function cosign(checkpointText: string, key: SigningKey, time: number): string {
  const { name, raw } = key.public;
  const stamp = Buffer.alloc(8);
  stamp.writeBigUInt64BE(BigInt(time));
  const sig = sign(null, cosignedMessage(checkpointText, time), key.privateKey);
  const blob = Buffer.concat([Buffer.from(cosignerKeyId(name, raw), "hex"), stamp, sig]);
  return `${EM_DASH} ${name} ${blob.toString("base64")}\n`;
}

/**
 * The cosignature a note's signature line holds (parseNote: key id, then the rest), when the
 * rest is a cosignature's length (8 + 64 bytes); else null (another kind of signature).
 */
export function cosignatureOf(line: {
  name: string;
  keyId: string;
  signature: Buffer;
}): Cosignature | null {
  if (line.signature.length !== 72) return null;
  const time = line.signature.readBigUInt64BE(0);
  if (time > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return {
    name: line.name,
    keyId: line.keyId,
    time: Number(time),
    signature: line.signature.subarray(8),
  };
}

/** Whether `c` is `witness`'s valid cosignature over `checkpointText`. */
export function verifyCosignature(
  c: Cosignature,
  witness: CosignerKey,
  checkpointText: string,
): boolean {
  if (c.name !== witness.name || c.keyId !== witness.keyId || c.time === 0) return false;
  return verify(null, cosignedMessage(checkpointText, c.time), witness.key, c.signature);
}

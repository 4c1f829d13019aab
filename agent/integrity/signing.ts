import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { AgentError } from "../common/errors.js";

/**
 * Ed25519 keys named as C2SP signed-note keys (https://c2sp.org/signed-note):
 *   key id       = first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key)
 *   verifier key = "<name>+<key id as 8 hex digits>+<base64(0x01 || public key)>"
 * The verifier-key string is the public key's text form everywhere: key files, manifests,
 * `verify --trust`. 0x01 is the signed-note algorithm byte for Ed25519.
 */

const ED25519_ALGORITHM = 0x01;
/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const KEY_NAME = /^[^\s+]+$/;

export interface PublicKey {
  name: string;
  /** 4-byte key id, as 8 lowercase hex digits. */
  keyId: string;
  raw: Buffer;
  key: KeyObject;
  /** The C2SP verifier key string. */
  verifierKey: string;
}

export interface SigningKey {
  public: PublicKey;
  privateKey: KeyObject;
}

export function keyIdFor(name: string, raw: Buffer): Buffer {
  return createHash("sha256")
    .update(Buffer.from(name, "utf8"))
    .update(Buffer.from([0x0a, ED25519_ALGORITHM]))
    .update(raw)
    .digest()
    .subarray(0, 4);
}

function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ type: "spki", format: "der" });
  return Buffer.from(der.subarray(SPKI_PREFIX.length));
}

/** An Ed25519 public key object from its raw 32 bytes, for a key named `name` (checked). */
export function ed25519PublicKey(name: string, raw: Buffer): KeyObject {
  if (!KEY_NAME.test(name))
    throw new AgentError(
      "KEY_BAD_NAME",
      `key name "${name}" must be non-empty with no spaces or '+'`,
    );
  if (raw.length !== 32)
    throw new AgentError("KEY_BAD_PUBLIC", `an Ed25519 public key has 32 bytes, not ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });
}

export function publicKeyFromRaw(name: string, raw: Buffer): PublicKey {
  const key = ed25519PublicKey(name, raw);
  const keyId = keyIdFor(name, raw);
  return {
    name,
    keyId: keyId.toString("hex"),
    raw,
    key,
    verifierKey: `${name}+${keyId.toString("hex")}+${Buffer.concat([Buffer.from([ED25519_ALGORITHM]), raw]).toString("base64")}`,
  };
}

/** Parses "<name>+<hex key id>+<base64 key>", checking the key id matches. */
export function parseVerifierKey(text: string): PublicKey {
  // Split at the first two '+' only: the name has none, but standard base64 may.
  const trimmed = text.trim();
  const first = trimmed.indexOf("+");
  const second = first < 0 ? -1 : trimmed.indexOf("+", first + 1);
  if (second < 0)
    throw new AgentError(
      "KEY_BAD_VERIFIER",
      `"${trimmed.slice(0, 40)}" is not a verifier key of the form name+keyid+base64key`,
    );
  const name = trimmed.slice(0, first);
  const id = trimmed.slice(first + 1, second);
  const b64 = trimmed.slice(second + 1);
  const bytes = Buffer.from(b64, "base64");
  if (bytes[0] !== ED25519_ALGORITHM)
    throw new AgentError(
      "KEY_BAD_VERIFIER",
      `verifier key ${name} is not an Ed25519 (algorithm 1) key`,
    );
  const pub = publicKeyFromRaw(name, bytes.subarray(1));
  if (pub.keyId !== id.toLowerCase())
    throw new AgentError(
      "KEY_BAD_VERIFIER",
      `verifier key ${name}: key id ${id} does not match its key (expected ${pub.keyId})`,
    );
  return pub;
}

export function generateSigningKey(name: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { privateKey, public: publicKeyFromRaw(name, rawPublicKey(publicKey)) };
}

/** PKCS#8 PEM of the private key, preceded by a comment line naming the key. */
export function privateKeyPem(key: SigningKey): string {
  return `# audit-agent signing key: ${key.public.name}\n${key.privateKey.export({ type: "pkcs8", format: "pem" }).toString()}`;
}

export function signingKeyFromPem(name: string, pem: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem.replace(/^#.*\n/gm, ""));
  } catch (err) {
    throw new AgentError("KEY_BAD_PRIVATE", `not a PEM private key: ${(err as Error).message}`);
  }
  if (privateKey.asymmetricKeyType !== "ed25519") {
    throw new AgentError(
      "KEY_BAD_PRIVATE",
      `the signing key must be Ed25519, not ${privateKey.asymmetricKeyType}`,
    );
  }
  return { privateKey, public: publicKeyFromRaw(name, rawPublicKey(createPublicKey(privateKey))) };
}

export function signBytes(key: SigningKey, message: Uint8Array): Buffer {
  return sign(null, message, key.privateKey);
}

export function verifyBytes(key: PublicKey, message: Uint8Array, signature: Uint8Array): boolean {
  return signature.length === 64 && verify(null, message, key.key, signature);
}

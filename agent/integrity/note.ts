import { AgentError } from "../common/errors.js";
import { type PublicKey, type SigningKey, signBytes, verifyBytes } from "./signing.js";

/**
 * C2SP signed notes (https://c2sp.org/signed-note) and tlog checkpoints
 * (https://c2sp.org/tlog-checkpoint). A note is UTF-8 text ending in a newline, a blank
 * line, then one line per signature: "— <key name> <base64(key id || signature)>".
 */

const EM_DASH = "\u2014";

export interface NoteSignature {
  name: string;
  keyId: string;
  signature: Buffer;
}

export interface ParsedNote {
  text: string;
  signatures: NoteSignature[];
}

export function signNote(text: string, keys: readonly SigningKey[]): string {
  if (!text.endsWith("\n"))
    throw new AgentError("NOTE_BAD_TEXT", "note text must end with a newline");
  const lines = keys.map((k) => {
    const sig = signBytes(k, Buffer.from(text, "utf8"));
    const blob = Buffer.concat([Buffer.from(k.public.keyId, "hex"), sig]).toString("base64");
    return `${EM_DASH} ${k.public.name} ${blob}\n`;
  });
  return `${text}\n${lines.join("")}`;
}

export function parseNote(note: string): ParsedNote {
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n"))
    throw new AgentError(
      "NOTE_MALFORMED",
      "not a signed note: no blank line before the signatures",
    );
  const text = note.slice(0, split + 1);
  const signatures: NoteSignature[] = [];
  for (const line of note.slice(split + 2, -1).split("\n")) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (!m) throw new AgentError("NOTE_MALFORMED", `not a signature line: "${line.slice(0, 60)}"`);
    const blob = Buffer.from(m[2] as string, "base64");
    if (blob.length < 5) throw new AgentError("NOTE_MALFORMED", "signature too short");
    signatures.push({
      name: m[1] as string,
      keyId: blob.subarray(0, 4).toString("hex"),
      signature: blob.subarray(4),
    });
  }
  if (signatures.length === 0)
    throw new AgentError("NOTE_MALFORMED", "a signed note needs at least one signature");
  return { text, signatures };
}

/** Which trusted keys produced valid signatures over the note, and which signatures are by unknown keys. */
export function verifyNote(
  note: ParsedNote,
  trusted: readonly PublicKey[],
): { valid: PublicKey[]; invalid: NoteSignature[]; unknown: NoteSignature[] } {
  const valid: PublicKey[] = [];
  const invalid: NoteSignature[] = [];
  const unknown: NoteSignature[] = [];
  const message = Buffer.from(note.text, "utf8");
  for (const sig of note.signatures) {
    const key = trusted.find((k) => k.name === sig.name && k.keyId === sig.keyId);
    if (!key) unknown.push(sig);
    else if (verifyBytes(key, message, sig.signature)) valid.push(key);
    else invalid.push(sig);
  }
  return { valid, invalid, unknown };
}

export interface Checkpoint {
  origin: string;
  size: number;
  rootHash: Buffer;
  /** Extension lines after the root hash, without their newlines. */
  extensions: string[];
}

export function checkpointText(c: Checkpoint): string {
  return `${c.origin}\n${c.size}\n${c.rootHash.toString("base64")}\n${c.extensions.map((e) => `${e}\n`).join("")}`;
}

export function parseCheckpointText(text: string): Checkpoint {
  const lines = text.split("\n");
  lines.pop(); // text ends with a newline
  const [origin, size, root, ...extensions] = lines;
  if (!origin || !size || !/^(0|[1-9]\d*)$/.test(size) || !root) {
    throw new AgentError(
      "CHECKPOINT_MALFORMED",
      "a checkpoint has an origin line, a decimal tree size and a base64 root hash",
    );
  }
  if (!Number.isSafeInteger(Number(size))) {
    throw new AgentError(
      "CHECKPOINT_MALFORMED",
      `tree size ${size} is larger than this verifier supports (2^53)`,
    );
  }
  if (extensions.some((e) => e === ""))
    throw new AgentError("CHECKPOINT_MALFORMED", "a checkpoint has no empty lines");
  const rootHash = Buffer.from(root, "base64");
  if (rootHash.length !== 32 || rootHash.toString("base64") !== root)
    throw new AgentError("CHECKPOINT_MALFORMED", "the root hash is not 32 bytes of base64");
  return { origin, size: Number(size), rootHash, extensions };
}

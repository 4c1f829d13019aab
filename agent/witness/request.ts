import { type Refusal, refusal } from "./refusal.js";

/**
 * The body of a C2SP tlog-witness add-checkpoint request: "old <size>\n", up to 63
 * consistency proof lines (base64 of 32 bytes), an empty line, then the signed checkpoint
 * note. Anything else is a 400.
 */

export const MAX_PROOF_LINES = 63;

export interface AddCheckpointRequest {
  oldSize: number;
  proof: Buffer[];
  /** The signed note, exactly as received. */
  note: string;
  /** Its first line. */
  origin: string;
}

const OLD_LINE = /^old (0|[1-9][0-9]*)$/;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function parseAddCheckpoint(body: Uint8Array): AddCheckpointRequest | Refusal {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return malformed("the body is not valid UTF-8");
  }
  const split = text.indexOf("\n\n");
  if (split < 0)
    return malformed("expected an old size line, proof lines, an empty line, then a checkpoint");
  const [oldLine, ...proofLines] = text.slice(0, split).split("\n");
  const old = OLD_LINE.exec(oldLine as string);
  if (!old || !Number.isSafeInteger(Number(old[1])))
    return malformed('the first line must be "old <tree size>", in decimal without leading zeros');
  if (proofLines.length > MAX_PROOF_LINES)
    return malformed(`at most ${MAX_PROOF_LINES} consistency proof lines`);
  const proof: Buffer[] = [];
  for (const line of proofLines) {
    const hash = Buffer.from(line, "base64");
    if (hash.length !== 32 || hash.toString("base64") !== line)
      return malformed(`proof line "${line.slice(0, 60)}" is not the base64 of a 32-byte hash`);
    proof.push(hash);
  }
  const note = text.slice(split + 2);
  if (hasControlCharacter(note))
    return malformed("a signed note has no control characters other than newline");
  const newline = note.indexOf("\n");
  const origin = newline < 0 ? note : note.slice(0, newline);
  return { oldSize: Number(old[1]), proof, note, origin };
}

export function isRefusal<T extends object>(value: T | Refusal): value is Refusal {
  return "status" in value && "reason" in value;
}

function malformed(message: string): Refusal {
  return refusal(400, "malformed", message);
}

function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x0a) || c === 0x7f) return true;
  }
  return false;
}

import { type CosignerKey, cosignatureOf, verifyCosignature } from "../integrity/cosignature.js";
import { manifestKeyId } from "../integrity/manifest.js";
import { type Checkpoint, parseCheckpointText, parseNote, verifyNote } from "../integrity/note.js";
import type { PublicKey } from "../integrity/signing.js";
import type { ChainData } from "./types.js";
import type { AddFinding } from "./verify-findings.js";
import type { RetiredKeys } from "./retired-keys.js";

/**
 * Step 6 of verifyChain (verify-chain.ts): checkpoints, those stored with the manifests and
 * those seen earlier, must be signed by a trusted key and match the tree rebuilt from the
 * kept records. A checkpoint of a tree larger than a key-rotation entry's `treeSize`, signed
 * only by the key that entry retired, does not count (verify-manifests.ts).
 */

/** What step 6 needs to know of the kept records. */
export interface KeptTree {
  /** How many kept records run from seq 0 without a gap. */
  contiguous: number;
  /** The last seq sealed by a verified batch (-1: none). */
  sealedThrough: number;
  /** The tree root over the kept records [from, to) by their position, in hex. */
  rootHex: (from: number, to: number) => string;
}

/** The checkpoints that verified. */
export interface CheckpointTally {
  checkpoints: number;
  /** The one of the largest size. */
  latest: Checkpoint | null;
  /** The witnesses (of those given) whose cosignature of the latest verified. */
  latestCosigners: string[];
  /** The origin line of the chain's own checkpoints, when it has any. */
  origin: string | null;
}

export async function checkCheckpoints(
  data: ChainData,
  keys: {
    trusted: readonly PublicKey[];
    retired: RetiredKeys;
    witnesses?: readonly CosignerKey[];
  },
  knownCheckpoints: readonly { note: string; location: string }[],
  tree: KeptTree,
  add: AddFinding,
  usedCheckpoints: Set<number>,
  /** The origin of the chain's checkpoints, when an earlier run read them (resume). */
  knownOrigin?: string | null,
): Promise<CheckpointTally> {
  const { contiguous, sealedThrough, rootHex } = tree;
  const tally: CheckpointTally = {
    checkpoints: 0,
    latest: null,
    latestCosigners: [],
    origin: null,
  };
  const checkNote = async (note: string, location: string, external: boolean) => {
    const cp = readCheckpoint(note, location, keys, add);
    if (cp === null) return;
    tally.checkpoints++;
    const cosigners = cosignersOf(note, keys.witnesses ?? []);
    if (!tally.latest || cp.size > tally.latest.size) {
      tally.latest = cp;
      tally.latestCosigners = cosigners;
    } else if (cp.size === tally.latest.size && cp.rootHash.equals(tally.latest.rootHash))
      tally.latestCosigners = [...new Set([...tally.latestCosigners, ...cosigners])];
    if (cp.size > contiguous) {
      if (external || cp.size > sealedThrough + 1) {
        return add(
          "truncated",
          location,
          `a checkpoint for ${cp.size} records was seen, but only ${contiguous} contiguous records are held: the tail was removed`,
          { seq: contiguous, lastSeq: cp.size - 1 },
        );
      }
      return; // gaps inside were already reported as missing
    }
    const root = rootHex(0, cp.size);
    if (root !== cp.rootHash.toString("hex")) {
      add(
        "modified",
        location,
        external
          ? `a fork: this checkpoint (${cosigners.length > 0 ? `cosigned by ${cosigners.join(", ")}` : "kept elsewhere"}) has another root for size ${cp.size} than these records: history was rewritten after it was signed`
          : `the records do not reproduce the signed tree root for size ${cp.size}: history was rewritten`,
      );
    }
  };
  for (const m of data.manifests)
    if (m.checkpoint) await checkNote(m.checkpoint, m.location, false);
  // A checkpoint seen earlier applies to the chain with its origin (the origin of this
  // chain's own checkpoints, or by default otel-audit-agent/<chain id>).
  const ownOrigin =
    data.manifests.map((m) => m.checkpoint && originOf(m.checkpoint)).find(Boolean) ||
    knownOrigin ||
    null;
  tally.origin = ownOrigin;
  for (const [i, k] of knownCheckpoints.entries()) {
    const origin = originOf(k.note);
    const matches =
      origin !== null && (ownOrigin ? origin === ownOrigin : origin.endsWith(`/${data.chainId}`));
    if (!matches) continue;
    usedCheckpoints.add(i);
    await checkNote(k.note, k.location, true);
  }
  return tally;
}

/**
 * The checkpoint a signed note states, when it is well formed, canonically spelled and
 * signed by a trusted key; otherwise null, with the finding that says why.
 */
function readCheckpoint(
  note: string,
  location: string,
  keys: { trusted: readonly PublicKey[]; retired: RetiredKeys },
  add: AddFinding,
): Checkpoint | null {
  try {
    const parsed = parseNote(note);
    const sig = verifyNote(parsed, keys.trusted);
    if (sig.invalid.length > 0) {
      add(
        "bad-signature",
        location,
        `checkpoint signature by ${sig.invalid[0]?.name} does not verify`,
      );
      return null;
    }
    if (sig.valid.length === 0) {
      add(
        "unknown-key",
        location,
        `checkpoint signed only by untrusted keys (${parsed.signatures.map((s) => `${s.name}+${s.keyId}`).join(", ")})`,
      );
      return null;
    }
    // As for manifests: only the canonical base64 of each signature is the stored note.
    const lines = parsed.signatures.map(
      (s) =>
        `\u2014 ${s.name} ${Buffer.concat([Buffer.from(s.keyId, "hex"), s.signature]).toString("base64")}\n`,
    );
    if (`${parsed.text}\n${lines.join("")}` !== note) {
      add(
        "bad-signature",
        location,
        "checkpoint signature line is not in canonical base64 (its text was altered)",
      );
      return null;
    }
    const cp = parseCheckpointText(parsed.text);
    const retired = retiredSigner(sig.valid, cp.size, keys.retired);
    if (retired !== null) {
      add("bad-signature", location, retired);
      return null;
    }
    return cp;
  } catch (err) {
    add("malformed", location, `checkpoint: ${(err as Error).message}`);
    return null;
  }
}

/**
 * Why a checkpoint of `size` records does not count when every key that signed it was retired
 * before the tree reached that size; null when one of them still vouches for it.
 */
function retiredSigner(
  signers: readonly PublicKey[],
  size: number,
  retired: RetiredKeys,
): string | null {
  let why: string | null = null;
  for (const key of signers) {
    const id = manifestKeyId(key);
    const r = retired.atSize(id, size);
    if (r === undefined) return null;
    why ??= `checkpoint for ${size} records is signed by ${id}, which was retired at entry ${r.entry} (a key-rotation entry, after ${r.treeSize} records): a retired key no longer vouches for a larger tree`;
  }
  return why;
}

/** The witnesses whose cosignature (C2SP tlog-cosignature) of the note's text verifies. */
export function cosignersOf(note: string, witnesses: readonly CosignerKey[]): string[] {
  if (witnesses.length === 0) return [];
  try {
    const parsed = parseNote(note);
    const names: string[] = [];
    for (const line of parsed.signatures) {
      const c = cosignatureOf(line);
      const w = c && witnesses.find((k) => k.name === c.name && k.keyId === c.keyId);
      if (c && w && verifyCosignature(c, w, parsed.text) && !names.includes(w.name))
        names.push(w.name);
    }
    return names;
  } catch {
    return [];
  }
}

/** The size a signed checkpoint note states, if it parses (its signature is checked later). */
export function checkpointSize(note: string): number[] {
  try {
    return [parseCheckpointText(parseNote(note).text).size];
  } catch {
    return [];
  }
}

/** The origin line of a signed checkpoint note, or null when it is not one. */
export function originOf(note: string): string | null {
  const first = note.split("\n", 1)[0];
  return first ? first : null;
}

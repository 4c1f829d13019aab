import { EMPTY_TREE_HASH, verifyConsistency } from "../integrity/merkle.js";
import { type Refusal, refusal } from "./refusal.js";

/**
 * The witness's one rule (C2SP tlog-witness): cosign a log's checkpoint only when it extends
 * the last one cosigned. In the order the spec gives, after the signature was checked:
 *   old size > checkpoint size                     400 malformed
 *   size 0 without the empty tree's root           422 invalid_proof
 *   old size ≠ size last cosigned                  409 (body: that size)
 *   old size 0 with a proof                        422 invalid_proof
 *   old = new size: a proof, or another root       422 invalid_proof / fork
 *   no consistency proof where one is needed       422 invalid_proof
 *   a consistency proof that does not verify       422 invalid_proof
 * A 409 is counted as a rollback when the checkpoint is smaller than the one cosigned, and as
 * a fork when it has the same size but another root (the log signed two trees of one size).
 * Only two signed roots of one size prove a fork: a proof that does not verify is not signed
 * by the log, so anyone could send one with a real (public) checkpoint; it is refused and
 * counted, but raises no alarm.
 */

export interface TreeHead {
  size: number;
  rootHash: Buffer;
}

/** The tree before anything was cosigned. */
export const EMPTY_TREE: TreeHead = { size: 0, rootHash: EMPTY_TREE_HASH };

export function checkExtends(
  cosigned: TreeHead,
  oldSize: number,
  proof: readonly Buffer[],
  next: TreeHead,
): Refusal | null {
  if (oldSize > next.size)
    return refusal(400, "malformed", `old size ${oldSize} is larger than the checkpoint's`);
  if (next.size === 0 && !next.rootHash.equals(EMPTY_TREE_HASH))
    return refusal(422, "invalid_proof", "a checkpoint of size 0 must have the empty tree's root");
  if (oldSize !== cosigned.size) return stale(cosigned, next);
  if (oldSize === 0) {
    return proof.length === 0
      ? null
      : refusal(422, "invalid_proof", "old size 0 takes no consistency proof");
  }
  if (oldSize === next.size) {
    if (!next.rootHash.equals(cosigned.rootHash))
      return refusal(422, "fork", `a checkpoint of size ${next.size} with another root hash`);
    return proof.length === 0
      ? null
      : refusal(422, "invalid_proof", "old size equals the tree size: no proof is needed");
  }
  if (proof.length === 0)
    return refusal(
      422,
      "invalid_proof",
      `a consistency proof from size ${oldSize} to ${next.size} is required`,
    );
  if (!verifyConsistency(oldSize, next.size, cosigned.rootHash, next.rootHash, proof))
    return refusal(
      422,
      "invalid_proof",
      `the consistency proof from size ${oldSize} to ${next.size} does not verify (a forked log, or a wrong proof)`,
    );
  return null;
}

function stale(cosigned: TreeHead, next: TreeHead): Refusal {
  const reason =
    next.size < cosigned.size
      ? "rollback"
      : next.size === cosigned.size && !next.rootHash.equals(cosigned.rootHash)
        ? "fork"
        : "stale_old_size";
  return {
    status: 409,
    reason,
    message: `the latest checkpoint cosigned has size ${cosigned.size}`,
    latestSize: cosigned.size,
  };
}

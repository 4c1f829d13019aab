import { AgentError } from "../common/errors.js";
import { consistencyProof, type HashSource, inclusionProof, treeHash } from "./merkle.js";

/**
 * RFC 6962 proofs from the stored tree, in the JSON shape `audit-agent prove` prints and
 * the checkpoint endpoint serves. All hashes are lowercase hex.
 */

export interface InclusionProofJson {
  type: "inclusion";
  seq: number;
  treeSize: number;
  leafHash: string;
  rootHash: string;
  proof: string[];
}

export interface ConsistencyProofJson {
  type: "consistency";
  oldSize: number;
  newSize: number;
  oldRootHash: string;
  newRootHash: string;
  proof: string[];
}

/** A Merkle tree of `size` leaves whose subtree hashes can be read (the sealed log's tiles). */
export interface ProvableTree {
  readonly size: number;
  source(): HashSource;
}

const hex = (h: Uint8Array) => Buffer.from(h).toString("hex");

function checkSize(tree: ProvableTree, size: number, what: string): void {
  if (!Number.isInteger(size) || size < 0 || size > tree.size) {
    throw new AgentError(
      "PROOF_BAD_SIZE",
      `${what} ${size} is not a sealed tree size (sealed trees have 0 to ${tree.size} records)`,
    );
  }
}

export async function proveInclusion(
  tree: ProvableTree,
  seq: number,
  treeSize = tree.size,
): Promise<InclusionProofJson> {
  checkSize(tree, treeSize, "tree size");
  if (!Number.isInteger(seq) || seq < 0 || seq >= treeSize) {
    throw new AgentError(
      "PROOF_BAD_SEQ",
      `seq ${seq} is not in a tree of ${treeSize} records (valid: 0 to ${treeSize - 1})`,
    );
  }
  const source = tree.source();
  return {
    type: "inclusion",
    seq,
    treeSize,
    leafHash: hex(await source(seq, seq + 1)),
    rootHash: hex(await treeHash(treeSize, source)),
    proof: (await inclusionProof(seq, treeSize, source)).map(hex),
  };
}

export async function proveConsistency(
  tree: ProvableTree,
  oldSize: number,
  newSize = tree.size,
): Promise<ConsistencyProofJson> {
  checkSize(tree, newSize, "new size");
  checkSize(tree, oldSize, "old size");
  if (oldSize > newSize)
    throw new AgentError(
      "PROOF_BAD_SIZE",
      `old size ${oldSize} is larger than new size ${newSize}`,
    );
  const source = tree.source();
  return {
    type: "consistency",
    oldSize,
    newSize,
    oldRootHash: hex(await treeHash(oldSize, source)),
    newRootHash: hex(await treeHash(newSize, source)),
    proof: (await consistencyProof(oldSize, newSize, source)).map(hex),
  };
}

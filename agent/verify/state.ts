import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { AgentError } from "../common/errors.js";
import type { ManifestsVerified } from "./verify-manifests.js";

/**
 * What a clean verification established about each chain, so the next run checks only
 * what came after (`verify --state FILE`). The state is the verifier's own: kept off the
 * agent's host in real use, it is what a rewritten history is compared with.
 */
export interface ChainState {
  chainId: string;
  /** Records verified from seq 0, contiguous, linked and covered by signed batches. */
  treeSize: number;
  /** The Merkle tree of those records as its frontier (see integrity/frontier.ts), in hex. */
  frontier: { hashes: string[]; widths: number[] };
  /** Its root (hex), for people and monitors. */
  root: string;
  /** The leaf hash of seq treeSize − 1 (hex): the link the next record must carry. */
  lastLeaf: string;
  /** The roots of every checkpoint size at or below treeSize, verified (hex). */
  checkpointRoots: Record<string, string>;
  firstReceived: string | null;
  lastReceived: string | null;
  verifiedAt: string;
  /**
   * The chain of manifests as the run left it, so the next run reads on from `next` (state
   * files written before this field: the next run checks every manifest again).
   */
  manifests?: EarlierManifests;
}

/** Where the chain of manifests was left, and the summary of the entries before it. */
export interface EarlierManifests extends ManifestsVerified {
  /** Verified batch entries before `next`, and the keys that signed them. */
  batches: number;
  keys: string[];
  /** The last seq sealed by those batches (-1: none). */
  sealedThrough: number;
  /** Checkpoints stored with those entries that verified, and the largest of them (hex). */
  checkpoints: number;
  latestCheckpoint: {
    size: number;
    rootHash: string;
    origin: string;
    /** The witnesses whose cosignature of it verified (with `--witness`). */
    cosigners?: string[];
  } | null;
  /** The origin line of the chain's checkpoints, for checkpoints seen elsewhere. */
  origin: string | null;
}

export interface VerifierState {
  version: 1;
  chains: Record<string, ChainState>;
}

export function emptyState(): VerifierState {
  return { version: 1, chains: {} };
}

/** Reads a state file; a missing file is an empty state (the first run is a full one). */
export function readState(path: string): VerifierState {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return emptyState();
    throw new AgentError("VERIFY_BAD_STATE", `cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const state = JSON.parse(text) as VerifierState;
    if (state.version !== 1 || typeof state.chains !== "object" || state.chains === null)
      throw new Error("not a version 1 verifier state");
    return state;
  } catch (err) {
    throw new AgentError(
      "VERIFY_BAD_STATE",
      `${path} is not a verifier state file (${(err as Error).message}): give a new path for a full run`,
    );
  }
}

/** Writes the state atomically: a crash leaves the old file or the new one, never half. */
export function writeState(path: string, state: VerifierState): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 1)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

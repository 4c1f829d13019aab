import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SealedLog } from "../store/sealed-log.js";
import { AgentError } from "../common/errors.js";
import { publicKeyPath, readTrustedKeys } from "../integrity/key-files.js";
import { type Checkpoint, parseCheckpointText, parseNote, verifyNote } from "../integrity/note.js";
import { proveConsistency, proveInclusion } from "../integrity/proofs.js";
import { loadConfigFile } from "../config/load.js";

/**
 * `audit-agent prove`: RFC 6962 proofs from the agent's stored tree. With --agent URL it
 * asks a running agent's checkpoint endpoint; otherwise it opens the WAL named by the
 * config (the agent must be stopped: LevelDB allows one process).
 */
export interface ProveOptions {
  seq?: number;
  consistency?: [number, number];
  checkpoint?: string;
  /** Public keys the checkpoint must be signed by (default: the config's signing key's .pub). */
  trust?: string[];
  config: string;
  agent?: string;
}

export async function proveCommand(opts: ProveOptions): Promise<void> {
  if ((opts.seq === undefined) === (opts.consistency === undefined)) {
    throw new AgentError("PROVE_USAGE", "give either --seq N or --consistency OLD NEW");
  }
  let size: number | undefined;
  let expectedRoot: string | undefined;
  const given = opts.checkpoint === undefined ? undefined : readCheckpoint(opts.checkpoint);
  if (opts.checkpoint && given !== undefined) {
    const cp = trustedCheckpoint(opts.checkpoint, given, opts);
    size = cp.size;
    expectedRoot = cp.rootHash.toString("hex");
  }
  const { proof, checkpoint } = opts.agent
    ? await fromAgent(opts, size)
    : await fromWal(opts, size);
  const root = "rootHash" in proof ? proof.rootHash : proof.newRootHash;
  if (expectedRoot !== undefined && root !== expectedRoot) {
    throw new AgentError(
      "PROVE_ROOT_MISMATCH",
      `the stored tree's root at size ${size} is ${root}, but the checkpoint says ${expectedRoot}`,
    );
  }
  // The signed checkpoint of the proof's tree, with any witness cosignatures: the proof can
  // then be checked offline against the agent's key and the witnesses alone.
  const note = given ?? checkpoint;
  process.stdout.write(`${JSON.stringify({ ...proof, checkpoint: note }, null, 2)}\n`);
}

type Proof =
  Awaited<ReturnType<typeof proveInclusion>> | Awaited<ReturnType<typeof proveConsistency>>;

/** The tree size a proof is for: the one its checkpoint must state. */
function proofSize(proof: Proof): number {
  return proof.type === "inclusion" ? proof.treeSize : proof.newSize;
}

/** The size of a signed checkpoint note, or null when it is not one. */
function noteSize(note: string | null | undefined): number | null {
  try {
    return note ? parseCheckpointText(parseNote(note).text).size : null;
  } catch {
    return null;
  }
}

/** The text of the checkpoint file `path` (`--checkpoint`). */
function readCheckpoint(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new AgentError(
      "PROVE_BAD_CHECKPOINT",
      `cannot read the checkpoint file ${path} (--checkpoint): ${(err as Error).message}; give a checkpoint the agent served (GET /checkpoint) or stored`,
    );
  }
}

/**
 * The checkpoint in `path`, once a trusted key's signature over it checks out: a proof
 * "against a checkpoint" means nothing if anyone could have written the checkpoint.
 */
function trustedCheckpoint(path: string, text: string, opts: ProveOptions): Checkpoint {
  let trustFiles = opts.trust ?? [];
  if (trustFiles.length === 0) {
    const pub = publicKeyPath(loadConfigFile(opts.config).signing.key_file);
    if (existsSync(pub)) trustFiles = [pub];
  }
  if (trustFiles.length === 0) {
    throw new AgentError(
      "PROVE_USAGE",
      "--checkpoint needs the public key(s) it must be signed by: --trust KEYFILE",
    );
  }
  const note = parseNote(text);
  const { valid, invalid } = verifyNote(note, readTrustedKeys(trustFiles));
  if (valid.length === 0) {
    throw new AgentError(
      "PROVE_CHECKPOINT_UNTRUSTED",
      invalid.length > 0
        ? `${path}: the checkpoint's signature by ${invalid.map((s) => s.name).join(", ")} does not verify: it was altered after signing`
        : `${path}: the checkpoint is not signed by a trusted key (${trustFiles.join(", ")})`,
    );
  }
  return parseCheckpointText(note.text);
}

async function fromWal(opts: ProveOptions, size: number | undefined) {
  const config = loadConfigFile(opts.config);
  // Opening a directory that holds no WAL would create an empty one and prove nothing.
  if (!existsSync(join(config.wal.directory, "CURRENT")))
    throw new AgentError(
      "PROVE_NO_WAL",
      `no write-ahead log at ${config.wal.directory} (extensions.wal.directory of ${opts.config}): give the agent's config with --config (relative paths are from the working directory), or ask the running agent with --agent URL`,
    );
  const opened = await SealedLog.openForReading(config.wal.directory);
  try {
    const { tree } = opened.sealed;
    const [oldSize, newSize] = opts.consistency ?? [0, 0];
    const proof: Proof =
      opts.seq !== undefined
        ? await proveInclusion(tree, opts.seq, size ?? tree.size)
        : await proveConsistency(tree, oldSize, size ?? newSize);
    // The newest entry whose checkpoint is of the proof's size (checkpoints come with batches).
    let checkpoint: string | null = null;
    for (let i = opened.sealed.entryCount - 1; i >= 0 && checkpoint === null; i--) {
      const note = (await opened.sealed.readEntry(i))?.checkpoint;
      const at = noteSize(note);
      if (at === proofSize(proof)) checkpoint = note ?? null;
      if (at !== null && at < proofSize(proof)) break;
    }
    return { proof, checkpoint };
  } finally {
    await opened.close();
  }
}

async function fromAgent(opts: ProveOptions, size: number | undefined) {
  const { agentBase, fetchCheckpoint, fetchProof } = await import("./prove-agent.js");
  const base = agentBase(opts.agent as string);
  const proof: Proof =
    opts.seq !== undefined
      ? await fetchProof(
          base,
          `/proof/inclusion?seq=${opts.seq}${size === undefined ? "" : `&size=${size}`}`,
          "inclusion",
        )
      : await fetchProof(
          base,
          `/proof/consistency?old=${opts.consistency?.[0]}&new=${size ?? opts.consistency?.[1]}`,
          "consistency",
        );
  // The agent serves its latest checkpoint: it goes with the proof when the sizes agree.
  const latest = await fetchCheckpoint(base);
  return { proof, checkpoint: noteSize(latest) === proofSize(proof) ? latest : null };
}

import { createHash } from "node:crypto";
import { chmod, mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { AgentError } from "../common/errors.js";
import { parseCheckpointText, parseNote } from "../integrity/note.js";

/**
 * What the witness cosigned last, per log, in `state_dir`: one JSON file per origin, named by
 * the lowercase hex SHA-256 of the origin (as the tlog-witness monitoring path is), mode
 * 0600 in a 0700 directory:
 *
 *   {"version":1,"origin":…,"size":…,"rootHash":<base64>,"time":<unix s>,"note":<note>}
 *
 * `note` is the log's signed note as received with the witness's cosignature line appended.
 * A file is replaced atomically (temporary file, fsync, rename, fsync of the directory)
 * before the witness answers 200. At start every file is read back and checked: a damaged
 * one stops the witness (WITNESS_STATE_DAMAGED), for reading it as "nothing cosigned" would
 * let a forked log be cosigned.
 */

export interface CosignedCheckpoint {
  origin: string;
  size: number;
  rootHash: Buffer;
  /** Unix seconds of the witness's cosignature. */
  time: number;
  /** The log's signed note as received, with the witness's cosignature line appended. */
  note: string;
}

const STATE_FILE = /^[0-9a-f]{64}$/;
const TEMP_SUFFIX = ".tmp";

/** Lowercase hex SHA-256 of the origin line: the state file's name and the monitoring path. */
export function originHash(origin: string): string {
  return createHash("sha256").update(origin, "utf8").digest("hex");
}

export class StateStore {
  private constructor(
    private readonly dir: string,
    /** By origin hash. */
    private readonly states: Map<string, CosignedCheckpoint>,
  ) {}

  /** Opens (creating it if needed) and reads the state directory. */
  static async open(dir: string): Promise<StateStore> {
    let names: string[];
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await chmod(dir, 0o700);
      names = await readdir(dir);
    } catch (err) {
      throw unwritable(`cannot use the state directory ${dir}`, err);
    }
    const states = new Map<string, CosignedCheckpoint>();
    for (const name of names.sort()) {
      const path = join(dir, name);
      // A write the witness did not finish, so never answered 200 for: the file before it stands.
      if (name.endsWith(TEMP_SUFFIX)) await unlink(path).catch(() => undefined);
      if (!STATE_FILE.test(name)) continue;
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (err) {
        throw unwritable(`cannot read the state file ${path}`, err);
      }
      states.set(name, decodeState(path, name, text));
    }
    return new StateStore(dir, states);
  }

  get(origin: string): CosignedCheckpoint | undefined {
    return this.states.get(originHash(origin));
  }

  byOriginHash(hash: string): CosignedCheckpoint | undefined {
    return this.states.get(hash);
  }

  all(): IterableIterator<CosignedCheckpoint> {
    return this.states.values();
  }

  /** Durably replaces the log's state; kept in memory only once it is on disk. */
  async save(state: CosignedCheckpoint): Promise<void> {
    const name = originHash(state.origin);
    const path = join(this.dir, name);
    const temp = `${path}${TEMP_SUFFIX}`;
    try {
      const file = await open(temp, "w", 0o600);
      try {
        await file.chmod(0o600);
        await file.writeFile(encodeState(state));
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, path);
      const dir = await open(this.dir, "r");
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw unwritable(`cannot write the state file ${path}`, err);
    }
    this.states.set(name, state);
  }
}

function encodeState(s: CosignedCheckpoint): string {
  return `${JSON.stringify({
    version: 1,
    origin: s.origin,
    size: s.size,
    rootHash: s.rootHash.toString("base64"),
    time: s.time,
    note: s.note,
  })}\n`;
}

/** The state a file holds, checked against its name and its own note. */
function decodeState(path: string, name: string, text: string): CosignedCheckpoint {
  const damaged = (what: string) =>
    new AgentError(
      "WITNESS_STATE_DAMAGED",
      `state file ${path} is damaged (${what}): the witness will not start without knowing what it cosigned; restore the file (docs/witness.md)`,
    );
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw damaged("not JSON");
  }
  const { version, origin, size, rootHash, time, note } = raw ?? {};
  if (
    version !== 1 ||
    typeof origin !== "string" ||
    !Number.isSafeInteger(size) ||
    (size as number) < 0 ||
    typeof rootHash !== "string" ||
    !Number.isSafeInteger(time) ||
    typeof note !== "string"
  )
    throw damaged("missing or mistyped fields");
  if (originHash(origin) !== name) throw damaged("its name is not the SHA-256 of its origin");
  const root = Buffer.from(rootHash, "base64");
  let checkpoint;
  try {
    checkpoint = parseCheckpointText(parseNote(note).text);
  } catch (err) {
    throw damaged(`its note: ${(err as Error).message}`);
  }
  if (checkpoint.origin !== origin || checkpoint.size !== size || !checkpoint.rootHash.equals(root))
    throw damaged("its note is for another tree than its fields say");
  return { origin, size: size as number, rootHash: root, time: time as number, note };
}

function unwritable(what: string, err: unknown): AgentError {
  return new AgentError("WITNESS_STATE_UNWRITABLE", `${what}: ${(err as Error).message}`, {
    cause: err,
  });
}

import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { ClassicLevel } from "classic-level";
import { AgentError } from "../common/errors.js";

/**
 * The one owner of the WAL directory's LevelDB database. The chain log, sealed log,
 * cursors and exporter state are views over it, each on its own key prefixes
 * (keyspace.ts); none of them opens LevelDB itself.
 */
export interface KeyRange {
  gte: Buffer;
  lt: Buffer;
}

export type WriteOp = { type: "put"; key: Buffer; value: Buffer } | { type: "del"; key: Buffer };

export class Store {
  private constructor(
    readonly directory: string,
    private readonly db: ClassicLevel<Buffer, Buffer>,
  ) {}

  static async open(directory: string): Promise<Store> {
    refuseWithoutCurrent(directory);
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    const db = new ClassicLevel<Buffer, Buffer>(directory, {
      keyEncoding: "buffer",
      valueEncoding: "buffer",
      // Records usually leave the log seconds after they arrive: a larger memtable lets
      // most of them be written and deleted before they are ever flushed and compacted.
      writeBufferSize: 16 << 20,
    });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: Error }).cause ?? err;
      const why = cause instanceof Error ? cause.message : String(cause);
      const hint = /lock/i.test(why)
        ? " (another audit-agent process is using this WAL directory; give each agent its own)"
        : "";
      throw new AgentError(
        "WAL_OPEN_FAILED",
        `cannot open the write-ahead log at ${directory}: ${why}${hint}`,
        { cause: err },
      );
    }
    return new Store(directory, db);
  }

  get(key: Buffer): Promise<Buffer | undefined> {
    return this.db.get(key);
  }

  /**
   * Applies `ops` atomically. `sync: true` returns only once they are on disk; unsynced
   * writes still apply in order after any synced write made before them.
   */
  async write(ops: WriteOp[], options: { sync: boolean }): Promise<void> {
    await this.db.batch(ops, options);
  }

  entries(range: KeyRange): AsyncIterable<[Buffer, Buffer]> {
    return this.db.iterator(range);
  }

  keys(range: KeyRange): AsyncIterable<Buffer> {
    return this.db.keys(range);
  }

  async clear(range: KeyRange): Promise<void> {
    await this.db.clear(range);
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

/** LevelDB's table, log and manifest files: a database's data. */
const LEVELDB_DATA = /^(\d+\.(log|ldb|sst)|MANIFEST-\d+)$/;

/**
 * Refuses a directory that holds LevelDB data but no CURRENT file. LevelDB would take it for
 * a new database: create one over it and delete the old tables as obsolete, acknowledged
 * records with them. CURRENT only names the newest manifest, so writing it back recovers
 * everything; the error says how.
 */
function refuseWithoutCurrent(directory: string): void {
  if (!existsSync(directory)) return;
  const names = readdirSync(directory);
  if (names.includes("CURRENT")) return;
  const data = names.filter((n) => LEVELDB_DATA.test(n));
  if (data.length === 0) return;
  const manifests = data.filter((n) => n.startsWith("MANIFEST-")).sort(byNumber);
  const newest = manifests.at(-1);
  throw new AgentError(
    "WAL_DAMAGED",
    `the write-ahead log at ${directory} holds LevelDB data (${data.length} files) but no CURRENT file; opening it would start an empty database and delete those files, so the agent stops. Nothing was changed. ${
      newest
        ? `CURRENT names the newest manifest: restore it with \`printf '${newest}\\n' > ${directory}/CURRENT\`, then start the agent`
        : "No MANIFEST file is left either: keep the directory as it is and recover it with LevelDB's repair (classic-level's ClassicLevel.repair) before starting the agent"
    }`,
  );
}

function byNumber(a: string, b: string): number {
  return Number(a.slice(a.indexOf("-") + 1)) - Number(b.slice(b.indexOf("-") + 1));
}

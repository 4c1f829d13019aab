import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { ClassicLevel } from "classic-level";
import { AgentError } from "../common/errors.js";
import { PROBE_KEY } from "./keyspace.js";

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
  /**
   * Set while writes fail (disk full, I/O error): LevelDB keeps a failed write's error and
   * refuses every later write until the database is opened again, so the store reopens it
   * (recover) until a synced probe write succeeds. Meanwhile writes fail at once.
   */
  failing: { since: number; message: string } | null = null;
  private recovering: Promise<void> | null = null;
  private closed = false;
  private readonly listeners: Array<(failing: Store["failing"]) => void> = [];

  private constructor(
    readonly directory: string,
    private db: ClassicLevel<Buffer, Buffer>,
    private readonly memory: StoreMemory,
  ) {}

  static async open(directory: string, memory: StoreMemory = {}): Promise<Store> {
    refuseWithoutCurrent(directory);
    try {
      mkdirSync(directory, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new AgentError(
        "WAL_OPEN_FAILED",
        `cannot create the write-ahead log directory ${directory}: ${(err as Error).message}; set extensions.wal.directory to a directory the agent's user can write`,
        { cause: err },
      );
    }
    return new Store(directory, await openLevel(directory, memory), memory);
  }

  /** Called when writes start failing (with why) and when they work again (null). */
  onFailing(listener: (failing: Store["failing"]) => void): void {
    this.listeners.push(listener);
  }

  get(key: Buffer): Promise<Buffer | undefined> {
    return this.db.get(key);
  }

  /**
   * Applies `ops` atomically. `sync: true` returns only once they are on disk; unsynced
   * writes still apply in order after any synced write made before them.
   */
  async write(ops: WriteOp[], options: { sync: boolean }): Promise<void> {
    if (this.failing)
      throw new Error(
        `writes are failing since ${new Date(this.failing.since).toISOString()}: ${this.failing.message}`,
      );
    try {
      await this.db.batch(ops, options);
    } catch (err) {
      this.failed(err);
      throw err;
    }
  }

  /** A write failed: writes fail at once from now until the store recovers. */
  private failed(err: unknown): void {
    if (this.closed || this.failing) return;
    const cause = (err as { cause?: unknown }).cause ?? err;
    this.failing = {
      since: Date.now(),
      message: cause instanceof Error ? cause.message : String(cause),
    };
    for (const l of this.listeners) l(this.failing);
    this.recovering ??= this.recover().finally(() => {
      this.recovering = null;
    });
  }

  /**
   * Opens the database again, then writes a synced probe, until that works: with backoff from
   * 250 ms to 5 s, as long as the store is open. What was acknowledged was synced before.
   */
  private async recover(): Promise<void> {
    for (let wait = 250; !this.closed; wait = Math.min(wait * 2, 5000)) {
      await new Promise((r) => setTimeout(r, wait).unref());
      if (this.closed) return;
      try {
        await this.db.close().catch(() => undefined);
        this.db = await openLevel(this.directory, this.memory);
        await this.db.batch(
          [{ type: "put", key: PROBE_KEY, value: Buffer.from(String(Date.now())) }],
          { sync: true },
        );
        this.failing = null;
        for (const l of this.listeners) l(null);
        return;
      } catch (err) {
        const cause = (err as { cause?: unknown }).cause ?? err;
        if (this.failing)
          this.failing.message = cause instanceof Error ? cause.message : String(cause);
      }
    }
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
    this.closed = true;
    await this.db.close();
  }
}

/** LevelDB's own memory (walMemory in wal.ts sizes it from extensions.wal.memory_mib). */
export interface StoreMemory {
  /** The memtable: up to two of them exist while one is flushed. */
  writeBufferBytes?: number;
  /** The block cache of table reads. */
  blockCacheBytes?: number;
}

async function openLevel(
  directory: string,
  memory: StoreMemory,
): Promise<ClassicLevel<Buffer, Buffer>> {
  const db = new ClassicLevel<Buffer, Buffer>(directory, {
    keyEncoding: "buffer",
    valueEncoding: "buffer",
    // Records usually leave the log seconds after they arrive: a larger memtable lets
    // most of them be written and deleted before they are ever flushed and compacted.
    writeBufferSize: memory.writeBufferBytes ?? 16 << 20,
    cacheSize: memory.blockCacheBytes ?? 8 << 20,
  });
  try {
    await db.open();
  } catch (err) {
    const cause = (err as { cause?: Error }).cause ?? err;
    const why = cause instanceof Error ? cause.message : String(cause);
    if (/lock/i.test(why))
      throw new AgentError(
        "WAL_IN_USE",
        `the write-ahead log at ${directory} is in use by another process (${why}): an agent is running on it. Give each agent its own directory; stop the agent before \`audit-agent wal check|repair|new-chain\``,
        { cause: err },
      );
    throw new AgentError(
      "WAL_OPEN_FAILED",
      `cannot open the write-ahead log at ${directory}: ${why}`,
      { cause: err },
    );
  }
  return db;
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
        : `No MANIFEST file is left either: rebuild it with LevelDB's repair, which keeps a copy of the directory first and then says which records survived: \`audit-agent wal repair --dir ${directory}\``
    }`,
  );
}

function byNumber(a: string, b: string): number {
  return Number(a.slice(a.indexOf("-") + 1)) - Number(b.slice(b.indexOf("-") + 1));
}

/**
 * Whether a LevelDB error says its files are damaged, not that the disk refuses writes:
 * a checksum or block that does not decode ("Corruption"), or a table file that is
 * truncated or gone ("IO error: …/000005.ldb: Invalid argument" when its footer is not
 * where it should be). A full or read-only disk (ENOSPC, EROFS) is not damage: the store
 * recovers from it by itself.
 */
export function isStoreDamage(err: unknown): boolean {
  const text = String((err as { cause?: unknown }).cause ?? err);
  return (
    /corrupt/i.test(text) ||
    /\.(ldb|sst|log)\b.*(Invalid argument|truncated|No such file)/i.test(text) ||
    /MANIFEST-\d+.*(Invalid argument|truncated|No such file)/i.test(text)
  );
}

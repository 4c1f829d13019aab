import type { ChainLog } from "./chain-log.js";
import { CURSOR_RANGE, cursorKey, exporterOfCursorKey, exporterStateRange } from "./keyspace.js";
import type { Store } from "./store.js";

/** Where an exporter is as stored: the last seq it delivered and the last sealed entry (null: never recorded). */
export interface CursorPosition {
  seq: number;
  index: number | null;
}

/** An exporter's position: the last seq and the last sealed-log entry it delivered. */
export interface Position {
  readonly seq: number;
  readonly index: number;
}

/**
 * Each exporter's position — the only record of it, in memory and on disk. An exporter's
 * delivery loop advances its delivered position after each write to the backend and asks
 * for it to be persisted; persisting also releases the chain log's records that every
 * exporter has now delivered, in the same LevelDB write.
 */
export class Cursors {
  /** Persisted seq per exporter: what releases are computed from. */
  private readonly positions = new Map<string, number>();
  /** Delivered (possibly not yet persisted) position per exporter. */
  private readonly delivered = new Map<string, Position>();
  /** Persisted entry index per exporter. */
  private readonly persistedIndex = new Map<string, number>();
  private releasing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly log: ChainLog,
  ) {}

  /**
   * The exporter's persisted position, or where it starts: an exporter new to this log
   * starts at the oldest record still held.
   */
  async load(exporterId: string): Promise<CursorPosition> {
    const raw = (await this.store.get(cursorKey(exporterId)))?.toString("utf8");
    const [seqText, indexText] = raw ? raw.split(":") : [];
    const seq = seqText === undefined ? this.log.oldestHeldSeq - 1 : Number(seqText);
    this.positions.set(exporterId, seq);
    return { seq, index: indexText === undefined ? null : Number(indexText) };
  }

  /** The exporter's delivered position (−1, −1 before load and resume). */
  position(exporterId: string): Position {
    return this.delivered.get(exporterId) ?? { seq: -1, index: -1 };
  }

  /**
   * Records in memory that the exporter's backend now holds everything up to `position`.
   * persist() writes it; until then a crash only means those batches are sent again.
   */
  advance(exporterId: string, position: Position): void {
    this.delivered.set(exporterId, position);
  }

  /**
   * Where the exporter's delivery resumes: its position as persisted, or as found out from
   * the sealed log when the stored cursor names no entry. Counts as persisted.
   */
  resume(exporterId: string, position: Position): void {
    this.delivered.set(exporterId, position);
    this.persistedIndex.set(exporterId, position.index);
  }

  /** Whether the delivered position is ahead of the persisted one. */
  unpersisted(exporterId: string): boolean {
    return this.position(exporterId).index > (this.persistedIndex.get(exporterId) ?? -1);
  }

  /** Writes the exporter's delivered position (see commit). */
  persist(exporterId: string): Promise<void> {
    const d = this.position(exporterId);
    return this.commit(exporterId, d.seq, d.index);
  }

  /**
   * Records that `exporterId` holds everything up to `seq` (and sealed entry `index`) and
   * releases what every exporter now holds, in one LevelDB write. Not synced: LevelDB
   * applies its log in order, so a crash never keeps a later release without the cursors
   * that justify it, and a lost cursor only means a batch is delivered again. One write,
   * not two: each write queues behind the synced group commits of a busy ingest.
   */
  async commit(exporterId: string, seq: number, index?: number): Promise<void> {
    this.positions.set(exporterId, seq);
    if (index !== undefined) {
      // What is written is the position, also when it moves back (an operator's rollback):
      // the delivery loop then re-sends from there, which every sink tolerates.
      this.persistedIndex.set(exporterId, index);
      this.delivered.set(exporterId, { seq, index });
    }
    const cursor = {
      type: "put" as const,
      key: cursorKey(exporterId),
      value: Buffer.from(index === undefined ? String(seq) : `${seq}:${index}`),
    };
    // Serialized, so releases apply in order and never compute from a stale chunk index.
    this.releasing = this.releasing
      .catch(() => undefined)
      .then(() => this.log.release(this.releasableThrough(), [cursor]));
    await this.releasing;
  }

  /** The seq through which every exporter has delivered, when it is past what was released. */
  private releasableThrough(): number | null {
    let min = Number.POSITIVE_INFINITY;
    for (const s of this.positions.values()) if (s < min) min = s;
    return Number.isFinite(min) && min >= this.log.oldestHeldSeq ? min : null;
  }

  /** Forgets exporters no longer configured (and their state): they must not hold records forever. */
  async forgetAllExcept(exporterIds: readonly string[]): Promise<string[]> {
    const keep = new Set(exporterIds);
    const dropped: string[] = [];
    for await (const key of this.store.keys(CURSOR_RANGE)) {
      const id = exporterOfCursorKey(key);
      if (keep.has(id)) continue;
      dropped.push(id);
      await this.store.write([{ type: "del", key }], { sync: false });
      // Its private state (e.g. Loki entry timestamps) goes with it.
      await this.store.clear(exporterStateRange(id));
    }
    return dropped;
  }

  /** Resolves once the commits in flight are written. */
  async settled(): Promise<void> {
    await this.releasing.catch(() => undefined);
  }
}

import type { ChainLog } from "./chain-log.js";
import { CURSOR_RANGE, cursorKey, exporterOfCursorKey, exporterStateRange } from "./keyspace.js";
import type { Store } from "./store.js";

/** Where an exporter is: the last seq it delivered and the last sealed entry (null: never recorded). */
export interface CursorPosition {
  seq: number;
  index: number | null;
}

/**
 * Each exporter's durable position — the only record of it. A commit also releases the
 * chain log's records that every exporter has now delivered, in the same LevelDB write.
 */
export class Cursors {
  private readonly positions = new Map<string, number>();
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

  /**
   * Records that `exporterId` holds everything up to `seq` (and sealed entry `index`) and
   * releases what every exporter now holds, in one LevelDB write. Not synced: LevelDB
   * applies its log in order, so a crash never keeps a later release without the cursors
   * that justify it, and a lost cursor only means a batch is delivered again. One write,
   * not two: each write queues behind the synced group commits of a busy ingest.
   */
  async commit(exporterId: string, seq: number, index?: number): Promise<void> {
    this.positions.set(exporterId, seq);
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

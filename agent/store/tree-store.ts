import { nodeHash } from "../integrity/format.js";
import { type Hash, type HashSource, isPowerOfTwo, splitPoint } from "../integrity/merkle.js";
import { tileKey } from "./keyspace.js";

export { tileKey };

/**
 * Stores the chain's Merkle tree as tiles, after C2SP tlog-tiles: level L holds the hashes
 * of complete subtrees of 256^L leaves, grouped 256 to a tile. Level 0 holds the leaf
 * hashes. Any subtree hash a proof needs is then at most one tile read plus ≤7 hash folds.
 * Complete tiles never change; the rightmost tile of each level grows until complete.
 *
 * The store produces the LevelDB puts for each append; the caller writes them in the same
 * synced batch as the manifest and checkpoint they belong to, so they move together.
 */

const TILE_WIDTH = 256;

export interface KeyValueReader {
  get(key: Buffer): Promise<Buffer | undefined>;
}

export interface Put {
  type: "put";
  key: Buffer;
  value: Buffer;
}

/** MTH of 2^r consecutive hashes that form a complete subtree. */
function foldPerfect(hashes: Hash[]): Hash {
  let level = hashes;
  while (level.length > 1) {
    const next: Hash[] = new Array(level.length / 2);
    for (let i = 0; i < next.length; i++)
      next[i] = nodeHash(level[2 * i] as Hash, level[2 * i + 1] as Hash);
    level = next;
  }
  return level[0] as Hash;
}

function splitTile(value: Buffer): Hash[] {
  const out: Hash[] = [];
  for (let at = 0; at + 32 <= value.length; at += 32) out.push(value.subarray(at, at + 32));
  return out;
}

export class TreeStore {
  private constructor(
    private readonly db: KeyValueReader,
    private treeSize: number,
    /** Per level, the entries of its rightmost, incomplete tile. */
    private readonly edge: Hash[][],
  ) {}

  static async load(db: KeyValueReader, size: number): Promise<TreeStore> {
    const edge: Hash[][] = [];
    for (let level = 0, width = 1; width <= size; level++, width *= TILE_WIDTH) {
      const count = Math.floor(size / width);
      const inTile = count % TILE_WIDTH;
      if (inTile === 0) {
        edge.push([]);
        continue;
      }
      const stored = await db.get(tileKey(level, Math.floor(count / TILE_WIDTH)));
      const hashes = stored ? splitTile(stored) : [];
      if (hashes.length < inTile)
        throw new Error(
          `tree tile ${level}/${Math.floor(count / TILE_WIDTH)} holds ${hashes.length} hashes, expected ${inTile}`,
        );
      edge.push(hashes.slice(0, inTile));
    }
    return new TreeStore(db, size, edge);
  }

  get size(): number {
    return this.treeSize;
  }

  /** Appends leaf hashes; returns the tile writes that make the append durable. */
  append(leaves: readonly Hash[]): Put[] {
    // Tiles touched by this append; each is written once, in its final state. A tile's row
    // is one array that grows in place until the tile completes, so it is noted once, when
    // first touched, not once per leaf.
    const touched: Array<{ level: number; index: number; hashes: Hash[] }> = [];
    const lastTouched: number[] = [];

    for (const leaf of leaves) {
      let hash: Hash = leaf;
      let level = 0;
      let count = this.treeSize; // entries at this level before adding
      for (;;) {
        if (this.edge[level] === undefined) this.edge[level] = [];
        const row = this.edge[level] as Hash[];
        row.push(hash);
        const tileIndex = Math.floor(count / TILE_WIDTH);
        if (lastTouched[level] !== tileIndex) {
          lastTouched[level] = tileIndex;
          touched.push({ level, index: tileIndex, hashes: row });
        }
        if (row.length < TILE_WIDTH) break;
        // The tile is complete: its root becomes the next level's entry.
        hash = foldPerfect(row);
        this.edge[level] = [];
        count = tileIndex;
        level++;
      }
      this.treeSize++;
    }
    return touched.map((t) => ({
      type: "put" as const,
      key: tileKey(t.level, t.index),
      value: Buffer.concat(t.hashes),
    }));
  }

  /** A HashSource over the first `size` leaves, reading stored tiles as needed. */
  source(): HashSource {
    const cache = new Map<string, Hash[]>();
    const entries = async (level: number, first: number, n: number): Promise<Hash[]> => {
      const tileIndex = Math.floor(first / TILE_WIDTH);
      const countAtLevel = Math.floor(this.treeSize / TILE_WIDTH ** level);
      let tile: Hash[];
      if (tileIndex === Math.floor(countAtLevel / TILE_WIDTH)) {
        tile = this.edge[level] ?? [];
      } else {
        const id = `${level}/${tileIndex}`;
        let cached = cache.get(id);
        if (!cached) {
          const stored = await this.db.get(tileKey(level, tileIndex));
          if (!stored) throw new Error(`tree tile ${id} is missing`);
          cached = splitTile(stored);
          cache.set(id, cached);
        }
        tile = cached;
      }
      const offset = first % TILE_WIDTH;
      return tile.slice(offset, offset + n);
    };
    const source = async (start: number, end: number): Promise<Hash> => {
      const n = end - start;
      if (isPowerOfTwo(n) && start % n === 0) {
        const height = Math.log2(n);
        const level = Math.floor(height / 8);
        const span = 2 ** (height % 8);
        const hashes = await entries(level, start / TILE_WIDTH ** level, span);
        if (hashes.length !== span)
          throw new Error(`tree hashes for [${start}, ${end}) are missing`);
        return foldPerfect(hashes);
      }
      const k = splitPoint(n);
      return nodeHash(await source(start, start + k), await source(start + k, end));
    };
    return source;
  }
}

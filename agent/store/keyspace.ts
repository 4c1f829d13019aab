/**
 * Every LevelDB key the agent writes, in one place. The WAL directory is one LevelDB
 * database shared by the chain log, the sealed log, the cursors and exporter state; each
 * owns the prefixes listed here and no other module builds a key.
 *
 *   m:chain          chain id and creation time                      (chain log)
 *   m:head           seq and leaf hash of the newest durable record  (chain log)
 *   r + u64 seq      a chunk of records, keyed by its first seq      (chain log)
 *   m:seal           sealing progress: entries, sealed through…      (sealed log)
 *   m:signer         verifier key of the key that signs now          (sealed log)
 *   M + u64 index    one sealed-log entry: signed manifest + note    (sealed log)
 *   T + u8 level + u64 index   one Merkle tree tile                  (sealed log)
 *   c:<exporter>     an exporter's delivered seq and entry index     (cursors)
 *   x:<exporter>:<k> state private to one exporter                   (exporter state)
 *   v:<exporter>     what verification of its backend established    (verification state)
 *
 * Numbered keys are a one-byte prefix and a big-endian number, so they sort by number.
 */
const RECORD_PREFIX = 0x72; // 'r'
const MANIFEST_PREFIX = 0x4d; // 'M'
const TILE_PREFIX = 0x54; // 'T'

export const CHAIN_KEY = Buffer.from("m:chain");
export const HEAD_KEY = Buffer.from("m:head");
export const SEAL_STATE_KEY = Buffer.from("m:seal");
export const SIGNER_KEY = Buffer.from("m:signer");
/** Written by Store.recover to show that a synced write works again after a failure. */
export const PROBE_KEY = Buffer.from("m:probe");
const CURSOR_PREFIX = "c:";
/** The byte after ':' bounds the cursor range. */
const CURSOR_END = "c;";

/** A one-byte prefix, then `n` as an 8-byte big-endian integer, so keys sort by `n`. */
function numberedKey(prefix: number, n: number): Buffer {
  const key = Buffer.allocUnsafe(9);
  key[0] = prefix;
  key.writeUInt32BE(Math.floor(n / 4294967296), 1);
  key.writeUInt32BE(n >>> 0, 5);
  return key;
}

export function recordKey(seq: number): Buffer {
  return numberedKey(RECORD_PREFIX, seq);
}

export function seqOfRecordKey(key: Uint8Array): number {
  const view = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return view.readUInt32BE(1) * 4294967296 + view.readUInt32BE(5);
}

/** Every record key: bounds for range scans. */
export const RECORD_RANGE = { gte: recordKey(0), lt: Buffer.from([RECORD_PREFIX + 1]) };

export function manifestKey(index: number): Buffer {
  return numberedKey(MANIFEST_PREFIX, index);
}

export function tileKey(level: number, index: number): Buffer {
  const key = Buffer.allocUnsafe(10);
  key[0] = TILE_PREFIX;
  key[1] = level;
  key.writeUInt32BE(Math.floor(index / 4294967296), 2);
  key.writeUInt32BE(index >>> 0, 6);
  return key;
}

export function cursorKey(exporterId: string): Buffer {
  return Buffer.from(`${CURSOR_PREFIX}${exporterId}`);
}

/** Every cursor key: bounds for range scans. */
export const CURSOR_RANGE = { gte: Buffer.from(CURSOR_PREFIX), lt: Buffer.from(CURSOR_END) };

export function exporterOfCursorKey(key: Uint8Array): string {
  return Buffer.from(key).toString("utf8").slice(CURSOR_PREFIX.length);
}

export function exporterStateKey(exporterId: string, key: string): Buffer {
  return Buffer.from(`x:${exporterId}:${key}`);
}

/** Every state key of one exporter: bounds for clearing it. */
export function exporterStateRange(exporterId: string): { gte: Buffer; lt: Buffer } {
  return { gte: exporterStateKey(exporterId, ""), lt: exporterStateKey(exporterId, "\uffff") };
}

/** The continuous verifier's state for one exporter's backend. */
export function verificationStateKey(exporterId: string): Buffer {
  return Buffer.from(`v:${exporterId}`);
}

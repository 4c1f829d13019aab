/**
 * LevelDB key layout of the write-ahead log. Records sort by seq because the key is a
 * one-byte prefix followed by the seq as an 8-byte big-endian integer.
 */
const RECORD_PREFIX = 0x72; // 'r'

export const CHAIN_KEY = Buffer.from("m:chain");
export const HEAD_KEY = Buffer.from("m:head");
export const CURSOR_PREFIX = "c:";

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

/** One past the largest possible record key: an exclusive upper bound for range scans. */
export const RECORD_KEY_END = Buffer.from([RECORD_PREFIX + 1]);

export function cursorKey(exporterId: string): Buffer {
  return Buffer.from(`${CURSOR_PREFIX}${exporterId}`);
}

/**
 * A stored record value: the 32-byte leaf hash, then the byte 0x00, then the canonical
 * text. Bytes 32.. are exactly the RFC 6962 leaf-hash input, so the hash is computed over
 * the stored buffer itself with no copy.
 */
export const HASH_BYTES = 32;
export const CANONICAL_OFFSET = 33;

/** Sealed-batch log: 'M' + 8-byte manifest index → {"manifest": signed text, "checkpoint": note}. */
const MANIFEST_PREFIX = 0x4d; // 'M'
export const SEAL_STATE_KEY = Buffer.from("m:seal");
export const SIGNER_KEY = Buffer.from("m:signer");

export function manifestKey(index: number): Buffer {
  return numberedKey(MANIFEST_PREFIX, index);
}

/** Exporter-private state: 'x:' + exporter id + ':' + key (e.g. Loki's batch timestamps). */
export function exporterStateKey(exporterId: string, key: string): Buffer {
  return Buffer.from(`x:${exporterId}:${key}`);
}

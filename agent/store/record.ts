/**
 * One stored record: its seq and its stored bytes, the 32-byte leaf hash, the byte 0x00,
 * then the canonical text. Bytes 32.. are exactly the RFC 6962 leaf-hash input, so the
 * hash is computed over the stored buffer itself with no copy. Everything outside the
 * store reads a record through the views below (zero-copy subarrays), never by offset.
 */
export const HASH_BYTES = 32;
const CANONICAL_OFFSET = HASH_BYTES + 1;

/** The stored length of a record whose canonical text is `canonicalBytes` long. */
export const storedLength = (canonicalBytes: number): number => CANONICAL_OFFSET + canonicalBytes;

export class StoredRecord {
  constructor(
    readonly seq: number,
    /** The store's encoding (see above); exporters use the views instead. */
    readonly value: Buffer,
  ) {}

  /** The record's RFC 6962 leaf hash (a view, not a copy). */
  get leafHash(): Buffer {
    return this.value.subarray(0, HASH_BYTES);
  }

  leafHashHex(): string {
    return this.value.toString("hex", 0, HASH_BYTES);
  }

  /** The canonical text's UTF-8 bytes: what every backend stores (a view, not a copy). */
  get canonical(): Buffer {
    return this.value.subarray(CANONICAL_OFFSET);
  }

  get canonicalLength(): number {
    return this.value.length - CANONICAL_OFFSET;
  }

  canonicalText(): string {
    return this.value.toString("utf8", CANONICAL_OFFSET);
  }

  /** Copies the canonical text into `target` at `at`; returns the bytes copied. */
  copyCanonical(target: Buffer, at: number): number {
    return this.value.copy(target, at, CANONICAL_OFFSET);
  }
}

/** A record from its canonical text and leaf hash (for readers and tests that rebuild one). */
export function storedRecordOf(
  seq: number,
  leafHash: Uint8Array,
  canonical: Uint8Array,
): StoredRecord {
  const value = Buffer.allocUnsafe(CANONICAL_OFFSET + canonical.length);
  value.set(leafHash, 0);
  value[HASH_BYTES] = 0x00;
  value.set(canonical, CANONICAL_OFFSET);
  return new StoredRecord(seq, value);
}

/**
 * A growable byte buffer that writes the pieces of RFC 8785 canonical JSON straight from
 * protobuf wire bytes: strings copied (and escaped) from their UTF-8 bytes, integers from
 * their 32-bit halves, ids as hex. The OTLP protobuf fast path (receivers/otlp/
 * protobuf-canonical.ts) writes whole records with it without building a JS string or
 * object per field; the output is byte-identical to canonical-record.ts, which tests check.
 *
 * Not reentrant: one writer per caller, reused across requests to avoid reallocating.
 */

const HEX = new Uint8Array(512);
for (let i = 0; i < 256; i++) {
  const h = i.toString(16).padStart(2, "0");
  HEX[i * 2] = h.charCodeAt(0);
  HEX[i * 2 + 1] = h.charCodeAt(1);
}

/** RFC 8785 / ECMAScript JSON.stringify short escapes, by byte (0 = \u00XX form). */
const SHORT_ESCAPE = new Uint8Array(128);
SHORT_ESCAPE[0x08] = 0x62; // \b
SHORT_ESCAPE[0x09] = 0x74; // \t
SHORT_ESCAPE[0x0a] = 0x6e; // \n
SHORT_ESCAPE[0x0c] = 0x66; // \f
SHORT_ESCAPE[0x0d] = 0x72; // \r
SHORT_ESCAPE[0x22] = 0x22; // \"
SHORT_ESCAPE[0x5c] = 0x5c; // \\

const E7 = 10_000_000;

/** Thrown for string bytes that are not UTF-8 (proto3 strings must be). */
export class InvalidUtf8Error extends Error {}

export class JsonBytesWriter {
  buf: Buffer;
  pos = 0;

  constructor(initialBytes = 1 << 20) {
    this.buf = Buffer.allocUnsafeSlow(initialBytes);
  }

  reset(): void {
    this.pos = 0;
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafeSlow(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /**
   * ASCII text known to need no escaping (member names, punctuation, numbers). A loop,
   * not Buffer#write: these are a few dozen bytes, where the native call's argument
   * handling cost more than the copy (measured: ~14 % of the fast path's time).
   */
  ascii(text: string): void {
    this.ensure(text.length);
    this.pos = writeAscii(this.buf, this.pos, text);
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** An unsigned 64-bit integer hi·2³² + lo in decimal (no quotes). */
  uint64(lo: number, hi: number): void {
    this.ensure(20);
    this.pos = writeUint64(this.buf, this.pos, lo, hi);
  }

  /** A signed 64-bit integer (two's complement hi·2³² + lo) in decimal (no quotes). */
  int64(lo: number, hi: number): void {
    this.ensure(21);
    this.pos = writeInt64(this.buf, this.pos, lo, hi);
  }

  bytes(src: Uint8Array): void {
    this.ensure(src.length);
    this.buf.set(src, this.pos);
    this.pos += src.length;
  }

  /**
   * A JSON string from UTF-8 bytes src[start, end): quoted, escaped as JSON.stringify
   * escapes (which RFC 8785 adopts), and checked to be well-formed UTF-8.
   */
  string(src: Uint8Array, start: number, end: number): void {
    this.ensure((end - start) * 6 + 2);
    const out = this.buf;
    let p = this.pos;
    out[p++] = 0x22;
    for (let i = start; i < end; i++) {
      const c = src[i] as number;
      if (c >= 0x20 && c < 0x80 && c !== 0x22 && c !== 0x5c) {
        out[p++] = c;
      } else if (c < 0x80) {
        out[p++] = 0x5c;
        const short = SHORT_ESCAPE[c] as number;
        if (short !== 0) {
          out[p++] = short;
        } else {
          out[p++] = 0x75; // u00XX, lowercase hex as JSON.stringify writes it
          out[p++] = 0x30;
          out[p++] = 0x30;
          out[p++] = HEX[c * 2] as number;
          out[p++] = HEX[c * 2 + 1] as number;
        }
      } else {
        const n = utf8SequenceLength(src, i, end);
        if (n === 0) throw new InvalidUtf8Error(`invalid UTF-8 in a string field at offset ${i}`);
        for (let k = 0; k < n; k++) out[p++] = src[i + k] as number;
        i += n - 1;
      }
    }
    out[p++] = 0x22;
    this.pos = p;
  }

  /** Bytes as quoted lowercase hex (trace and span ids). */
  hex(src: Uint8Array, start: number, end: number): void {
    this.ensure((end - start) * 2 + 2);
    const out = this.buf;
    out[this.pos] = 0x22;
    const p = writeHex(out, this.pos + 1, src, start, end - start);
    out[p] = 0x22;
    this.pos = p + 1;
  }

  /** Bytes as quoted, padded standard base64. */
  base64(src: Uint8Array, start: number, end: number): void {
    const text = Buffer.from(src.buffer, src.byteOffset + start, end - start).toString("base64");
    this.ensure(text.length + 2);
    this.buf[this.pos++] = 0x22;
    this.pos += this.buf.write(text, this.pos, "latin1");
    this.buf[this.pos++] = 0x22;
  }
}

/** Writes ASCII `text` at `at`; returns the position after it. For short strings. */
export function writeAscii(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i);
  return at;
}

/** Decimal digits of a safe integer ≥ 0. */
export function decimalLength(n: number): number {
  let digits = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    digits++;
  }
  return digits;
}

/** Writes a safe integer ≥ 0 in decimal at `at`; returns the position after it. */
export function writeDecimal(out: Uint8Array, at: number, n: number): number {
  const end = at + decimalLength(n);
  for (let p = end - 1; p >= at; p--) {
    out[p] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return end;
}

/** Writes src[start, start + n) as lowercase hex at `at`; returns the position after it. */
export function writeHex(
  out: Uint8Array,
  at: number,
  src: Uint8Array,
  start: number,
  n: number,
): number {
  for (let i = start; i < start + n; i++) {
    const b = (src[i] as number) * 2;
    out[at++] = HEX[b] as number;
    out[at++] = HEX[b + 1] as number;
  }
  return at;
}

/**
 * Length of the well-formed UTF-8 sequence starting at src[i] (a byte ≥ 0x80), or 0 when
 * it is not one: Unicode Table 3-7, so no overlong forms, surrogates or code points above
 * U+10FFFF — the same bytes node's isUtf8 accepts.
 */
export function utf8SequenceLength(src: Uint8Array, i: number, end: number): number {
  const c = src[i] as number;
  if (c < 0xc2) return 0;
  if (c < 0xe0) return i + 1 < end && isCont(src[i + 1] as number) ? 2 : 0;
  if (c < 0xf0) {
    if (i + 2 >= end) return 0;
    const c1 = src[i + 1] as number;
    const lo = c === 0xe0 ? 0xa0 : 0x80;
    const hi = c === 0xed ? 0x9f : 0xbf;
    return c1 >= lo && c1 <= hi && isCont(src[i + 2] as number) ? 3 : 0;
  }
  if (c < 0xf5) {
    if (i + 3 >= end) return 0;
    const c1 = src[i + 1] as number;
    const lo = c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xf4 ? 0x8f : 0xbf;
    return c1 >= lo && c1 <= hi && isCont(src[i + 2] as number) && isCont(src[i + 3] as number)
      ? 4
      : 0;
  }
  return 0;
}

function isCont(b: number): boolean {
  return (b & 0xc0) === 0x80;
}

/** Decimal text of the unsigned 64-bit integer hi·2³² + lo (both uint32), exactly. */
export function uint64Decimal(lo: number, hi: number): string {
  if (hi === 0) return String(lo);
  if (hi < 0x200000) return String(hi * 4294967296 + lo); // below 2^53: exact as a double
  splitE7(lo, hi);
  const low = String(splitLow).padStart(7, "0");
  if (splitTop === 0) return String(splitMid) + low;
  return String(splitTop) + String(splitMid).padStart(7, "0") + low;
}

// splitE7's results: hi·2³² + lo = top·10¹⁴ + mid·10⁷ + low (module scratch, not reentrant).
let splitTop = 0;
let splitMid = 0;
let splitLow = 0;

/**
 * Long division of the four 16-bit limbs of hi·2³² + lo by 10^7, twice (2^64 < 10^21);
 * every intermediate stays below 10^7 · 2^16, well inside a double's exact range.
 */
function splitE7(lo: number, hi: number): void {
  let a = hi >>> 16;
  let b = hi & 0xffff;
  let c = lo >>> 16;
  let d = lo & 0xffff;
  for (let round = 0; round < 2; round++) {
    let r = a;
    const qa = Math.floor(r / E7);
    r = (r - qa * E7) * 65536 + b;
    const qb = Math.floor(r / E7);
    r = (r - qb * E7) * 65536 + c;
    const qc = Math.floor(r / E7);
    r = (r - qc * E7) * 65536 + d;
    const qd = Math.floor(r / E7);
    r -= qd * E7;
    if (round === 0) splitLow = r;
    else splitMid = r;
    a = qa;
    b = qb;
    c = qc;
    d = qd;
  }
  // What is left is below 10^7 (2^64 / 10^14 < 184,468).
  splitTop = ((a * 65536 + b) * 65536 + c) * 65536 + d;
}

/** Writes n (0 ≤ n < 10^7) as exactly 7 digits, zero-padded; returns the position after. */
function writeSeven(out: Uint8Array, at: number, n: number): number {
  for (let p = at + 6; p >= at; p--) {
    out[p] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return at + 7;
}

/** Writes hi·2³² + lo in decimal at `at`, as uint64Decimal spells it; returns the end. */
export function writeUint64(out: Uint8Array, at: number, lo: number, hi: number): number {
  if (hi < 0x200000) return writeDecimal(out, at, hi * 4294967296 + lo);
  splitE7(lo, hi);
  if (splitTop === 0) at = writeDecimal(out, at, splitMid);
  else at = writeSeven(out, writeDecimal(out, at, splitTop), splitMid);
  return writeSeven(out, at, splitLow);
}

/** Decimal text of the two's-complement signed 64-bit integer hi·2³² + lo. */
export function int64Decimal(lo: number, hi: number): string {
  if ((hi & 0x80000000) === 0) return uint64Decimal(lo, hi);
  const nlo = (~lo + 1) >>> 0;
  const nhi = (~hi + (nlo === 0 ? 1 : 0)) >>> 0;
  return `-${uint64Decimal(nlo, nhi)}`;
}

/** Writes the signed 64-bit hi·2³² + lo in decimal at `at`, as int64Decimal spells it. */
export function writeInt64(out: Uint8Array, at: number, lo: number, hi: number): number {
  if ((hi & 0x80000000) === 0) return writeUint64(out, at, lo, hi);
  const nlo = (~lo + 1) >>> 0;
  const nhi = (~hi + (nlo === 0 ? 1 : 0)) >>> 0;
  out[at] = 0x2d; // -
  return writeUint64(out, at + 1, nlo, nhi);
}

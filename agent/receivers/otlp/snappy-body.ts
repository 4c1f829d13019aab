import { bodyTooLarge, corruptBody } from "./body-limits.js";

/**
 * Snappy request bodies, decoded within max_request_body_size. As in the Collector's
 * confighttp, `Content-Encoding: snappy` is the block format, except that a body opening
 * with the framing format's stream identifier is read as framed (older Collectors sent
 * framed data under that name); `x-snappy-framed` is the framing format.
 *
 * A block states its decompressed length first: it is checked against the limit before the
 * output is allocated. A framed stream is a series of chunks of at most 64 KiB each, whose
 * lengths are checked as they come; each chunk's CRC-32C is verified.
 * Formats: github.com/google/snappy format_description.txt and framing_format.txt.
 */

type Uncompress = (input: Uint8Array, maxLength?: number) => Uint8Array;

let snappy: Promise<{ uncompress: Uncompress }> | null = null;

/** The stream identifier chunk every framed stream starts with: 0xff, length 6, "sNaPpY". */
const STREAM_IDENTIFIER = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);
const MAX_CHUNK_DATA = 65536;

export async function decompressSnappy(
  body: Buffer,
  limit: number,
  encoding: "snappy" | "x-snappy-framed",
): Promise<Buffer> {
  // Loaded on the first snappy request only: an agent that never sees one never holds it.
  snappy ??= import("snappyjs") as Promise<{ uncompress: Uncompress }>;
  const { uncompress } = await snappy;
  const framed =
    encoding === "x-snappy-framed" ||
    body.subarray(0, STREAM_IDENTIFIER.length).equals(STREAM_IDENTIFIER);
  return framed
    ? decodeFramed(body, limit, uncompress, encoding)
    : decodeBlock(body, limit, uncompress);
}

/** A block's leading varint: its decompressed length (< 2^32), or -1 when malformed. */
function statedLength(block: Buffer): number {
  let length = 0;
  for (let i = 0; i < 5 && i < block.length; i++) {
    const byte = block[i] as number;
    length += (byte & 0x7f) * 2 ** (7 * i);
    if (byte < 0x80) return length;
  }
  return -1;
}

function decodeBlock(body: Buffer, limit: number, uncompress: Uncompress): Buffer {
  const length = statedLength(body);
  if (length < 0) throw corruptBody("snappy", "the block does not start with its length");
  if (length > limit) {
    throw bodyTooLarge(`the snappy body's stated size (${length} bytes decompressed)`, limit);
  }
  try {
    // snappyjs answers a Uint8Array for a Buffer: viewed as the Buffer callers expect.
    const out = uncompress(body, limit);
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  } catch (err) {
    throw corruptBody("snappy", (err as Error).message);
  }
}

/** A data chunk of a framed stream: its type, CRC, data, and decompressed length. */
interface DataChunk {
  type: 0x00 | 0x01;
  crc: number;
  data: Buffer;
  length: number;
}

/**
 * Reads a framed stream's chunk headers, checks them and the total they state against the
 * limit, and returns its data chunks. No data is decoded yet.
 */
function dataChunks(body: Buffer, limit: number, encoding: string): DataChunk[] {
  if (!body.subarray(0, STREAM_IDENTIFIER.length).equals(STREAM_IDENTIFIER)) {
    throw corruptBody(encoding, "a framed stream starts with the sNaPpY stream identifier");
  }
  const chunks: DataChunk[] = [];
  let total = 0;
  for (let pos = 0; pos < body.length;) {
    if (pos + 4 > body.length) throw corruptBody(encoding, "the body ends inside a chunk header");
    const type = body[pos] as number;
    const end = pos + 4 + body.readUIntLE(pos + 1, 3);
    if (end > body.length) throw corruptBody(encoding, "the body ends inside a chunk");
    const chunk = body.subarray(pos + 4, end);
    pos = end;
    if (type === 0xff) {
      if (!chunk.equals(STREAM_IDENTIFIER.subarray(4)))
        throw corruptBody(encoding, "a stream identifier chunk is not sNaPpY");
      continue;
    }
    if (type >= 0x80) continue; // padding (0xfe) and skippable chunks carry no data
    if (type > 0x01) throw corruptBody(encoding, `chunk type ${type} is reserved`);
    if (chunk.length < 4) throw corruptBody(encoding, "a data chunk has no checksum");
    const data = chunk.subarray(4);
    const length = type === 0x00 ? statedLength(data) : data.length;
    if (length < 0 || length > MAX_CHUNK_DATA)
      throw corruptBody(encoding, "a chunk holds more than 64 KiB or no valid length");
    total += length;
    if (total > limit) throw bodyTooLarge("the decompressed body", limit);
    // A chunk of no data adds nothing but its checksum, checked here.
    if (length === 0) {
      if (maskedCrc32c(data.subarray(0, 0)) !== chunk.readUInt32LE(0))
        throw corruptBody(encoding, "a chunk's checksum does not match its data");
      continue;
    }
    chunks.push({ type: type === 0x00 ? 0x00 : 0x01, crc: chunk.readUInt32LE(0), data, length });
  }
  return chunks;
}

/**
 * Decodes a framed stream into one buffer of the size its chunks state: a stream of many
 * tiny chunks holds no buffer per chunk (400,000 empty chunks once held 20 MiB per MiB).
 */
function decodeFramed(
  body: Buffer,
  limit: number,
  uncompress: Uncompress,
  encoding: string,
): Buffer {
  const chunks = dataChunks(body, limit, encoding);
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const c of chunks) {
    const data = c.type === 0x00 ? uncompressChunk(c.data, uncompress, encoding) : c.data;
    if (data.length !== c.length) throw corruptBody(encoding, "a chunk is not its stated length");
    if (maskedCrc32c(data) !== c.crc)
      throw corruptBody(encoding, "a chunk's checksum does not match its data");
    out.set(data, at);
    at += data.length;
  }
  return out;
}

function uncompressChunk(data: Buffer, uncompress: Uncompress, encoding: string): Uint8Array {
  try {
    return uncompress(data, MAX_CHUNK_DATA);
  } catch (err) {
    throw corruptBody(encoding, (err as Error).message);
  }
}

let crcTable: Uint32Array | null = null;

/** CRC-32C (Castagnoli) of `data`, masked as the framing format stores it. */
export function maskedCrc32c(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      crcTable[i] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of data) crc = (crcTable[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  crc = (crc ^ 0xffffffff) >>> 0;
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

import * as zlib from "node:zlib";
import {
  bodyTooLarge,
  corruptBody,
  HttpRefusal,
  type ZlibDecoder,
  zlibDecode,
} from "./body-limits.js";

/**
 * zstd request bodies (RFC 8878), decoded within max_request_body_size.
 *
 * Before anything is decoded, every frame header is read: a frame that states its content
 * size is refused (413) when the sizes add up past the limit, and a frame without one has
 * its window (the history a decoder allocates up front) cut to max(limit, 128 KiB). That cut
 * is lossless for every body the receiver accepts: a back-reference can reach no further
 * than the output produced so far, which stays within the limit or the decode stops. So no
 * frame makes the decoder allocate much more than the limit, whatever window it declares
 * (streaming encoders declare 8 MiB and more by default). The decode itself is bounded too:
 * node:zlib's zstd (Node >= 22.15) with maxOutputLength, or else the pure-JS fzstd fed as a
 * stream that stops at the first chunk past the limit.
 */

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC = 0x184d2a50;
/** A block's decompressed size is at most min(window, 128 KiB) (RFC 8878 §3.1.1.2.3). */
const MAX_BLOCK = 128 * 1024;

function windowSize(descriptor: number): number {
  const base = 2 ** (10 + (descriptor >> 3));
  return base + (base / 8) * (descriptor & 7);
}

/** The smallest window descriptor whose window holds `size` bytes. */
function descriptorFor(size: number): number {
  for (let d = 0; d < 256; d++) if (windowSize(d) >= size) return d;
  return 255;
}

const FCS_BYTES = [0, 2, 4, 8] as const;
const DICT_BYTES = [0, 1, 2, 4] as const;

/** Reads the little-endian unsigned integer of `n` bytes at `at` (n ≤ 8). */
function readLE(body: Buffer, at: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + (body[at + i] as number);
  return v;
}

/**
 * Checks the frames of `body` against `limit` and caps their windows in place (see above).
 * Throws 413 for declared sizes past the limit, 400 for a body that is not zstd frames.
 */
export function boundZstdFrames(body: Buffer, limit: number): void {
  let pos = 0;
  let declared = 0;
  const ensure = (end: number) => {
    if (end > body.length) throw corruptBody("zstd", "the body ends inside a frame");
  };
  while (pos < body.length) {
    ensure(pos + 4);
    const magic = body.readUInt32LE(pos);
    if ((magic & 0xfffffff0) >>> 0 === SKIPPABLE_MAGIC) {
      ensure(pos + 8);
      pos += 8 + body.readUInt32LE(pos + 4);
      ensure(pos);
      continue;
    }
    if (magic !== ZSTD_MAGIC) throw corruptBody("zstd", `no zstd frame starts at byte ${pos}`);
    ensure(pos + 6);
    const fhd = body[pos + 4] as number;
    if (fhd & 0x08) throw corruptBody("zstd", "a frame header has its reserved bit set");
    const single = (fhd >> 5) & 1;
    const fcsBytes = (fhd >> 6 === 0 ? single : FCS_BYTES[fhd >> 6]) as number;
    const dictBytes = DICT_BYTES[fhd & 3] as number;
    const windowAt = single ? -1 : pos + 5;
    let p = pos + 5 + (single ? 0 : 1);
    ensure(p + dictBytes + fcsBytes);
    if (dictBytes > 0 && readLE(body, p, dictBytes) !== 0) {
      throw corruptBody("zstd", "frames compressed with a dictionary are not supported");
    }
    p += dictBytes;
    if (fcsBytes > 0) {
      declared += readLE(body, p, fcsBytes) + (fcsBytes === 2 ? 256 : 0);
      if (declared > limit) {
        throw bodyTooLarge(`the zstd body's stated size (${declared} bytes decompressed)`, limit);
      }
    }
    p += fcsBytes;
    if (windowAt >= 0) {
      const cap = Math.max(limit, MAX_BLOCK);
      if (windowSize(body[windowAt] as number) > cap) body[windowAt] = descriptorFor(cap);
    }
    pos = skipBlocks(body, p, ensure) + ((fhd >> 2) & 1) * 4;
    ensure(pos);
  }
}

/** Walks a frame's block headers from `p`; returns the offset after its last block. */
function skipBlocks(body: Buffer, p: number, ensure: (end: number) => void): number {
  for (;;) {
    ensure(p + 3);
    const header = body.readUIntLE(p, 3);
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw corruptBody("zstd", "a block has the reserved block type");
    if (size > MAX_BLOCK) throw corruptBody("zstd", "a block is larger than 128 KiB");
    p += 3 + (type === 1 ? 1 : size);
    ensure(p);
    if (header & 1) return p;
  }
}

const nodeZstd = (zlib as unknown as { zstdDecompress?: ZlibDecoder }).zstdDecompress;

/** Which decoder decodes zstd here: node:zlib's when this Node has it. */
export const zstdDecoderName: "node:zlib" | "fzstd" = nodeZstd ? "node:zlib" : "fzstd";

let fzstd: Promise<typeof import("fzstd")> | null = null;

/** Decodes a zstd body; `decoder` is chosen by tests to cover both paths. */
export async function decompressZstd(
  body: Buffer,
  limit: number,
  decoder = zstdDecoderName,
): Promise<Buffer> {
  boundZstdFrames(body, limit);
  if (decoder === "node:zlib" && nodeZstd) return zlibDecode(nodeZstd, body, "zstd", limit);
  // Loaded on the first zstd request only: an agent that never sees one never holds it.
  fzstd ??= import("fzstd");
  const { Decompress } = await fzstd;
  const chunks: Buffer[] = [];
  let total = 0;
  const stream = new Decompress((data) => {
    total += data.length;
    if (total > limit) throw bodyTooLarge("the decompressed body", limit);
    chunks.push(Buffer.from(data));
  });
  try {
    stream.push(body, true);
  } catch (err) {
    if (err instanceof HttpRefusal) throw err;
    throw corruptBody("zstd", (err as Error).message);
  }
  return Buffer.concat(chunks, total);
}

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
 * Before anything is decoded, every frame header and block header is read: a frame that
 * states its content size is refused (413) when the sizes add up past the limit, and a frame
 * without one has its window (the history a decoder allocates up front) cut to what the frame
 * can produce: its raw and RLE blocks' sizes plus 128 KiB per compressed block, and never
 * more than max(limit, 128 KiB). That cut is lossless: a back-reference reaches no further
 * than the frame's output so far, which is within both. So no frame makes the decoder
 * allocate much more than it outputs, whatever window it declares (streaming encoders
 * declare 8 MiB and more by default): a body of one-byte frames declaring 8 MiB windows each
 * once made the pure-JS decoder allocate 8 MiB per byte (900 MiB for a 3.6 KiB body).
 *
 * The decode itself is bounded too: node:zlib's zstd (Node >= 22.15) with maxOutputLength,
 * or else the pure-JS fzstd, fed one frame at a time and stopped at the first output past
 * the limit. fzstd copies its whole window for every block and allocates one per frame, so
 * for it the frames' and blocks' count and the windows they make it allocate and copy are
 * bounded by what a body of the limit's size needs when an encoder made it (full blocks,
 * few frames); a body built to cost more (413) is refused before decoding: one frame of
 * 150,000 one-byte blocks once held the event loop for 4 s.
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

/** A zstd frame of the body: where it is, its window once cut, and its blocks. */
export interface ZstdFrame {
  start: number;
  end: number;
  window: number;
  blocks: number;
  /** What its raw and RLE blocks output (exact: their headers say). */
  plain: number;
}

/**
 * Checks the frames of `body` against `limit` and cuts their windows in place (see above);
 * returns the zstd frames (skippable frames left out). Throws 413 for declared sizes past
 * the limit, 400 for a body that is not zstd frames.
 */
export function boundZstdFrames(body: Buffer, limit: number): ZstdFrame[] {
  const frames: ZstdFrame[] = [];
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
    const size = fcsBytes > 0 ? readLE(body, p, fcsBytes) + (fcsBytes === 2 ? 256 : 0) : 0;
    declared += size;
    if (declared > limit) {
      throw bodyTooLarge(`the zstd body's stated size (${declared} bytes decompressed)`, limit);
    }
    p += fcsBytes;
    // A single-segment frame's window is its stated size, within the limit (checked above).
    let window = single ? size : windowSize(body[windowAt] as number);
    const blocks = readBlocks(body, p, Math.min(window, MAX_BLOCK), ensure);
    if (windowAt >= 0) {
      const needed = Math.min(window, blocks.output, Math.max(limit, MAX_BLOCK));
      body[windowAt] = descriptorFor(needed);
      window = windowSize(body[windowAt] as number);
    }
    const start = pos;
    pos = blocks.end + ((fhd >> 2) & 1) * 4;
    ensure(pos);
    frames.push({ start, end: pos, window, blocks: blocks.count, plain: blocks.plain });
  }
  return frames;
}

/**
 * Walks a frame's block headers from `p`: the offset after its last block, how many blocks
 * it has, and the most they can output (a compressed block: up to `maxBlock`).
 */
function readBlocks(
  body: Buffer,
  p: number,
  maxBlock: number,
  ensure: (end: number) => void,
): { end: number; count: number; output: number; plain: number } {
  let count = 0;
  let output = 0;
  let plain = 0;
  for (;;) {
    ensure(p + 3);
    const header = body.readUIntLE(p, 3);
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw corruptBody("zstd", "a block has the reserved block type");
    if (size > MAX_BLOCK) throw corruptBody("zstd", "a block is larger than 128 KiB");
    count++;
    output += type === 2 ? maxBlock : size;
    if (type !== 2) plain += size;
    p += 3 + (type === 1 ? 1 : size);
    ensure(p);
    if (header & 1) return { end: p, count, output, plain };
  }
}

/**
 * Refuses (413) a body whose frames would make fzstd do much more work than a body of the
 * limit's size made by an encoder: one frame of full 128 KiB blocks (or of blocks of its
 * window, when that is smaller, which makes each block's copy small), a few frames. fzstd
 * allocates each frame's window and copies it whole for each block.
 */
export function checkFzstdCost(frames: readonly ZstdFrame[], limit: number): void {
  const unit = Math.max(limit, MAX_BLOCK);
  let blocks = 0;
  let allocated = 0;
  let copied = 0;
  let plain = 0;
  for (const f of frames) {
    plain += f.plain;
    blocks += f.blocks + 1;
    allocated += f.window;
    copied += f.window * f.blocks;
  }
  const maxBlocks = Math.ceil(unit / 1024) + 64;
  const maxCopied = 2 * unit * (Math.ceil(unit / MAX_BLOCK) + 32);
  // Past the limit from its raw and RLE blocks alone: a bomb, told as such.
  if (plain > limit) throw bodyTooLarge("the decompressed body", limit);
  if (blocks > maxBlocks || allocated > 4 * unit || copied > maxCopied) {
    throw new HttpRefusal(
      413,
      `the zstd body's ${frames.length} frame(s) and ${blocks - frames.length} block(s) are more than a body within max_request_body_size (${limit} bytes) decompressed can need: it would decompress past the limit, or it is built to be slow to decode (many tiny frames or blocks). Send smaller requests, as one zstd frame of full blocks as zstd encoders make them`,
      "too_large",
    );
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
  const frames = boundZstdFrames(body, limit);
  if (decoder === "node:zlib" && nodeZstd) return zlibDecode(nodeZstd, body, "zstd", limit);
  checkFzstdCost(frames, limit);
  // Loaded on the first zstd request only: an agent that never sees one never holds it.
  fzstd ??= import("fzstd");
  const { Decompress } = await fzstd;
  const chunks: Buffer[] = [];
  let total = 0;
  const onData = (data: Uint8Array) => {
    total += data.length;
    if (total > limit) throw bodyTooLarge("the decompressed body", limit);
    if (data.length > 0) chunks.push(Buffer.from(data));
  };
  try {
    // One frame at a time: fzstd reads the frames of one push by recursion, one call each.
    for (const f of frames) new Decompress(onData).push(body.subarray(f.start, f.end), true);
  } catch (err) {
    if (err instanceof HttpRefusal) throw err;
    throw corruptBody("zstd", (err as Error).message);
  }
  return Buffer.concat(chunks, total);
}

import { execFileSync } from "node:child_process";
import * as zlib from "node:zlib";
import { compress as snappyCompress } from "snappyjs";
import { otlpTypes } from "../../agent/otlp/protobuf-codec.js";
import { maskedCrc32c } from "../../agent/receivers/otlp/snappy-body.js";

/**
 * Request bodies in the encodings the OTLP/HTTP receiver decodes, and bombs of each kind.
 * zstd frames are built here from raw and RLE blocks (RFC 8878), which any decoder must take,
 * so bombs and valid bodies need no compressor; bodies with compressed blocks come from the
 * zstd CLI or node:zlib (Node >= 22.15) where either exists.
 */

export type ZstdBlock = { raw: Buffer } | { rle: number; size: number };

export interface ZstdFrameOptions {
  /** Frame_Content_Size to state (8 bytes); none when undefined. */
  contentSize?: number;
  /** Window_Descriptor byte (window 2^(10 + d>>3) * (1 + (d&7)/8)); 0x58 = 8 MiB. */
  windowDescriptor?: number;
}

export function zstdFrame(blocks: readonly ZstdBlock[], o: ZstdFrameOptions = {}): Buffer {
  const header = Buffer.alloc(o.contentSize === undefined ? 6 : 14);
  header.writeUInt32LE(0xfd2fb528, 0);
  header[4] = o.contentSize === undefined ? 0 : 3 << 6;
  header[5] = o.windowDescriptor ?? 0x58;
  if (o.contentSize !== undefined) header.writeBigUInt64LE(BigInt(o.contentSize), 6);
  const parts = [header];
  blocks.forEach((b, i) => {
    const last = i === blocks.length - 1 ? 1 : 0;
    const h = Buffer.alloc(3);
    if ("raw" in b) {
      h.writeUIntLE(last | (0 << 1) | (b.raw.length << 3), 0, 3);
      parts.push(h, b.raw);
    } else {
      h.writeUIntLE(last | (1 << 1) | (b.size << 3), 0, 3);
      parts.push(h, Buffer.from([b.rle]));
    }
  });
  return Buffer.concat(parts);
}

/** `bytes` as one zstd frame of raw blocks (no compression: what any decoder must take). */
export function zstdRaw(bytes: Buffer, o: ZstdFrameOptions = {}): Buffer {
  const blocks: ZstdBlock[] = [];
  for (let at = 0; at < bytes.length; at += 128 * 1024)
    blocks.push({ raw: bytes.subarray(at, at + 128 * 1024) });
  return zstdFrame(blocks.length ? blocks : [{ raw: Buffer.alloc(0) }], o);
}

/** A zstd bomb: `blocks` RLE blocks of 128 KiB each (4 bytes apiece), stating no size, declaring a 1 GiB window. */
export function zstdRleBomb(blocks: number, windowDescriptor = 0xa0 /* 1 GiB */): Buffer {
  const all: ZstdBlock[] = Array.from({ length: blocks }, () => ({ rle: 0x61, size: 128 * 1024 }));
  return zstdFrame(all, { windowDescriptor });
}

/** Whether the zstd CLI is installed (Debian's `zstd` package). */
export const HAS_ZSTD_CLI = (() => {
  try {
    execFileSync("zstd", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/**
 * `bytes` compressed by the zstd CLI, read from a pipe as a streaming client sends it: no
 * stated content size, the window of the level (or of --long).
 */
export function zstdCli(bytes: Buffer, args: string[] = []): Buffer {
  return execFileSync("zstd", ["-q", "-c", ...args], { input: bytes, maxBuffer: 1 << 30 });
}

type ZstdCompressSync = (b: Buffer) => Buffer;
/** node:zlib's zstd compressor (Node >= 22.15), when this Node has one. */
export const nodeZstdCompress = (zlib as unknown as { zstdCompressSync?: ZstdCompressSync })
  .zstdCompressSync;

/** `bytes` as a snappy block (Content-Encoding: snappy). */
export function snappyBlock(bytes: Buffer): Buffer {
  return snappyCompress(bytes);
}

const STREAM_IDENTIFIER = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);

function chunk(type: number, data: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUIntLE(data.length, 1, 3);
  return Buffer.concat([h, data]);
}

/**
 * `bytes` in the snappy framing format (x-snappy-framed): 64 KiB chunks, compressed ones
 * and (unless `compressedOnly`) every third an uncompressed one, with a padding chunk;
 * `badCrc` spoils the first checksum.
 */
export function snappyFramed(
  bytes: Buffer,
  o: { badCrc?: boolean; compressedOnly?: boolean } = {},
): Buffer {
  const parts = [STREAM_IDENTIFIER];
  for (let at = 0, i = 0; at < bytes.length; at += 65536, i++) {
    const data = bytes.subarray(at, at + 65536);
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE((maskedCrc32c(data) + (o.badCrc && i === 0 ? 1 : 0)) >>> 0);
    const plain = !o.compressedOnly && i % 3 === 2;
    parts.push(
      chunk(plain ? 0x01 : 0x00, Buffer.concat([crc, plain ? data : snappyCompress(data)])),
    );
    if (i === 0) parts.push(chunk(0xfe, Buffer.alloc(3)));
  }
  return Buffer.concat(parts);
}

/** An OTLP/JSON request of one audit record marked `marker` (attribute "case"). */
export function auditRequest(marker: string, bodyText = "payload") {
  return {
    resourceLogs: [
      {
        scopeLogs: [
          {
            logRecords: [
              {
                timeUnixNano: "1700000000000000000",
                body: { stringValue: bodyText },
                attributes: [
                  { key: "audit", value: { boolValue: true } },
                  { key: "case", value: { stringValue: marker } },
                ],
              },
            ],
          },
        ],
      },
    ],
  };
}

/** auditRequest as OTLP/protobuf bytes. */
export function auditProtobuf(marker: string, bodyText?: string): Buffer {
  const { RequestType } = otlpTypes;
  return Buffer.from(
    RequestType.encode(RequestType.fromObject(auditRequest(marker, bodyText))).finish(),
  );
}

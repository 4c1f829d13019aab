import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ChildAgent,
  killAgent,
  makeTempDir,
  spawnAgent,
  testConfigYaml,
} from "../helpers/agent.js";
import { maskedCrc32c } from "../../agent/receivers/otlp/snappy-body.js";
import { auditProtobuf } from "../helpers/compression.js";

/**
 * Bodies an attacker on the network can send to the OTLP/HTTP receiver that are small, or
 * valid, or both, but cost the decoder far more than their size: many tiny zstd frames (each
 * declaring a large window), one frame of many tiny blocks, a framed-snappy stream of
 * many tiny chunks. Each is sent to a running agent (default 4 MiB limit) whose RSS is
 * sampled while it answers; the answer must come fast and the RSS stay flat.
 */

const protobuf = auditProtobuf;

/** A zstd block header: type 0 raw, 1 RLE; `size` is the raw length or the RLE run. */
function blockHeader(type: 0 | 1, size: number, last: boolean): Buffer {
  const h = Buffer.alloc(3);
  h.writeUIntLE((last ? 1 : 0) | (type << 1) | (size << 3), 0, 3);
  return h;
}

/** A zstd frame header stating no size, declaring an 8 MiB window (as streaming encoders do). */
function frameHeader(): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt32LE(0xfd2fb528, 0);
  h[5] = 0x58;
  return h;
}

/** `bytes` as one zstd frame per byte: valid zstd, decoding to `bytes`. */
function zstdFramePerByte(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const b of bytes) parts.push(frameHeader(), blockHeader(0, 1, true), Buffer.from([b]));
  return Buffer.concat(parts);
}

/** `bytes` as one zstd frame of one-byte RLE blocks: valid zstd, decoding to `bytes`. */
function zstdBlockPerByte(bytes: Buffer): Buffer {
  const parts: Buffer[] = [frameHeader()];
  bytes.forEach((b, i) => parts.push(blockHeader(1, 1, i === bytes.length - 1), Buffer.from([b])));
  return Buffer.concat(parts);
}

const STREAM_IDENTIFIER = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);

/** An uncompressed framed-snappy chunk holding `data`, with its checksum. */
function plainChunk(data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = 0x01;
  h.writeUIntLE(4 + data.length, 1, 3);
  h.writeUInt32LE(maskedCrc32c(data), 4);
  return Buffer.concat([h, data]);
}

/** `bytes` as x-snappy-framed of one chunk per byte, then `empty` chunks holding nothing. */
function snappyChunkPerByte(bytes: Buffer, empty: number): Buffer {
  const none = plainChunk(Buffer.alloc(0));
  return Buffer.concat([
    STREAM_IDENTIFIER,
    ...Array.from(bytes, (b) => plainChunk(Buffer.from([b]))),
    ...Array.from({ length: empty }, () => none),
  ]);
}

function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

describe("decoder-cost attacks against a running agent (default 4 MiB limit)", () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let agent: ChildAgent;

  beforeAll(async () => {
    tmp = makeTempDir("decompression-attacks-");
    // As installed: the CLI's shebang sets the node flags and malloc settings memory depends on.
    agent = await spawnAgent(
      testConfigYaml({ dir: tmp.path, grpc: false }),
      tmp.path,
      [],
      {},
      true,
    );
    await new Promise((r) => setTimeout(r, 300));
  });
  afterAll(async () => {
    await killAgent(agent);
    tmp.cleanup();
  });

  /** Sends `copies` of `body` at once; the statuses, the time taken, and the RSS growth. */
  async function attack(encoding: string, body: Buffer, copies = 1) {
    const pid = agent.child.pid as number;
    const before = rssMiB(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(pid))), 5);
    const started = Date.now();
    try {
      const statuses = await Promise.all(
        Array.from({ length: copies }, async () => {
          const res = await request(agent.httpUrl, {
            method: "POST",
            headers: { "content-type": "application/x-protobuf", "content-encoding": encoding },
            body,
          });
          await res.body.arrayBuffer();
          return res.statusCode;
        }),
      );
      const ms = Date.now() - started;
      peak = Math.max(peak, rssMiB(pid));
      console.log(
        `[${encoding} ×${copies}, ${body.length} bytes] ${statuses[0]} in ${ms} ms, RSS ${before.toFixed(0)} → ${peak.toFixed(0)} MiB`,
      );
      return { statuses, ms, grew: peak - before };
    } finally {
      clearInterval(sampler);
    }
  }

  it("zstd, one frame per byte (each declaring an 8 MiB window): decoded at once, RSS flat", async () => {
    const body = zstdFramePerByte(protobuf("frame-per-byte", "x".repeat(300)));
    const { statuses, ms, grew } = await attack("zstd", body, 2);
    expect(statuses).toEqual([200, 200]);
    expect(ms).toBeLessThan(1500);
    expect(grew).toBeLessThan(48);
  });

  it("zstd, one frame of 150,000 one-byte blocks: refused with 413 at once, not decoded for seconds", async () => {
    const body = zstdBlockPerByte(protobuf("block-per-byte", "y".repeat(150_000)));
    const { statuses, ms } = await attack("zstd", body);
    expect(statuses).toEqual([413]);
    expect(ms).toBeLessThan(1000);
  });
  it("x-snappy-framed, one chunk per byte and 400,000 empty chunks: RSS flat", async () => {
    const body = snappyChunkPerByte(protobuf("chunk-per-byte"), 400_000);
    expect(body.length).toBeLessThan(4 << 20);
    const { statuses, grew } = await attack("x-snappy-framed", body, 4);
    expect(statuses).toEqual([200, 200, 200, 200]);
    expect(grew).toBeLessThan(48);
  });

  it("64 gzip bombs at once (64 KiB each, 64 MiB inflated): all 413, RSS grows by less than 64 MiB", async () => {
    const bomb = gzipSync(Buffer.alloc(64 << 20));
    expect(bomb.length).toBeLessThan(70_000);
    const { statuses, grew } = await attack("gzip", bomb, 64);
    expect(new Set(statuses)).toEqual(new Set([413]));
    expect(grew).toBeLessThan(64);
  });
});

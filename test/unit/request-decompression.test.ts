import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { HttpRefusal } from "../../agent/receivers/otlp/body-limits.js";
import { decompressBody } from "../../agent/receivers/otlp/decompress.js";
import { maskedCrc32c } from "../../agent/receivers/otlp/snappy-body.js";
import { decompressZstd, zstdDecoderName } from "../../agent/receivers/otlp/zstd-body.js";
import {
  HAS_ZSTD_CLI,
  snappyBlock,
  snappyFramed,
  zstdCli,
  zstdRaw,
  zstdRleBomb,
} from "../helpers/compression.js";

const MiB = 1024 * 1024;

async function refusal(p: Promise<unknown>): Promise<HttpRefusal> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HttpRefusal);
  return err as HttpRefusal;
}

/** Both zstd decoders: fzstd always, node:zlib's where this Node has it (>= 22.15). */
const decoders = (["fzstd", "node:zlib"] as const).filter(
  (d) => d === "fzstd" || zstdDecoderName === "node:zlib",
);

describe.each(decoders)("zstd request bodies (%s)", (decoder) => {
  it.skipIf(!HAS_ZSTD_CLI)(
    "a frame declaring a 1 GiB window whose back-references span 1 MiB decodes exactly within a 4 MiB limit",
    async () => {
      // 3 MiB repeating every 1 MiB: --long=30 matches 1 MiB back, and declares a 1 GiB window.
      const period = randomBytes(MiB);
      const data = Buffer.concat([period, period, period]);
      const body = zstdCli(data, ["--long=30"]);
      expect(body.length).toBeLessThan(MiB + 64 * 1024);
      expect((await decompressZstd(Buffer.from(body), 4 * MiB, decoder)).equals(data)).toBe(true);
    },
  );

  it("a body of raw blocks in two frames decodes to their concatenation", async () => {
    const a = randomBytes(200_000);
    const b = randomBytes(1000);
    const out = await decompressZstd(Buffer.concat([zstdRaw(a), zstdRaw(b)]), MiB, decoder);
    expect(out.equals(Buffer.concat([a, b]))).toBe(true);
  });

  it.skipIf(!HAS_ZSTD_CLI)(
    "what encoders make at the limit passes the decode-cost bounds: one frame at levels 1 and 19, 4 frames with checksums",
    async () => {
      const data = Buffer.from(
        Array.from({ length: 200_000 }, (_, i) => `user u-${i % 91} did ${i % 7};`).join(""),
      ).subarray(0, 4 * MiB - 1);
      for (const level of ["-1", "-19"]) {
        const body = zstdCli(data, [level]);
        expect((await decompressZstd(body, 4 * MiB, decoder)).equals(data)).toBe(true);
      }
      const quarter = data.length / 4;
      const parts = [0, 1, 2, 3].map((i) => data.subarray(i * quarter, (i + 1) * quarter));
      const frames = Buffer.concat(parts.map((p) => zstdCli(p, ["--check"])));
      expect((await decompressZstd(frames, 4 * MiB, decoder)).equals(data)).toBe(true);
    },
  );

  it("frames of one byte each, between skippable frames, decode exactly", async () => {
    const data = randomBytes(300);
    const skippable = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9]);
    const body = Buffer.concat(
      Array.from(data, (b) => [skippable, zstdRaw(Buffer.from([b]))]).flat(),
    );
    expect((await decompressZstd(body, MiB, decoder)).equals(data)).toBe(true);
  });

  it("an RLE bomb stops at the limit: 413", async () => {
    const err = await refusal(decompressZstd(zstdRleBomb(100), MiB, decoder));
    expect(err.status).toBe(413);
  });

  it("stated sizes that add up past the limit across frames: 413 before decoding", async () => {
    const half = zstdRaw(Buffer.alloc(600_000), { contentSize: 600_000 });
    const err = await refusal(decompressZstd(Buffer.concat([half, half]), MiB, decoder));
    expect(err.status).toBe(413);
    expect(err.message).toContain("stated size (1200000 bytes decompressed)");
  });

  it("a frame with a dictionary: 400 saying dictionaries are not supported", async () => {
    const frame = zstdRaw(Buffer.from("x"));
    // Dictionary_ID_flag 1: one byte of dictionary id after the window descriptor.
    const withDict = Buffer.concat([frame.subarray(0, 6), Buffer.from([7]), frame.subarray(6)]);
    withDict[4] = (withDict[4] as number) | 1;
    const err = await refusal(decompressZstd(withDict, MiB, decoder));
    expect(err.status).toBe(400);
    expect(err.message).toContain("dictionary");
  });
});

describe("snappy request bodies", () => {
  it("CRC-32C as the framing format masks it (check value of '123456789' is 0xe3069283)", () => {
    const crc = 0xe3069283;
    const masked = ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
    expect(maskedCrc32c(Buffer.from("123456789"))).toBe(masked);
  });

  it("block and framed bodies decode exactly; framed data under 'snappy' is recognised", async () => {
    const data = randomBytes(150_000);
    expect((await decompressBody(snappyBlock(data), "snappy", MiB)).equals(data)).toBe(true);
    expect((await decompressBody(snappyFramed(data), "snappy", MiB)).equals(data)).toBe(true);
    const framed = await decompressBody(snappyFramed(data), "x-snappy-framed", MiB);
    expect(framed.equals(data)).toBe(true);
  });

  it("a framed chunk of a reserved type: 400", async () => {
    const body = snappyFramed(Buffer.from("abc"));
    body[10] = 0x02;
    const err = await refusal(decompressBody(body, "x-snappy-framed", MiB));
    expect(err.status).toBe(400);
    expect(err.message).toContain("chunk type 2 is reserved");
  });
});

import { readFileSync } from "node:fs";
import { connect } from "node:http2";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { otlpTypes } from "../../agent/otlp/protobuf-codec.js";
import {
  attr,
  killAgent,
  makeTempDir,
  readOutput,
  spawnAgent,
  inProcessAgentPerSuite,
  testConfigYaml,
  waitFor,
} from "../helpers/agent.js";
import {
  auditProtobuf,
  auditRequest,
  HAS_ZSTD_CLI,
  nodeZstdCompress,
  snappyBlock,
  snappyFramed,
  zstdCli,
  zstdFrame,
  zstdRaw,
  zstdRleBomb,
} from "../helpers/compression.js";
import { EXPORT_METHOD } from "../helpers/otlp-grpc.js";

/**
 * OTLP/HTTP request compression beyond gzip and deflate, as the Collector's confighttp
 * takes it: zstd, snappy (block; framed when the body says so), x-snappy-framed and zlib.
 * Valid bodies arrive intact; bombs of each kind are refused with 413 before their output
 * is held; corrupt bodies get 400 naming the encoding; other encodings 415 naming these.
 */

const MAX_BODY = 64 * 1024;
const { StatusType } = otlpTypes;

const protobuf = auditProtobuf;
const json = (marker: string, bodyText?: string) =>
  Buffer.from(JSON.stringify(auditRequest(marker, bodyText)));

const PROTOBUF = "application/x-protobuf";
const JSON_CT = "application/json";

async function post(url: string, encoding: string, body: Buffer, type = PROTOBUF) {
  const res = await request(url, {
    method: "POST",
    headers: { "content-type": type, "content-encoding": encoding },
    body,
  });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  const message =
    res.statusCode === 200
      ? ""
      : type === PROTOBUF
        ? String(StatusType.toObject(StatusType.decode(bytes)).message)
        : String((JSON.parse(bytes.toString("utf8")) as { message: string }).message);
  return { status: res.statusCode, message };
}

/** Text that compresses well but whose records differ: a realistic audit body. */
function text(bytes: number, seed: string): string {
  let s = "";
  for (let i = 0; s.length < bytes; i++) s += `${seed} user u-${i % 97} changed setting ${i};`;
  return s.slice(0, bytes);
}

describe("OTLP/HTTP request compression: zstd, snappy, x-snappy-framed, zlib", () => {
  const suite = inProcessAgentPerSuite({ grpc: false, maxBodyBytes: MAX_BODY });
  const stored: string[] = [];

  async function accepted(marker: string, encoding: string, body: Buffer, type = PROTOBUF) {
    const reply = await post(suite.url, encoding, body, type);
    expect(reply, marker).toEqual({ status: 200, message: "" });
    stored.push(marker);
  }

  it("zstd built of raw blocks, with and without a stated size, protobuf and JSON → 200", async () => {
    const pb = protobuf("zstd-raw-pb", text(40_000, "raw"));
    await accepted("zstd-raw-pb", "zstd", zstdRaw(pb));
    await accepted(
      "zstd-raw-sized",
      "zstd",
      zstdRaw(protobuf("zstd-raw-sized"), { contentSize: protobuf("zstd-raw-sized").length }),
    );
    await accepted("zstd-raw-json", "zstd", zstdRaw(json("zstd-raw-json")), JSON_CT);
  });

  it.skipIf(!HAS_ZSTD_CLI)(
    "zstd from the zstd CLI (compressed blocks, 8 MiB+ window declared) → 200",
    async () => {
      const pb = protobuf("zstd-cli", text(60_000, "cli"));
      await accepted("zstd-cli", "zstd", zstdCli(pb));
      // --long=27: a 128 MiB window declared, more than the 64 KiB limit: cut, still decoded.
      await accepted(
        "zstd-cli-long",
        "zstd",
        zstdCli(protobuf("zstd-cli-long", text(60_000, "long")), ["--long=27"]),
      );
      await accepted("zstd-cli-json", "zstd", zstdCli(json("zstd-cli-json")), JSON_CT);
    },
  );

  it.skipIf(!nodeZstdCompress)("zstd from node:zlib → 200", async () => {
    await accepted(
      "zstd-node",
      "zstd",
      (nodeZstdCompress as (b: Buffer) => Buffer)(protobuf("zstd-node")),
    );
  });

  it("snappy block, framed data sent as snappy, x-snappy-framed and zlib → 200", async () => {
    await accepted(
      "snappy-block",
      "snappy",
      snappyBlock(protobuf("snappy-block", text(50_000, "s"))),
    );
    await accepted("snappy-json", "snappy", snappyBlock(json("snappy-json")), JSON_CT);
    await accepted(
      "snappy-framed-as-snappy",
      "snappy",
      snappyFramed(protobuf("snappy-framed-as-snappy")),
    );
    await accepted(
      "x-snappy-framed",
      "x-snappy-framed",
      snappyFramed(protobuf("x-snappy-framed", text(60_000, "f"))),
    );
    const { deflateSync } = await import("node:zlib");
    await accepted("zlib", "zlib", deflateSync(protobuf("zlib")));
  });

  it("zstd bombs → 413: a stated size past the limit, and RLE blocks with a 1 GiB window", async () => {
    const stated = zstdFrame([{ rle: 0, size: 1000 }], { contentSize: 1 << 30 });
    const r1 = await post(suite.url, "zstd", stated);
    expect(r1.status).toBe(413);
    expect(r1.message).toContain(
      `stated size (1073741824 bytes decompressed) exceeds the limit of ${MAX_BODY} bytes`,
    );
    // 64 MiB from 2 KiB, declaring a 1 GiB window and no size: stopped at the limit.
    const r2 = await post(suite.url, "zstd", zstdRleBomb(512));
    expect(r2).toEqual({
      status: 413,
      message: expect.stringContaining(
        `the decompressed body exceeds the limit of ${MAX_BODY} bytes`,
      ),
    });
  });

  it.skipIf(!HAS_ZSTD_CLI)(
    "a zstd CLI bomb (64 MiB of zeros streamed, no stated size) → 413",
    async () => {
      const bomb = zstdCli(protobuf("zstd-cli-bomb", "a".repeat(64 << 20)));
      expect(bomb.length).toBeLessThan(MAX_BODY);
      const reply = await post(suite.url, "zstd", bomb);
      expect(reply.status).toBe(413);
      expect(reply.message).toContain("decompressed body exceeds the limit");
    },
  );

  it("snappy bombs → 413: a stated length of 4 GiB, real blocks past the limit, framed chunks past the limit", async () => {
    const huge = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    const r1 = await post(suite.url, "snappy", huge);
    expect(r1.status).toBe(413);
    expect(r1.message).toContain("stated size (4294967295 bytes decompressed)");
    const block = snappyBlock(protobuf("snappy-bomb", "a".repeat(1 << 20)));
    expect(block.length).toBeLessThan(MAX_BODY);
    expect((await post(suite.url, "snappy", block)).status).toBe(413);
    const framed = snappyFramed(Buffer.alloc(1 << 20, 0x61), { compressedOnly: true });
    expect(framed.length).toBeLessThan(MAX_BODY);
    const r3 = await post(suite.url, "x-snappy-framed", framed);
    expect(r3.status).toBe(413);
    expect(r3.message).toContain("the decompressed body exceeds the limit");
  });

  it("corrupt bodies → 400 naming the encoding", async () => {
    const pb = protobuf("corrupt");
    const cases: Array<[string, Buffer, RegExp]> = [
      [
        "zstd",
        Buffer.from("not zstd at all"),
        /not valid zstd data: no zstd frame starts at byte 0/,
      ],
      ["zstd", zstdRaw(pb).subarray(0, 20), /not valid zstd data: the body ends inside a frame/],
      ["zstd", Buffer.concat([zstdRaw(pb), Buffer.from("trailing")]), /not valid zstd data/],
      ["snappy", Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80]), /not valid snappy data/],
      [
        "snappy",
        snappyBlock(pb).subarray(0, 8),
        /not valid snappy data|not valid|illegal|invalid/i,
      ],
      [
        "x-snappy-framed",
        snappyBlock(pb),
        /not valid x-snappy-framed data: a framed stream starts with/,
      ],
      ["x-snappy-framed", snappyFramed(pb, { badCrc: true }), /checksum does not match/],
      ["x-snappy-framed", snappyFramed(pb).subarray(0, 30), /ends inside a chunk/],
    ];
    if (HAS_ZSTD_CLI) {
      const real = zstdCli(protobuf("corrupt-cli", text(20_000, "c")));
      real[Math.floor(real.length / 2)] ^= 0xff;
      real[Math.floor(real.length / 2) + 1] ^= 0x5a;
      cases.push(["zstd", real, /not valid zstd data|not a valid|protobuf/i]);
    }
    for (const [encoding, body, message] of cases) {
      const reply = await post(suite.url, encoding, body);
      expect(reply.status, `${encoding}: ${reply.message}`).toBe(400);
      expect(reply.message).toMatch(message);
    }
  });

  it("an encoding the Collector names but this receiver does not take (lz4) → 415 listing the accepted ones", async () => {
    const reply = await post(suite.url, "lz4", protobuf("lz4"));
    expect(reply.status).toBe(415);
    expect(reply.message).toBe(
      'unsupported content encoding "lz4": use gzip, deflate, zlib, zstd, snappy, x-snappy-framed or none',
    );
  });

  it("what was accepted is exactly what was stored, records intact", async () => {
    await waitFor(
      () => suite.a.agent.deliveries[0]?.deliveredThrough === suite.a.agent.wal.headSeq,
      20_000,
      "delivery",
    );
    const out = await readOutput(suite.a.outDir);
    expect(out.findings).toEqual([]);
    expect(out.records.map((r) => String(attr(r.record, "case")?.stringValue))).toEqual(stored);
    const raw = out.records.find((r) => attr(r.record, "case")?.stringValue === "zstd-raw-pb");
    expect(raw?.record.logRecord.body).toEqual({ stringValue: text(40_000, "raw") });
    const framed = out.records.find(
      (r) => attr(r.record, "case")?.stringValue === "x-snappy-framed",
    );
    expect(framed?.record.logRecord.body).toEqual({ stringValue: text(60_000, "f") });
  });
});

/** The resident memory of process `pid`, in MiB (Linux). */
function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

describe("compression bombs against a running agent (default 4 MiB limit)", () => {
  it("each kind refused with 413 while the agent's RSS grows by less than 48 MiB; a valid request still succeeds", async () => {
    const tmp = makeTempDir("compression-bombs-");
    // As installed: the CLI's shebang sets the node flags and malloc settings memory depends on.
    const agent = await spawnAgent(
      testConfigYaml({ dir: tmp.path, grpc: false }),
      tmp.path,
      [],
      {},
      true,
    );
    try {
      const pid = agent.child.pid as number;
      await new Promise((r) => setTimeout(r, 500));
      const before = rssMiB(pid);
      let peak = before;
      // Each would be 1 GiB or more decompressed (4 GiB stated for snappy).
      const bombs: Array<[string, Buffer]> = [
        ["zstd", zstdRleBomb(8192)],
        ["zstd", zstdFrame([{ rle: 0, size: 4096 }], { contentSize: 2 ** 40 })],
        ["snappy", Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x00])],
        ["snappy", snappyBlock(Buffer.alloc(64 << 20))],
        ["x-snappy-framed", snappyFramed(Buffer.alloc(16 << 20), { compressedOnly: true })],
      ];
      for (let round = 0; round < 4; round++) {
        for (const [encoding, body] of bombs) {
          expect(body.length).toBeLessThan(4 << 20);
          const reply = await post(agent.httpUrl, encoding, body);
          expect(reply.status, `${encoding}: ${reply.message}`).toBe(413);
          peak = Math.max(peak, rssMiB(pid));
        }
      }
      console.log(
        `[compression bombs] RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MiB (+${(peak - before).toFixed(0)})`,
      );
      expect(peak - before).toBeLessThan(48);
      const ok = await post(agent.httpUrl, "zstd", zstdRaw(protobuf("after-bombs")));
      expect(ok.status).toBe(200);
    } finally {
      await killAgent(agent);
      tmp.cleanup();
    }
  });
});

/** One gRPC Export call over plain HTTP/2 with the message flagged as compressed in `encoding`. */
function grpcCallEncoded(address: string, encoding: string, message: Buffer) {
  return new Promise<{ headers: Record<string, unknown>; trailers: Record<string, unknown> }>(
    (resolve, reject) => {
      const session = connect(`http://${address}`);
      session.on("error", reject);
      const stream = session.request({
        ":method": "POST",
        ":path": EXPORT_METHOD,
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-encoding": encoding,
      });
      let headers: Record<string, unknown> = {};
      let trailers: Record<string, unknown> = {};
      stream.on("response", (h) => (headers = h));
      stream.on("trailers", (t) => (trailers = t));
      // A refusal may come as trailers-only (status in the headers): wait for the stream's end.
      stream.on("close", () => {
        session.close();
        resolve({ headers, trailers });
      });
      stream.on("error", reject);
      stream.resume();
      const frame = Buffer.alloc(5);
      frame[0] = 1; // compressed
      frame.writeUInt32BE(message.length, 1);
      stream.end(Buffer.concat([frame, message]));
    },
  );
}

describe("OTLP/gRPC: grpc-js decodes only gzip and deflate messages", () => {
  const suite = inProcessAgentPerSuite({ http: false });

  it("a message sent with grpc-encoding: zstd → UNIMPLEMENTED naming zstd; nothing stored", async () => {
    const reply = await grpcCallEncoded(
      suite.a.grpcAddress,
      "zstd",
      zstdRaw(protobuf("grpc-zstd")),
    );
    const status = { ...reply.headers, ...reply.trailers };
    expect(status["grpc-status"]).toBe("12");
    expect(decodeURIComponent(String(status["grpc-message"]))).toBe(
      'Received message compressed with unsupported encoding "zstd"',
    );
    expect(suite.a.agent.wal.headSeq).toBe(-1);
  });
});

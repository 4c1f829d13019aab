import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { chunkOf, storedChunk, storedChunkLength, storedCount } from "../../agent/store/chunk.js";
import { RECORD_RANGE, recordKey } from "../../agent/store/keyspace.js";
import { Store } from "../../agent/store/store.js";
import { WalFullError } from "../../agent/store/chain-log.js";
import { openWal as openStore, type Wal, type WalOptions } from "../../agent/store/wal.js";
import { envelopeJson, genesisHash } from "../../agent/integrity/format.js";
import { checkChain } from "../../agent/integrity/chain-check.js";
import { makeTempDir } from "../helpers/agent.js";
import { prng, testSeed } from "../helpers/prng.js";

const dirs: Array<{ cleanup(): void }> = [];
const opened: Wal[] = [];

/** Synced group-commit writes per WAL, as its write observer sees them. */
const syncedWrites = new WeakMap<Wal, { count: number }>();

async function openWal(path: string, extra: Partial<WalOptions> = {}) {
  const writes = { count: 0 };
  const wal = await openStore({
    directory: path,
    maxBytes: 10 * 1024 * 1024,
    observer: { syncedWrite: () => writes.count++ },
    ...extra,
  });
  syncedWrites.set(wal, writes);
  opened.push(wal);
  return wal;
}

function tmp() {
  const d = makeTempDir("wal-test-");
  dirs.push(d);
  return d.path;
}

afterEach(async () => {
  for (const w of opened.splice(0)) await w.close().catch(() => undefined);
  for (const d of dirs.splice(0)) d.cleanup();
});

const rec = (i: number) => `{"logRecord":{"body":{"stringValue":"r${i}"}}}`;

describe("write-ahead log", () => {
  it("shares synced writes between concurrent appends and keeps each request contiguous", async () => {
    const wal = await openWal(tmp());
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => wal.log.append([rec(i), rec(i), rec(i)], "1")),
    );
    expect(wal.log.headSeq).toBe(64 * 3 - 1);
    expect(syncedWrites.get(wal)?.count).toBeLessThan(64);
    const starts = results.map((r) => r.firstSeq).sort((a, b) => a - b);
    expect(starts).toEqual(Array.from({ length: 64 }, (_, i) => i * 3));
    expect(results.every((r) => r.count === 3)).toBe(true);
  });

  it("links each record to the leaf hash of the one before, from the genesis value", async () => {
    const wal = await openWal(tmp());
    await wal.log.append([rec(0), rec(1), rec(2)], "5");
    const stored = await wal.log.read(-1, 10, 1 << 20);
    let prev = genesisHash(wal.log.chainId).toString("hex");
    for (const r of stored) {
      const text = r.canonicalText();
      expect(JSON.parse(text).prev).toBe(prev);
      const hash = createHash("sha256")
        .update(Buffer.from([0]))
        .update(text)
        .digest();
      expect(r.value.subarray(0, 32).equals(hash)).toBe(true);
      prev = hash.toString("hex");
    }
    // The head carries on from the last: the next record links to it.
    await wal.log.append([rec(3)], "6");
    const [next] = await wal.log.read(2, 1, 1 << 20);
    expect(JSON.parse(next!.canonicalText()).prev).toBe(prev);
  });

  it("writes a request's source into each of its envelopes (v 2), and none (v 1) without one", async () => {
    const dir = tmp();
    const wal = await openWal(dir);
    const a = '{"client.address":"10.1.2.3","k8s.pod.name":"p\u00e9"}';
    const b = '{"client.address":"10.1.2.4"}';
    await Promise.all([
      wal.log.append([rec(0), rec(1)], "1700000000000000000", a),
      wal.log.append([rec(2)], "8"),
      wal.log.append([rec(3)], "9", b),
      wal.log.append([rec(4)], "9", a),
    ]);
    const stored = await wal.log.read(-1, 10, 1 << 20);
    const sources = [a, a, null, b, a];
    const received = ["1700000000000000000", "1700000000000000000", "8", "9", "9"];
    let prev = genesisHash(wal.log.chainId).toString("hex");
    stored.forEach((r, i) => {
      const want = envelopeJson(wal.log.chainId, prev, rec(i), i, received[i]!, sources[i]);
      expect(r.canonicalText()).toBe(want);
      prev = r.leafHashHex();
    });
    const lines = stored.map((r) => ({ text: r.canonicalText(), location: String(r.seq) }));
    expect(checkChain(lines)).toMatchObject({ records: 5, findings: [] });
    // Its receive time is read back from a v2 line as from a v1 line.
    await wal.close();
    const again = await openWal(dir);
    expect(again.log.writtenAt(0)).toBe(1_700_000_000_000);
  });

  it("resumes the same chain after reopening, with no gap and no fork", async () => {
    const path = tmp();
    const first = await openWal(path);
    await first.log.append([rec(0), rec(1)], "1");
    const { chainId } = first.log;
    const headHash = (await first.log.read(0, 1, 1 << 20))[0]!.leafHashHex();
    await first.close();
    const second = await openWal(path);
    expect(second.log.chainId).toBe(chainId);
    expect(second.log.headSeq).toBe(1);
    await second.log.append([rec(2)], "2");
    const [third] = await second.log.read(1, 10, 1 << 20);
    expect(third?.seq).toBe(2);
    expect(JSON.parse(third!.canonicalText()).prev).toBe(headHash);
  });

  it("refuses a configured chain id that differs from the stored one", async () => {
    const path = tmp();
    const wal = await openWal(path, { chainId: "orders-1" });
    expect(wal.log.chainId).toBe("orders-1");
    await wal.close();
    await expect(openWal(path, { chainId: "orders-2" })).rejects.toThrow(
      /holds chain "orders-1" but the config sets chain_id "orders-2"/,
    );
  });

  it("refuses appends that would not fit, leaving the log untouched", async () => {
    const wal = await openWal(tmp(), { maxBytes: 4000 });
    await wal.log.append([rec(0), rec(1)], "1");
    const head = wal.log.headSeq;
    const bytes = wal.log.usedBytes;
    const big = Array.from({ length: 20 }, (_, i) => rec(i));
    await expect(wal.log.append(big, "1")).rejects.toBeInstanceOf(WalFullError);
    expect(wal.log.headSeq).toBe(head);
    expect(wal.log.usedBytes).toBe(bytes);
  });

  it("releases records only when every exporter's cursor has passed them", async () => {
    const wal = await openWal(tmp());
    await wal.log.append(
      Array.from({ length: 10 }, (_, i) => rec(i)),
      "1",
    );
    await wal.cursors.load("a");
    await wal.cursors.load("b");
    const full = wal.log.usedBytes;
    await wal.cursors.commit("a", 9);
    expect((await wal.log.read(-1, 100, 1 << 20)).length).toBe(10);
    expect(wal.log.usedBytes).toBe(full);
    await wal.cursors.commit("b", 9);
    expect(await wal.log.read(-1, 100, 1 << 20)).toEqual([]);
    expect(wal.log.usedBytes).toBe(0);
    expect(wal.log.oldestHeldSeq).toBe(10);
  });

  it("starts a new exporter at the oldest record still held", async () => {
    const path = tmp();
    const wal = await openWal(path);
    await wal.log.append([rec(0), rec(1), rec(2)], "1"); // one chunk: 0..2
    await wal.log.append([rec(3), rec(4)], "1"); // another: 3..4
    await wal.cursors.load("old");
    await wal.cursors.commit("old", 3);
    expect((await wal.cursors.load("new-before-restart")).seq).toBe(3);
    await wal.cursors.forgetAllExcept(["old"]);
    await wal.close();
    const reopened = await openWal(path);
    expect((await reopened.cursors.load("old")).seq).toBe(3);
    // Records are released a whole chunk at a time: 0..2 are gone, 3 is still held.
    expect((await reopened.cursors.load("new")).seq).toBe(2);
    expect((await reopened.log.read(2, 10, 1 << 20)).map((r) => r.seq)).toEqual([3, 4]);
    expect(reopened.log.usedBytes).toBeGreaterThan(0);
  });

  it("reads contiguous records while exporters release chunks under it", async () => {
    // No cache: every chunk is read back from LevelDB, so releases land between reads.
    const wal = await openWal(tmp(), { cacheBytes: 0 });
    for (let c = 0; c < 40; c++) await wal.log.append([rec(0), rec(1), rec(2)], "1"); // 40 chunks of 3
    await wal.cursors.load("x");
    for (let round = 0; round < 5; round++) {
      const from = 30 + round * 15; // well past what is being released
      const reading = wal.log.read(from, 1000, 1 << 30);
      for (let k = 0; k < 4; k++) await wal.cursors.commit("x", round * 12 + k * 3 + 2);
      const got = (await reading).map((r) => r.seq);
      expect(got[0]).toBe(from + 1);
      expect(got).toEqual(Array.from({ length: got.length }, (_, i) => from + 1 + i));
      expect(got[got.length - 1]).toBe(119);
    }
  });

  it("says clearly when another process holds the WAL directory", async () => {
    const path = tmp();
    await openWal(path);
    await expect(openStore({ directory: path, maxBytes: 1e6 })).rejects.toMatchObject({
      code: "WAL_IN_USE",
      message: expect.stringMatching(/in use by another process.*an agent is running on it/),
    });
  });

  /** Every record's prev is the leaf hash of the record before it, from genesis on. */
  async function expectLinkedChain(wal: Wal, count: number) {
    const stored = await wal.log.read(-1, count + 1, 1 << 30);
    expect(stored.map((r) => r.seq)).toEqual(Array.from({ length: count }, (_, i) => i));
    let prev = genesisHash(wal.log.chainId).toString("hex");
    for (const r of stored) {
      expect(JSON.parse(r.canonicalText()).prev).toBe(prev);
      prev = r.value.subarray(0, 32).toString("hex");
    }
  }

  /** Makes store writes with record values wait for `gate`, then run `then`. */
  function holdRecordWrites(wal: Wal, then: (write: () => Promise<void>) => Promise<void>) {
    const db = (wal.log as unknown as { store: Store }).store;
    const real = db.write.bind(db);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held = 0;
    db.write = (ops: Parameters<Store["write"]>[0], options: Parameters<Store["write"]>[1]) => {
      const hasRecords = (ops as Array<{ key: Buffer }>).some((o) => o.key[0] === 0x72); // "r": a record chunk
      if (!hasRecords || held++ > 0) return real(ops, options);
      return gate.then(() => then(() => real(ops, options)));
    };
    return { release, restore: () => (db.write = real) };
  }

  it("chains appends that arrive while a group commit is in flight onto it, in order", async () => {
    const wal = await openWal(tmp());
    const hold = holdRecordWrites(wal, (write) => write());
    const first = wal.log.append([rec(0), rec(1)], "1");
    await new Promise((r) => setImmediate(r));
    // These are chained and compressed while the first group's write waits.
    const later = Array.from({ length: 20 }, (_, i) => wal.log.append([rec(10 + i)], "2"));
    await new Promise((r) => setTimeout(r, 20));
    hold.release();
    await first;
    const results = await Promise.all(later);
    expect(results.map((r) => r.firstSeq)).toEqual(Array.from({ length: 20 }, (_, i) => 2 + i));
    expect(syncedWrites.get(wal)?.count).toBeGreaterThan(1);
    await expectLinkedChain(wal, 22);
  });

  it("fails a group whose write fails, and re-chains the next group from the durable head", async () => {
    const wal = await openWal(tmp());
    await wal.log.append([rec(0)], "1");
    const hold = holdRecordWrites(wal, async () => {
      throw new Error("EIO: simulated disk error");
    });
    const failing = wal.log.append([rec(1), rec(2)], "2");
    await new Promise((r) => setImmediate(r));
    // Prepared on top of the failing group while its write is in flight.
    const next = wal.log.append([rec(3)], "3");
    await new Promise((r) => setTimeout(r, 20));
    hold.release();
    await expect(failing).rejects.toMatchObject({ code: "WAL_WRITE_FAILED" });
    // Not failed with it: written after the record that is durable, with no gap.
    await expect(next).resolves.toEqual({ firstSeq: 1, count: 1 });
    hold.restore();
    await expectLinkedChain(wal, 2);
    expect(wal.log.headSeq).toBe(1);
  });

  it("refuses appends after close with a retryable error", async () => {
    const wal = await openWal(tmp());
    await wal.close();
    await expect(wal.log.append([rec(0)], "1")).rejects.toThrow(/shutting down/);
  });
});

describe("write-ahead log chunk storage", () => {
  const chunkOfRecords = (texts: string[]) => {
    const entries = texts.map((t) => Buffer.from(t));
    const raw = Buffer.alloc(4 + entries.reduce((n, e) => n + 4 + e.length, 0));
    raw.writeUInt32BE(entries.length, 0);
    let at = 4;
    for (const e of entries) {
      raw.writeUInt32BE(e.length, at);
      e.copy(raw, at + 4);
      at += 4 + e.length;
    }
    return raw;
  };

  it("stores chunks compressed and reads back both compressed and earlier uncompressed ones", async () => {
    const raw = chunkOfRecords(Array.from({ length: 200 }, (_, i) => `${"h".repeat(33)}${rec(i)}`));
    const stored = await storedChunk(raw);
    expect(stored.length).toBeLessThan(raw.length / 4);
    expect(storedCount(stored)).toBe(200);
    expect(storedChunkLength(stored)).toBe(raw.length);
    expect((await chunkOf(stored)).equals(raw)).toBe(true);
    // A value written by a version that did not compress is used as it is.
    expect(storedCount(raw)).toBe(200);
    expect(storedChunkLength(raw)).toBe(raw.length);
    expect(await chunkOf(raw)).toBe(raw);
  });

  it("holds similar records in a fraction of their size and reads them back from disk", async () => {
    const wal = await openWal(tmp(), { cacheBytes: 0 });
    const texts = Array.from({ length: 2000 }, (_, i) =>
      rec(i).replace("}}}", `,"pad":"${"x".repeat(400)}"}}}`),
    );
    for (let i = 0; i < texts.length; i += 100) await wal.log.append(texts.slice(i, i + 100), "1");
    const raw = texts.reduce((n, t) => n + t.length, 0);
    expect(wal.log.usedBytes).toBeLessThan(raw / 4);
    const back = await wal.log.read(-1, 5000, 1 << 30);
    expect(back.map((r) => r.canonicalText())).toEqual(
      texts.map((_, i) => expect.stringContaining(`"seq":"${i}"`) as unknown as string),
    );
  });
});

describe("the age of held records across a restart", () => {
  it("is their receive time, not the time the WAL was opened again", async () => {
    const dir = tmp();
    const hourAgo = Date.now() - 3_600_000;
    const minuteAgo = Date.now() - 60_000;
    const nanos = (ms: number) => String(BigInt(ms) * 1_000_000n);
    const before = await openWal(dir);
    await before.log.append([rec(0), rec(1)], nanos(hourAgo));
    await before.log.append([rec(2)], nanos(minuteAgo));
    expect(before.log.writtenAt(0)).toBeGreaterThan(Date.now() - 10_000); // written just now
    await before.close();

    const after = await openWal(dir);
    // The oldest chunk is read at open: its first record was received an hour ago.
    expect(after.log.writtenAt(1)).toBe(hourAgo);
    // A later chunk is at least as old as the open until it is read, then its own age.
    const provisional = after.log.writtenAt(2) as number;
    expect(provisional).toBeLessThanOrEqual(Date.now());
    expect(provisional).toBeGreaterThan(minuteAgo);
    await new Promise((r) => setTimeout(r, 50));
    expect(after.log.writtenAt(2)).toBe(minuteAgo);
    expect(after.log.writtenAt(3)).toBeNull();
  });
});

describe("records read back from the disk", () => {
  /** Rewrites the stored chunk holding seq 0 (uncompressed) after `edit` changed it. */
  async function editChunk(dir: string, edit: (chunk: Buffer) => void): Promise<void> {
    const store = await Store.open(dir);
    try {
      for await (const [key, value] of store.entries(RECORD_RANGE)) {
        const chunk = Buffer.from(await chunkOf(value));
        edit(chunk);
        await store.write([{ type: "put", key, value: chunk }], { sync: true });
        break;
      }
    } finally {
      await store.close();
    }
  }

  async function written(): Promise<string> {
    const dir = tmp();
    const wal = await openWal(dir);
    await wal.log.append([rec(0), rec(1), rec(2)], "1");
    await wal.close();
    return dir;
  }

  it("are exported only as they were written: an altered text is refused, and so are new requests", async () => {
    const dir = await written();
    await editChunk(dir, (chunk) => {
      const at = chunk.indexOf('"stringValue":"r1"');
      chunk[at + 16] = "9".charCodeAt(0); // r1 → r9: the text changes, its stored hash not
    });
    const wal = await openWal(dir);
    expect(wal.log.faults.altered).toBeNull(); // nothing read yet
    await expect(wal.log.read(-1, 10, 1 << 20)).rejects.toMatchObject({
      code: "WAL_RECORD_ALTERED",
      message: expect.stringContaining(
        "record seq 1 in the write-ahead log does not match its stored leaf hash",
      ),
    });
    expect(wal.log.faults.altered).toMatchObject({ seq: 1 });
    await expect(wal.log.append([rec(3)], "2")).rejects.toMatchObject({
      code: "WAL_RECORD_ALTERED",
    });
  });

  it("are refused when a record was replaced with its hash recomputed: the next one's link shows it", async () => {
    const dir = await written();
    await editChunk(dir, (chunk) => {
      const at = chunk.indexOf('"stringValue":"r1"');
      chunk[at + 16] = "9".charCodeAt(0);
      // Recompute the altered record's stored leaf hash, as someone editing the file would.
      // Its 0x00 prefix, right after its hash: the text holds no 0x00 byte.
      const start = chunk.lastIndexOf(0x00, at);
      const len = chunk.readUInt32BE(start - 32 - 4);
      const value = chunk.subarray(start - 32, start - 32 + len);
      createHash("sha256").update(value.subarray(32)).digest().copy(value, 0);
    });
    const wal = await openWal(dir);
    await expect(wal.log.read(-1, 10, 1 << 20)).rejects.toMatchObject({
      code: "WAL_RECORD_ALTERED",
      message: expect.stringContaining(
        "record seq 2 in the write-ahead log does not link to seq 1",
      ),
    });
  });

  it("are refused when a byte of a LevelDB table flips, wherever it falls (seeded)", async () => {
    const rng = prng(testSeed("test/unit/wal.test.ts").seed);
    for (let trial = 0; trial < 5; trial++) {
      const dir = tmp();
      let wal = await openWal(dir);
      for (let i = 0; i < 10; i++)
        await wal.log.append(
          Array.from({ length: 100 }, (_, k) => rec(i * 100 + k)),
          "1",
        );
      await wal.close();
      await (await openWal(dir)).close(); // opening moves the log into a table
      const table = readdirSync(dir).find((n) => n.endsWith(".ldb")) as string;
      const bytes = readFileSync(join(dir, table));
      // Somewhere in the first half: the records' data blocks (the index is at the end).
      bytes[rng.int(Math.floor(bytes.length / 2))] ^= 1 << rng.int(8);
      writeFileSync(join(dir, table), bytes);
      const opened = await openWal(dir).catch((err: { code?: string }) => err.code);
      // The damage may show when the WAL opens: LevelDB finds it (WAL_DAMAGED), or the
      // flipped block held the chain's own keys, so the log no longer reaches what AUDIT-HEAD
      // says was acknowledged (WAL_RECORDS_LOST). Either way refused, saying what to do.
      if (typeof opened === "string" || opened === undefined) {
        expect(["WAL_DAMAGED", "WAL_RECORDS_LOST"]).toContain(opened);
        continue;
      }
      wal = opened;
      const read = await wal.log.read(-1, 100_000, 1 << 30).then(
        (records) => records.length,
        (err: { code?: string }) => err.code,
      );
      // Either the flipped bit was in bytes no record depends on (all 1,000 read intact), or
      // the read is refused: never an altered record handed out.
      if (read !== 1000) {
        expect(read).toBe("WAL_RECORD_ALTERED");
        expect(wal.log.faults.altered).not.toBeNull();
      }
    }
  });

  it("are refused at open when a chunk's key was altered (a hole in the seqs), never skipped", async () => {
    const dir = tmp();
    const wal = await openWal(dir);
    for (let i = 0; i < 10; i++)
      await wal.log.append(
        Array.from({ length: 100 }, (_, k) => rec(i * 100 + k)),
        "1",
      );
    await wal.close();
    // The chunk of seqs 300..399 moves to another key: as a flipped bit in its key does.
    const store = await Store.open(dir);
    const value = (await store.get(recordKey(300))) as Buffer;
    await store.write(
      [
        { type: "del", key: recordKey(300) },
        { type: "put", key: recordKey(300 + 4096), value },
      ],
      { sync: true },
    );
    await store.close();
    const err = await openWal(dir).catch((e: { code?: string; message: string }) => e);
    expect((err as { code?: string }).code).toBe("WAL_DAMAGED");
    expect((err as Error).message).toContain("jump from seq 299 to seq 400");
  });

  it("in memory since they were written are not read from the disk, and pass", async () => {
    const wal = await openWal(tmp());
    await wal.log.append([rec(0), rec(1)], "1");
    expect(await wal.log.read(-1, 10, 1 << 20)).toHaveLength(2);
    expect(wal.log.faults.altered).toBeNull();
  });
});

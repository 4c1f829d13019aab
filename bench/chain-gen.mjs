// A genuine file-exporter output of N realistic audit records, written fast, in process,
// with the agent's own code: records chained by the WAL's chaining (chainGroup), sealed in
// signed batches exactly as sealing/sealer.ts seals them (batch root, tree root, manifest
// chain, C2SP checkpoint), and written by the file exporter's FileSink. Only LevelDB is
// left out: the chunks are handed from chaining to the sink without being stored.
import { randomBytes } from "node:crypto";
import pino from "pino";
import { fileExporterConfigSchema } from "../dist/agent/exporters/file/config.js";
import { FileSink } from "../dist/agent/exporters/file/file-sink.js";
import { genesisHash } from "../dist/agent/integrity/format.js";
import { Frontier } from "../dist/agent/integrity/frontier.js";
import { manifestKeyId, signManifest } from "../dist/agent/integrity/manifest.js";
import { checkpointText, signNote } from "../dist/agent/integrity/note.js";
import { generateSigningKey } from "../dist/agent/integrity/signing.js";
import { ProtobufCanonicalizer } from "../dist/agent/otlp/protobuf-canonical.js";
import { DEFAULT_CONDITIONS } from "../dist/agent/processing/audit-filter/config.js";
import { compileAuditFilter } from "../dist/agent/processing/audit-filter/predicate.js";
import { chainGroup } from "../dist/agent/store/chaining.js";
import { appendChunkRecords } from "../dist/agent/store/chunk.js";
import { stateAfter } from "../dist/agent/store/sealed-log.js";
import { buildRequest, encodeProto } from "./records.mjs";

/**
 * Distinct canonical audit records (bench/records.mjs's, ~1.4 KB each) made by the agent's
 * protobuf fast path, as the receiver makes them; the chain cycles through them (every line
 * still differs: seq, prev and receive time are in the envelope).
 */
export function recordPool() {
  const canonicalizer = new ProtobufCanonicalizer(
    compileAuditFilter({ match: "any", conditions: DEFAULT_CONDITIONS }),
    1 << 20,
  );
  const pool = [];
  for (const size of [512, 509, 503, 499]) {
    const { records } = canonicalizer.canonicalize(encodeProto(buildRequest(size, 1)));
    for (const r of records) pool.push(Buffer.from(r)); // the canonicalizer reuses its buffer
  }
  return pool;
}

/** Records chained per chainGroup call: chainGroup compresses (for LevelDB) from 64 KiB up. */
const CHAIN_BYTES = 60 << 10;
/** Batches per FileSink.writeAll (two fsyncs each), as delivery groups a backlog. */
const WRITE_BATCHES = 8;

/**
 * Writes a chain of `records` records under `directory` (the file exporter's directory),
 * sealed in batches of `batch` by a new key. Returns the chain id, the key and the bytes
 * of record lines written.
 */
export async function writeChain({
  directory,
  records,
  batch = 1000,
  segmentMiB = 64,
  keyName = "bench",
  onProgress = () => {},
}) {
  const key = generateSigningKey(keyName);
  const chainId = randomBytes(16).toString("hex");
  const origin = `otel-audit-agent/${chainId}`;
  const pool = recordPool();
  const perCall = Math.max(
    1,
    Math.floor(CHAIN_BYTES / (Math.max(...pool.map((r) => r.length)) + 300)),
  );
  const sink = new FileSink(
    fileExporterConfigSchema.parse({ directory, rotation: { max_megabytes: segmentMiB } }),
    pino({ level: "silent" }),
  );
  await sink.open(chainId);
  const genesis = genesisHash(chainId).toString("hex");
  let state = { entries: 0, sealedThrough: -1, lastLeaf: genesis, manifestHash: genesis };
  const tree = new Frontier();
  let prev = genesis;
  let seq = 0;
  let bytes = 0;
  let pending = [];
  // One group of batches is written (and fsync'd) while the next is chained and signed.
  let writing = Promise.resolve();
  const t0 = BigInt(Date.now()) * 1_000_000n;
  while (seq < records) {
    const count = Math.min(batch, records - seq);
    const batchRecords = [];
    for (let from = 0; from < count; from += perCall) {
      const n = Math.min(perCall, count - from);
      const texts = [];
      for (let i = 0; i < n; i++) texts.push(pool[(seq + from + i) % pool.length]);
      const received = String(t0 + BigInt(seq + from) * 50_000n);
      const chained = await chainGroup(
        chainId,
        [{ records: texts, receivedUnixNano: received }],
        seq + from,
        prev,
      );
      for (const c of chained.chunks)
        appendChunkRecords(batchRecords, c.firstSeq, c.cached, c.firstSeq, Infinity, Infinity, 0);
      prev = chained.endPrev;
    }
    pending.push(sealBatch(batchRecords));
    seq += count;
    if (pending.length >= WRITE_BATCHES || seq >= records) {
      await writing;
      const [group, through] = [pending, seq];
      pending = [];
      writing = sink.writeAll(group).then(() => onProgress(through));
    }
  }
  await writing;
  await sink.close();
  return { chainId, key, bytes };

  /** Sealer.addBatch: extends the tree, signs the batch manifest and a checkpoint. */
  function sealBatch(recs) {
    const batchTree = new Frontier();
    for (const r of recs) {
      tree.append(r.leafHash);
      batchTree.append(r.leafHash);
      bytes += r.canonicalLength + 1;
    }
    const first = recs[0].seq;
    const last = recs[recs.length - 1].seq;
    const lastLeaf = recs[recs.length - 1].leafHashHex();
    const treeRoot = tree.root();
    const manifest = {
      v: 1,
      type: "batch",
      chainId,
      index: String(state.entries),
      firstSeq: String(first),
      lastSeq: String(last),
      count: recs.length,
      batchRoot: batchTree.root().toString("hex"),
      prevLeaf: state.lastLeaf,
      lastLeaf,
      treeSize: String(tree.size),
      treeRoot: treeRoot.toString("hex"),
      prevManifest: state.manifestHash,
      keyId: manifestKeyId(key.public),
      createdAt: new Date().toISOString(),
    };
    const checkpoint = signNote(
      checkpointText({ origin, size: tree.size, rootHash: treeRoot, extensions: [] }),
      [key],
    );
    const entry = {
      index: state.entries,
      manifest: signManifest(manifest, key),
      checkpoint,
      firstSeq: first,
      lastSeq: last,
      count: recs.length,
    };
    state = stateAfter(state, entry, lastLeaf);
    return { ...entry, records: recs };
  }
}

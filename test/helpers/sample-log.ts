import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { envelopeJson, genesisHash, leafHash } from "../../agent/integrity/format.js";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import { writeKeyPair } from "../../agent/integrity/key-files.js";
import {
  type BatchManifest,
  manifestHash,
  manifestKeyId,
  type RotationManifest,
  signManifest,
} from "../../agent/integrity/manifest.js";
import { memoLeavesSource } from "../../agent/integrity/merkle.js";
import { checkpointText, signNote } from "../../agent/integrity/note.js";
import { generateSigningKey, type SigningKey } from "../../agent/integrity/signing.js";

/**
 * A signed audit log in the file exporter's layout (docs/integrity-format.md §6), written
 * without running an agent: records of a few services and events spread over hours of
 * receive time, sealed in batches, optionally with a key rotation. For the report tests and
 * the README's screenshot.
 */
export interface SampleLogOptions {
  chainId?: string;
  records?: number;
  batch?: number;
  /** Receive time of record 0 (unix ns) and the time between records. */
  startNs?: bigint;
  stepNs?: bigint;
  /** A key rotation after this many batches (the later ones are signed by a new key). */
  rotateAfterBatch?: number;
  /** The checkpoints' origin (signing.origin); default otel-audit-agent/<chain id>. */
  origin?: string;
  /** Bodies for some seqs (e.g. hostile text). */
  bodies?: Record<number, string>;
}

export interface SampleLog {
  outDir: string;
  chainId: string;
  /** The public key files to trust (two with a rotation). */
  trust: string[];
  recordsFile: string;
  manifestsFile: string;
  lines: string[];
}

const SERVICES = ["billing", "auth", "gateway"];
const EVENTS = ["audit.user.login", "audit.user.logout", "audit.config.change"];

function recordOf(i: number, receivedNs: bigint, body: string): JsonValue {
  return {
    logRecord: {
      attributes: [
        { key: "enduser.id", value: { stringValue: `u-${i % 17}` } },
        { key: "rec.idx", value: { intValue: String(i) } },
      ],
      body: { stringValue: body },
      eventName: EVENTS[i % EVENTS.length] as string,
      severityNumber: 9,
      severityText: "INFO",
      timeUnixNano: String(receivedNs - 1_000_000n),
    },
    resource: {
      attributes: [
        { key: "service.name", value: { stringValue: SERVICES[i % SERVICES.length] as string } },
      ],
    },
  };
}

/** Record lines of a chain, each linked to the one before, and their leaf hashes. */
export function linkRecords(
  chainId: string,
  records: ReadonlyArray<{ record: string; received: string }>,
): { lines: string[]; leaves: Buffer[] } {
  const lines: string[] = [];
  const leaves: Buffer[] = [];
  let prev = genesisHash(chainId).toString("hex");
  for (const [i, { record, received }] of records.entries()) {
    const line = envelopeJson(chainId, prev, record, i, received);
    lines.push(line);
    const leaf = leafHash(Buffer.from(line, "utf8"));
    leaves.push(leaf);
    prev = leaf.toString("hex");
  }
  return { lines, leaves };
}

/**
 * The signed manifest text and checkpoint note of a batch of records `first` to `last`,
 * whose leaf hashes are `leaves` (`root` gives MTH of a range of them).
 */
export function sealBatch(o: {
  chainId: string;
  index: number;
  first: number;
  last: number;
  leaves: readonly Buffer[];
  root: (start: number, end: number) => Uint8Array;
  origin?: string;
  prevManifest: string;
  key: SigningKey;
  createdAt: string;
}): { signed: string; checkpoint: string } {
  const hex = (h: Uint8Array) => Buffer.from(h).toString("hex");
  const { chainId, first, last, leaves, root, key } = o;
  const manifest: BatchManifest = {
    v: 1,
    type: "batch",
    chainId,
    index: String(o.index),
    firstSeq: String(first),
    lastSeq: String(last),
    count: last - first + 1,
    batchRoot: hex(root(first, last + 1)),
    prevLeaf: first === 0 ? genesisHash(chainId).toString("hex") : hex(leaves[first - 1] as Buffer),
    lastLeaf: hex(leaves[last] as Buffer),
    treeSize: String(last + 1),
    treeRoot: hex(root(0, last + 1)),
    prevManifest: o.prevManifest,
    keyId: manifestKeyId(key.public),
    createdAt: o.createdAt,
  };
  const checkpoint = signNote(
    checkpointText({
      origin: o.origin ?? `otel-audit-agent/${chainId}`,
      size: last + 1,
      rootHash: Buffer.from(root(0, last + 1)),
      extensions: [],
    }),
    [key],
  );
  return { signed: signManifest(manifest, key), checkpoint };
}

export function writeSampleLog(dir: string, o: SampleLogOptions = {}): SampleLog {
  const chainId = o.chainId ?? "sample-chain";
  const n = o.records ?? 300;
  const batch = o.batch ?? 50;
  const start = o.startNs ?? 1_767_268_800_000_000_000n; // 2026-01-01T12:00:00Z
  const step = o.stepNs ?? 60_000_000_000n; // a minute
  const keys: SigningKey[] = [generateSigningKey("audit-agent")];
  const trust = [writeKeyPair(join(dir, "keys", "signing.key"), keys[0] as SigningKey)];
  const { lines, leaves } = linkRecords(
    chainId,
    Array.from({ length: n }, (_, i) => {
      const received = start + BigInt(i) * step;
      const body = o.bodies?.[i] ?? `record ${i}`;
      return { record: canonicalize(recordOf(i, received, body)), received: String(received) };
    }),
  );
  const root = memoLeavesSource(leaves);
  const manifestLines: string[] = [];
  let prevManifest = genesisHash(chainId).toString("hex");
  let key = keys[0] as SigningKey;
  const createdAt = (seq: number) =>
    new Date(Number((start + BigInt(seq) * step) / 1_000_000n) + 500).toISOString();
  for (let first = 0, b = 0; first < n; first += batch, b++) {
    const last = Math.min(n, first + batch) - 1;
    if (o.rotateAfterBatch !== undefined && b === o.rotateAfterBatch) {
      const next = generateSigningKey("audit-agent");
      trust.push(writeKeyPair(join(dir, "keys", "signing-2.key"), next));
      const rotation: RotationManifest = {
        v: 1,
        type: "key-rotation",
        chainId,
        index: String(manifestLines.length),
        treeSize: String(first),
        newKey: next.public.verifierKey,
        prevManifest,
        keyId: manifestKeyId(key.public),
        createdAt: createdAt(first),
      };
      const signed = signManifest(rotation, key);
      prevManifest = manifestHash(signed);
      manifestLines.push(`{"checkpoint":null,"manifest":${signed}}`);
      key = next;
    }
    const { signed, checkpoint } = sealBatch({
      chainId,
      index: manifestLines.length,
      first,
      last,
      leaves,
      root,
      prevManifest,
      key,
      createdAt: createdAt(last),
      origin: o.origin,
    });
    prevManifest = manifestHash(signed);
    manifestLines.push(`{"checkpoint":${JSON.stringify(checkpoint)},"manifest":${signed}}`);
  }
  const outDir = join(dir, "out");
  const chainDir = join(outDir, chainId);
  mkdirSync(chainDir, { recursive: true });
  const recordsFile = join(chainDir, `records-${"0".repeat(20)}.ndjson`);
  const manifestsFile = join(chainDir, `manifests-${"0".repeat(20)}.ndjson`);
  writeFileSync(recordsFile, lines.map((l) => `${l}\n`).join(""));
  writeFileSync(manifestsFile, manifestLines.map((l) => `${l}\n`).join(""));
  return { outDir, chainId, trust, recordsFile, manifestsFile, lines };
}

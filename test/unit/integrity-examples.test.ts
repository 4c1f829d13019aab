import { createHash, createPrivateKey, createPublicKey, verify } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { openWal, type Wal } from "../../agent/store/wal.js";
import { Sealer } from "../../agent/sealing/sealer.js";
import { CheckpointServer } from "../../agent/sealing/checkpoint-server.js";
import { signingConfigSchema } from "../../agent/sealing/config.js";
import {
  envelopeJson,
  genesisHash,
  leafHash,
  nodeHash,
  sourceJson,
} from "../../agent/integrity/format.js";
import { matchEnvelope } from "../../agent/integrity/canonical-check.js";
import { checkChain, parseEnvelope } from "../../agent/integrity/chain-check.js";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import { readTrustedKeys, writeKeyPair } from "../../agent/integrity/key-files.js";
import { loadSigningKeys } from "../../agent/sealing/keys.js";
import {
  type BatchManifest,
  checkManifestSignature,
  manifestHash,
  manifestKeyId,
  type RotationManifest,
  type SignedManifest,
  signManifest,
} from "../../agent/integrity/manifest.js";
import {
  consistencyProof,
  EMPTY_TREE_HASH,
  inclusionProof,
  leavesSource,
  verifyConsistency,
  verifyInclusion,
} from "../../agent/integrity/merkle.js";
import {
  checkpointText,
  parseCheckpointText,
  parseNote,
  signNote,
  verifyNote,
} from "../../agent/integrity/note.js";
import { proveConsistency, proveInclusion } from "../../agent/integrity/proofs.js";
import {
  cosign,
  cosignedMessage,
  cosignerKeyOf,
  parseCosignerKey,
} from "../../agent/integrity/cosignature.js";
import { cosignersOf } from "../../agent/verify/verify-checkpoints.js";
import {
  keyIdFor,
  parseVerifierKey,
  privateKeyPem,
  publicKeyFromRaw,
  type SigningKey,
} from "../../agent/integrity/signing.js";
import { fileExporterConfigSchema } from "../../agent/exporters/file/config.js";
import { FileSink } from "../../agent/exporters/file/file-sink.js";
import { fileSource } from "../../agent/exporters/file/reader.js";
import { formatReport, verifySource } from "../../agent/verify/verify.js";

/**
 * The signed-batch worked examples of docs/integrity-format.md (§5.4, §8.6 to §8.12) as a
 * known-answer test. Every value is recomputed from fixed inputs (the records of §8.4, the
 * RFC 8032 §7.1 test keys, fixed seal times), first with the building blocks and then by
 * running the real write-ahead log, batcher, proof code, checkpoint endpoint, file
 * exporter and verifier; and the document must contain each value verbatim.
 */

const ROOT = join(import.meta.dirname, "../..");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const utf8 = (s: string) => Buffer.from(s, "utf8");
const b64url = (h: string) => Buffer.from(h, "hex").toString("base64url");
const silent = pino({ level: "silent" });

// ---------------------------------------------------------------------------------------
// Fixed inputs
// ---------------------------------------------------------------------------------------

const CHAIN_ID = "billing-prod-eu1";
const RECEIVED = "1767268800125000000";
const SEALED_AT = "2026-01-01T12:00:01.000Z";
const ROTATED_AT = "2026-01-02T09:00:00.000Z";
const KEY_NAME = "audit-agent";
// RFC 8032 §7.1 TEST 1 and TEST 2: public test keys, never to be used for real.
const SEED_1 = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC_1 = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const SEED_2 = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
const PUBLIC_2 = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

// The canonical `record` members of §8.3 (their lines and leaf hashes are pinned by
// canonical.test.ts; the leaf hashes are asserted again below).
const CONTEXT =
  '"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing-api"}},' +
  '{"key":"service.version","value":{"stringValue":"4.2.1"}},' +
  '{"key":"deployment.environment.name","value":{"stringValue":"production"}}]},' +
  '"resourceSchemaUrl":"https://opentelemetry.io/schemas/1.26.0",' +
  '"scope":{"name":"com.example.billing.audit","version":"1.3.0"}}';
const RECORD_0 =
  '{"logRecord":{"attributes":[{"key":"enduser.id","value":{"stringValue":"42"}},' +
  '{"key":"target.user.id","value":{"intValue":"4711"}},' +
  '{"key":"roles","value":{"arrayValue":{"values":[{"stringValue":"admin"},{"stringValue":"viewer"}]}}},' +
  '{"key":"risk.score","value":{"doubleValue":0.25}},' +
  '{"key":"client.address","value":{"stringValue":"203.0.113.7"}}],' +
  '"body":{"stringValue":"role \\"admin\\" granted to user 4711 by user 42"},' +
  '"eventName":"audit.user.role_granted","flags":1,"observedTimeUnixNano":"1767268800123500000",' +
  '"severityNumber":9,"severityText":"INFO","spanId":"eee19b7ec3c1b174",' +
  '"timeUnixNano":"1767268800123456789","traceId":"5b8efff798038103d269b633813fc60c"},' +
  CONTEXT;
const RECORD_1 =
  '{"logRecord":{"attributes":[{"key":"client.address","value":{"stringValue":"198.51.100.23"}}],' +
  '"body":{"kvlistValue":{"values":[{"key":"user","value":{"stringValue":"mallory"}},' +
  '{"key":"attempts","value":{"intValue":"3"}}]}},"eventName":"audit.user.login_failed",' +
  '"severityNumber":13,"severityText":"WARN","timeUnixNano":"1767268800124000000"},' +
  CONTEXT;

// ---------------------------------------------------------------------------------------
// The documented values
// ---------------------------------------------------------------------------------------

const GENESIS = "f7448b55e8af83cec14bd530b5149231fb852e587eaaaf5951c13f9311ffb59a";
const LEAF_0 = "69001ffc0cea59107e227699e0134a80814a9f230e446f41680606144196d19e";
const LEAF_1 = "32fe666988ba66d5d301432531d1ea128dae25362836a9401a7b4d7e864ea40f";
const EMPTY_TREE = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const JWK_1 =
  '{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}';
const JWK_2 =
  '{"kty":"OKP","crv":"Ed25519","d":"TM0Imyj_ltqdtsNG7BFOD1uKMZ81q6Yk2oz27U-4pvs","x":"PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw"}';
const PEM_1 =
  "# audit-agent signing key: audit-agent\n" +
  "-----BEGIN PRIVATE KEY-----\n" +
  "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n" +
  "-----END PRIVATE KEY-----\n";
const KEY_ID_INPUT =
  "61756469742d6167656e740a01d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const KEY_ID_1 = "5e2433cf";
const VERIFIER_KEY_1 = "audit-agent+5e2433cf+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea";
const VERIFIER_KEY_2 = "audit-agent+47f2c4ce+AT1AF8PoQ4lakrcKp00bfrycmCzPLsSWjMDNVfEq9GYM";

const ROOT_2 = "b5c89b3ec3b6951356ee2e79408e2b14b1cba6619995ec479357caf8dd309d9f";
const SIGNING_INPUT =
  '{"batchRoot":"b5c89b3ec3b6951356ee2e79408e2b14b1cba6619995ec479357caf8dd309d9f","chainId":"billing-prod-eu1","count":2,"createdAt":"2026-01-01T12:00:01.000Z","firstSeq":"0","index":"0","keyId":"audit-agent+5e2433cf","lastLeaf":"32fe666988ba66d5d301432531d1ea128dae25362836a9401a7b4d7e864ea40f","lastSeq":"1","prevLeaf":"f7448b55e8af83cec14bd530b5149231fb852e587eaaaf5951c13f9311ffb59a","prevManifest":"f7448b55e8af83cec14bd530b5149231fb852e587eaaaf5951c13f9311ffb59a","treeRoot":"b5c89b3ec3b6951356ee2e79408e2b14b1cba6619995ec479357caf8dd309d9f","treeSize":"2","type":"batch","v":1}';
const SIGNATURE_HEX =
  "ff858417fcdc2a33c45a03c019e5f743af82b74130d2d8f3f24fc2a4a17f4f3b1b8beafd22ccd54edc4a638a2f5f2898ad8c8f75b6431041e12208522748f00e";
const SIGNATURE =
  "/4WEF/zcKjPEWgPAGeX3Q6+Ct0Ew0tjz8k/CpKF/Tzsbi+r9IszVTtxKY4ovXyiYrYyPdbZDEEHhIghSJ0jwDg==";
const SIGNED_MANIFEST =
  '{"batchRoot":"b5c89b3ec3b6951356ee2e79408e2b14b1cba6619995ec479357caf8dd309d9f","chainId":"billing-prod-eu1","count":2,"createdAt":"2026-01-01T12:00:01.000Z","firstSeq":"0","index":"0","keyId":"audit-agent+5e2433cf","lastLeaf":"32fe666988ba66d5d301432531d1ea128dae25362836a9401a7b4d7e864ea40f","lastSeq":"1","prevLeaf":"f7448b55e8af83cec14bd530b5149231fb852e587eaaaf5951c13f9311ffb59a","prevManifest":"f7448b55e8af83cec14bd530b5149231fb852e587eaaaf5951c13f9311ffb59a","signature":"/4WEF/zcKjPEWgPAGeX3Q6+Ct0Ew0tjz8k/CpKF/Tzsbi+r9IszVTtxKY4ovXyiYrYyPdbZDEEHhIghSJ0jwDg==","treeRoot":"b5c89b3ec3b6951356ee2e79408e2b14b1cba6619995ec479357caf8dd309d9f","treeSize":"2","type":"batch","v":1}';
const MANIFEST_HASH = "baea7babaf9126601cdcb19c560188cbe0c0905c846ebd6919a12da42fa23f35";

const CHECKPOINT_TEXT =
  "otel-audit-agent/billing-prod-eu1\n2\ntcibPsO2lRNW7i55QI4rFLHLpmGZlexHk1fK+N0wnZ8=\n";
const NOTE =
  `${CHECKPOINT_TEXT}\n` +
  "— audit-agent XiQzz/VqfoHyx6SIdJ7cJWORKrIeOaYD0AhWihe2popQ9w7Utfk1WSd18QyeRiM6yWtqAjWF4DCaVzmbwv8Z/3kf0gU=\n";
const NOTE_SIGNATURE_HEX =
  "f56a7e81f2c7a488749edc2563912ab21e39a603d008568a17b6a68a50f70ed4b5f935592775f10c9e46233ac96b6a023585e0309a57399bc2ff19ff791fd205";
const MANIFEST_LINE = `{"checkpoint":${JSON.stringify(NOTE)},"manifest":${SIGNED_MANIFEST}}`;

const INCLUSION = {
  type: "inclusion",
  seq: 0,
  treeSize: 2,
  leafHash: LEAF_0,
  rootHash: ROOT_2,
  proof: [LEAF_1],
};
const CONSISTENCY = {
  type: "consistency",
  oldSize: 1,
  newSize: 2,
  oldRootHash: LEAF_0,
  newRootHash: ROOT_2,
  proof: [LEAF_1],
};

const ROTATION_MANIFEST =
  '{"chainId":"billing-prod-eu1","createdAt":"2026-01-02T09:00:00.000Z","index":"1","keyId":"audit-agent+5e2433cf","newKey":"audit-agent+47f2c4ce+AT1AF8PoQ4lakrcKp00bfrycmCzPLsSWjMDNVfEq9GYM","prevManifest":"baea7babaf9126601cdcb19c560188cbe0c0905c846ebd6919a12da42fa23f35","signature":"iGe6S6UXpqGigozrjkLjIqKBFOuemnRu65yCs2Q9+jIGF2dcEVpR8N2GoPkhaUng+6JIZ3Sa42cBI/YRUi/iCg==","treeSize":"2","type":"key-rotation","v":1}';
const ROTATION_HASH = "79b6d507b093480294f80793e7b5ce46ecb6de4ca39afcc75965529da220a59d";

const VERIFY_SUMMARY =
  "chain billing-prod-eu1: 2 records, seq 0..1, received 2026-01-01T12:00:00.125Z .. 2026-01-01T12:00:00.125Z\n" +
  "  1 signed batches (sealed through seq 1), 2 checkpoints, latest tree size 2 root b5c89b3ec3b69513…\n" +
  "  keys: audit-agent+5e2433cf\n" +
  "OK: no findings\n";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/** A signing key from a fixed seed, imported as a JWK; checks x is the seed's public key. */
function fixedKey(seedHex: string, publicHex: string): SigningKey {
  const jwk = { kty: "OKP", crv: "Ed25519", d: b64url(seedHex), x: b64url(publicHex) };
  const privateKey = createPrivateKey({ key: jwk, format: "jwk" });
  expect(createPublicKey(privateKey).export({ format: "jwk" }).x).toBe(jwk.x);
  return { privateKey, public: publicKeyFromRaw(KEY_NAME, Buffer.from(publicHex, "hex")) };
}

const key1 = fixedKey(SEED_1, PUBLIC_1);
const key2 = fixedKey(SEED_2, PUBLIC_2);
const line0 = envelopeJson(CHAIN_ID, GENESIS, RECORD_0, 0, RECEIVED);
const line1 = envelopeJson(CHAIN_ID, LEAF_0, RECORD_1, 1, RECEIVED);
const leaves = [leafHash(utf8(line0)), leafHash(utf8(line1))];
const h = (x: string) => Buffer.from(x, "hex");

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "integrity-examples-"));
  dirs.push(dir);
  return dir;
}
const opened: Wal[] = [];
afterEach(() => {
  vi.useRealTimers();
});
afterAll(async () => {
  for (const w of opened.splice(0)) await w.close().catch(() => undefined);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Opens a sealer with the seal time fixed, so that `createdAt` is reproducible. */
async function openBatcherAt(
  time: string,
  wal: Wal,
  key: SigningKey,
  previousKey?: SigningKey,
): Promise<Sealer> {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(new Date(time));
  return Sealer.open({
    log: wal.log,
    sealed: wal.sealed,
    key,
    previousKey,
    origin: `otel-audit-agent/${CHAIN_ID}`,
    policy: { maxRecords: 1000, maxBytes: 4 * 1024 * 1024, timeoutMs: 1000 },
    logger: silent,
  });
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

describe("docs/integrity-format.md §8.6–§8.12 worked examples", () => {
  it("§5.4: the empty tree hash", () => {
    expect(hex(EMPTY_TREE_HASH)).toBe(EMPTY_TREE);
  });

  it("§8.6: the signing key, its key id, verifier key and key files", async () => {
    expect(JSON.stringify(JSON.parse(JWK_1))).toBe(
      JSON.stringify({ kty: "OKP", crv: "Ed25519", d: b64url(SEED_1), x: b64url(PUBLIC_1) }),
    );
    expect(JSON.stringify(JSON.parse(JWK_2))).toBe(
      JSON.stringify({ kty: "OKP", crv: "Ed25519", d: b64url(SEED_2), x: b64url(PUBLIC_2) }),
    );
    expect(
      Buffer.concat([utf8(KEY_NAME), Buffer.from([0x0a, 0x01]), h(PUBLIC_1)]).toString("hex"),
    ).toBe(KEY_ID_INPUT);
    expect(hex(keyIdFor(KEY_NAME, h(PUBLIC_1)))).toBe(KEY_ID_1);
    expect(key1.public.keyId).toBe(KEY_ID_1);
    expect(key1.public.verifierKey).toBe(VERIFIER_KEY_1);
    expect(key2.public.verifierKey).toBe(VERIFIER_KEY_2);
    expect(manifestKeyId(key1.public)).toBe(`${KEY_NAME}+${KEY_ID_1}`);
    expect(parseVerifierKey(VERIFIER_KEY_1).raw.toString("hex")).toBe(PUBLIC_1);
    expect(privateKeyPem(key1)).toBe(PEM_1);

    // Key files as keygen and the agent write them, read back as the agent and verify do.
    const dir = tempDir();
    const privatePath = join(dir, "keys", "signing.key");
    const publicPath = writeKeyPair(privatePath, key1);
    expect(publicPath).toBe(join(dir, "keys", "signing.pub"));
    expect(readFileSync(privatePath, "utf8")).toBe(PEM_1);
    expect(statSync(privatePath).mode & 0o777).toBe(0o600);
    expect(readFileSync(publicPath, "utf8")).toBe(`${VERIFIER_KEY_1}\n`);
    expect(readTrustedKeys([publicPath]).map((k) => k.verifierKey)).toEqual([VERIFIER_KEY_1]);
    const config = signingConfigSchema.parse({
      key_file: privatePath,
      key_name: "not-this-name",
      generate_if_missing: false,
    });
    // The name comes from the comment line, not from key_name.
    expect(loadSigningKeys(config, {}, silent).key.public.verifierKey).toBe(VERIFIER_KEY_1);
  });

  it("§8.7: the batch manifest, its signature and its manifest hash", () => {
    expect(hex(genesisHash(CHAIN_ID))).toBe(GENESIS);
    expect(leaves.map(hex)).toEqual([LEAF_0, LEAF_1]);
    expect(hex(nodeHash(leaves[0]!, leaves[1]!))).toBe(ROOT_2);
    expect(hex(leavesSource(leaves)(0, 2))).toBe(ROOT_2);

    const manifest: BatchManifest = {
      v: 1,
      type: "batch",
      chainId: CHAIN_ID,
      index: "0",
      firstSeq: "0",
      lastSeq: "1",
      count: 2,
      batchRoot: ROOT_2,
      prevLeaf: GENESIS,
      lastLeaf: LEAF_1,
      treeSize: "2",
      treeRoot: ROOT_2,
      prevManifest: GENESIS,
      keyId: manifestKeyId(key1.public),
      createdAt: SEALED_AT,
    };
    expect(canonicalize(manifest as unknown as JsonValue)).toBe(SIGNING_INPUT);
    const signed = signManifest(manifest, key1);
    expect(signed).toBe(SIGNED_MANIFEST);
    const parsed = JSON.parse(signed) as SignedManifest;
    expect(parsed.signature).toBe(SIGNATURE);
    expect(Buffer.from(SIGNATURE, "base64").toString("hex")).toBe(SIGNATURE_HEX);
    expect(SIGNATURE).toHaveLength(88);
    expect(verify(null, utf8(SIGNING_INPUT), key1.public.key, h(SIGNATURE_HEX))).toBe(true);
    expect(checkManifestSignature(parsed, [parseVerifierKey(VERIFIER_KEY_1)])).toBe("valid");
    expect(manifestHash(signed)).toBe(MANIFEST_HASH);
  });

  it("§8.8: the checkpoint text and its signed note", () => {
    const text = checkpointText({
      origin: `otel-audit-agent/${CHAIN_ID}`,
      size: 2,
      rootHash: h(ROOT_2),
      extensions: [],
    });
    expect(text).toBe(CHECKPOINT_TEXT);
    expect(signNote(text, [key1])).toBe(NOTE);
    const note = parseNote(NOTE);
    expect(note.text).toBe(CHECKPOINT_TEXT);
    expect(note.signatures).toHaveLength(1);
    const [sig] = note.signatures;
    expect(sig!.name).toBe(KEY_NAME);
    expect(sig!.keyId).toBe(KEY_ID_1);
    expect(sig!.signature.toString("hex")).toBe(NOTE_SIGNATURE_HEX);
    expect(verify(null, utf8(CHECKPOINT_TEXT), key1.public.key, h(NOTE_SIGNATURE_HEX))).toBe(true);
    expect(verifyNote(note, [parseVerifierKey(VERIFIER_KEY_1)]).valid).toHaveLength(1);
    const cp = parseCheckpointText(note.text);
    expect(cp.size).toBe(2);
    expect(hex(cp.rootHash)).toBe(ROOT_2);
  });

  it("§8.10: the proofs and their RFC 9162 verification", async () => {
    const source = leavesSource(leaves);
    expect((await inclusionProof(0, 2, source)).map(hex)).toEqual(INCLUSION.proof);
    expect((await consistencyProof(1, 2, source)).map(hex)).toEqual(CONSISTENCY.proof);
    expect(verifyInclusion(0, 2, h(LEAF_0), [h(LEAF_1)], h(ROOT_2))).toBe(true);
    expect(verifyConsistency(1, 2, h(LEAF_0), h(ROOT_2), [h(LEAF_1)])).toBe(true);
    // The walks of §8.10: one node hash each, the leaf of seq 0 on the left.
    expect(hex(nodeHash(h(LEAF_0), h(LEAF_1)))).toBe(ROOT_2);
    expect(verifyInclusion(0, 2, h(LEAF_1), [h(LEAF_1)], h(ROOT_2))).toBe(false);
  });

  it("§8.11: the key-rotation manifest", () => {
    const rotation: RotationManifest = {
      v: 1,
      type: "key-rotation",
      chainId: CHAIN_ID,
      index: "1",
      treeSize: "2",
      newKey: key2.public.verifierKey,
      prevManifest: MANIFEST_HASH,
      keyId: manifestKeyId(key1.public),
      createdAt: ROTATED_AT,
    };
    const signed = signManifest(rotation, key1);
    expect(signed).toBe(ROTATION_MANIFEST);
    expect(manifestHash(signed)).toBe(ROTATION_HASH);
    expect(checkManifestSignature(JSON.parse(signed) as SignedManifest, [key1.public])).toBe(
      "valid",
    );
  });

  it("the agent's own pipeline produces the same values (§8.7–§8.12)", async () => {
    const dir = tempDir();
    const wal = await openWal({
      directory: join(dir, "wal"),
      maxBytes: 64 * 1024 * 1024,
      chainId: CHAIN_ID,
    });
    opened.push(wal);
    await wal.log.append([RECORD_0, RECORD_1], RECEIVED);

    // Seal: the batch manifest and checkpoint of §8.7 and §8.8.
    const batcher = await openBatcherAt(SEALED_AT, wal, key1);
    await batcher.sealAll();
    vi.useRealTimers();
    const entry = await wal.sealed.readEntry(0);
    expect(entry).toMatchObject({ manifest: SIGNED_MANIFEST, checkpoint: NOTE, count: 2 });
    expect(wal.sealed.latestCheckpoint?.note).toBe(NOTE);

    // Proofs from the stored tree (§8.10), as `prove` prints them and the endpoint serves them.
    const inclusion = await proveInclusion(wal.sealed.tree, 0);
    const consistency = await proveConsistency(wal.sealed.tree, 1, 2);
    expect(inclusion).toEqual(INCLUSION);
    expect(consistency).toEqual(CONSISTENCY);
    const server = new CheckpointServer("127.0.0.1:0", wal.sealed, silent);
    await server.start();
    try {
      const base = `http://${server.address()}`;
      const cp = await fetch(`${base}/checkpoint`);
      expect(cp.headers.get("content-type")).toBe("text/plain; charset=utf-8");
      expect(await cp.text()).toBe(NOTE);
      const inc = await fetch(`${base}/proof/inclusion?seq=0`);
      expect(await inc.text()).toBe(`${JSON.stringify(INCLUSION, null, 2)}\n`);
      const con = await fetch(`${base}/proof/consistency?old=1&new=2`);
      expect(await con.text()).toBe(`${JSON.stringify(CONSISTENCY, null, 2)}\n`);
    } finally {
      await server.shutdown();
    }

    // The file backend of §8.9 and the verification of §8.12.
    const out = join(dir, "out");
    const sink = new FileSink(fileExporterConfigSchema.parse({ directory: out }), silent);
    await sink.open(CHAIN_ID);
    const records = await wal.log.read(-1, 10, Number.POSITIVE_INFINITY);
    await sink.write({
      index: 0,
      manifest: entry!.manifest,
      checkpoint: entry!.checkpoint,
      firstSeq: 0,
      lastSeq: 1,
      records,
    });
    const chainDir = join(out, CHAIN_ID);
    const recordsFile = join(chainDir, "records-00000000000000000000.ndjson");
    const manifestsFile = join(chainDir, "manifests-00000000000000000000.ndjson");
    expect(readFileSync(recordsFile, "utf8")).toBe(`${line0}\n${line1}\n`);
    expect(readFileSync(manifestsFile, "utf8")).toBe(`${MANIFEST_LINE}\n`);
    const report = await verifySource(
      fileSource(out),
      [key1.public],
      [{ note: NOTE, location: "cp.txt" }],
    );
    expect(report.findings).toEqual([]);
    expect(formatReport(report).split("\n").slice(1).join("\n")).toBe(VERIFY_SUMMARY);

    // §8.12: one changed byte in seq 1 fails the batch root and the checkpoint root.
    const tampered = join(dir, "tampered");
    cpSync(out, tampered, { recursive: true });
    const tamperedRecords = join(tampered, CHAIN_ID, "records-00000000000000000000.ndjson");
    writeFileSync(
      tamperedRecords,
      readFileSync(tamperedRecords, "utf8").replace('"mallory"', '"mallorz"'),
    );
    const bad = await verifySource(fileSource(tampered), [key1.public]);
    expect(bad.findings.map((f) => f.category)).toEqual(["modified", "modified"]);

    // Rotation (§8.11): restart with the new key and previous_key_file set to the old one.
    await openBatcherAt(ROTATED_AT, wal, key2, key1);
    vi.useRealTimers();
    const rotation = await wal.sealed.readEntry(1);
    expect(rotation).toMatchObject({ manifest: ROTATION_MANIFEST, checkpoint: null, count: 0 });
    await sink.write({
      index: 1,
      manifest: rotation!.manifest,
      checkpoint: null,
      firstSeq: 2,
      lastSeq: 1,
      count: 0,
      records: [],
    });
    await sink.close();
    expect(readFileSync(manifestsFile, "utf8")).toBe(
      `${MANIFEST_LINE}\n{"checkpoint":null,"manifest":${ROTATION_MANIFEST}}\n`,
    );
    const after = await verifySource(fileSource(out), [key1.public, key2.public]);
    expect(after.findings).toEqual([]);
  });

  it("the document shows exactly these values", () => {
    const doc = readFileSync(join(ROOT, "docs/integrity-format.md"), "utf8");
    const values = [
      EMPTY_TREE,
      SEED_1,
      PUBLIC_1,
      JWK_1,
      JWK_2,
      PEM_1,
      KEY_ID_INPUT,
      `key id \`${KEY_ID_1}\``,
      VERIFIER_KEY_1,
      VERIFIER_KEY_2,
      SEALED_AT,
      ROTATED_AT,
      ROOT_2,
      SIGNING_INPUT,
      `(${utf8(SIGNING_INPUT).length} bytes)`,
      SIGNATURE_HEX,
      SIGNATURE,
      SIGNED_MANIFEST,
      `(${utf8(SIGNED_MANIFEST).length} bytes)`,
      MANIFEST_HASH,
      CHECKPOINT_TEXT,
      `(${utf8(CHECKPOINT_TEXT).length} bytes, each line ending in LF)`,
      `the ${utf8(CHECKPOINT_TEXT).length}-byte text`,
      NOTE,
      `decodes to ${4 + NOTE_SIGNATURE_HEX.length / 2} bytes`,
      NOTE_SIGNATURE_HEX,
      MANIFEST_LINE,
      JSON.stringify(INCLUSION, null, 2),
      JSON.stringify(CONSISTENCY, null, 2),
      `\`r = SHA-256(0x01 ‖ r ‖ p) = ${ROOT_2.slice(0, 8)}…${ROOT_2.slice(-4)}\``,
      `\`sr = SHA-256(0x01 ‖ sr ‖ c) = ${ROOT_2.slice(0, 8)}…${ROOT_2.slice(-4)}\``,
      `[${LEAF_0.slice(0, 8)}…${LEAF_0.slice(-4)}, ${LEAF_1.slice(0, 8)}…${LEAF_1.slice(-4)}]`,
      ROTATION_MANIFEST,
      ROTATION_HASH,
      VERIFY_SUMMARY,
      `${Buffer.from(SIGNATURE, "base64").length}-byte Ed25519 signature (§10.3), ${SIGNATURE.length} characters`,
    ];
    for (const value of values) expect(doc.includes(value), value.slice(0, 80)).toBe(true);
  });
});

// §8.13: a version-2 line, the next record of the example chain with its `source`.
const RECORD_2 =
  '{"logRecord":{"eventName":"audit.user.logout","severityNumber":9,"severityText":"INFO","timeUnixNano":"1767268801000000000"},"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing-api"}},{"key":"k8s.pod.name","value":{"stringValue":"billing-api-0"}}]},"scope":{"name":"com.example.billing.audit","version":"1.3.0"}}';
const RECEIVED_2 = "1767268801002000000";
const LINE_2 =
  '{"chainId":"billing-prod-eu1","prev":"32fe666988ba66d5d301432531d1ea128dae25362836a9401a7b4d7e864ea40f","record":{"logRecord":{"eventName":"audit.user.logout","severityNumber":9,"severityText":"INFO","timeUnixNano":"1767268801000000000"},"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing-api"}},{"key":"k8s.pod.name","value":{"stringValue":"billing-api-0"}}]},"scope":{"name":"com.example.billing.audit","version":"1.3.0"}},"seq":"2","source":{"client.address":"127.0.0.1","k8s.namespace.name":"billing","k8s.node.name":"node-eu1-a","k8s.pod.name":"billing-api-7d9f8c6b5-x2k4q","tls.client.hash.sha256":"50D858E0985ECC7F60418AAF0CC5AB587F42C2570A884095A9E8CCACD0F6545C","tls.client.subject":"CN=billing-api,O=Example Corp"},"timeReceivedUnixNano":"1767268801002000000","v":2}';
const LEAF_2 = "22528df6246f73d3adee5f2248127c47bf21365cc74f8c495eeec142f9201e58";

describe("§8.13: a version-2 line", () => {
  it("is the envelope of the documented source, links to §8.4, and the document shows it", () => {
    const source = sourceJson({
      "k8s.pod.name": "billing-api-7d9f8c6b5-x2k4q",
      "k8s.namespace.name": "billing",
      "k8s.node.name": "node-eu1-a",
      "client.address": "127.0.0.1",
      "tls.client.subject": "CN=billing-api,O=Example Corp",
      // The stand-in fingerprint: SHA-256 of "example", uppercase hex.
      "tls.client.hash.sha256": createHash("sha256").update("example").digest("hex").toUpperCase(),
    });
    const line = envelopeJson(CHAIN_ID, LEAF_1, RECORD_2, 2, RECEIVED_2, source);
    expect(line).toBe(LINE_2);
    expect(leafHash(utf8(line)).toString("hex")).toBe(LEAF_2);
    expect(canonicalize(JSON.parse(line) as JsonValue)).toBe(line);
    expect(matchEnvelope(line)).toMatchObject({ v: 2, seq: "2" });
    const lines = [line0, line1, line].map((text, i) => ({ text, location: `example:${i + 1}` }));
    expect(checkChain(lines)).toMatchObject({ records: 3, lastHash: LEAF_2, findings: [] });
    // What the section says of edits to it.
    expect(parseEnvelope(line.replace('"v":2', '"v":1'))).toMatch(/source in a version-1 line/);
    expect(parseEnvelope(line.replace(/,"source":\{[^}]*\}/, ""))).toMatch(/without its source/);
    expect(
      parseEnvelope(
        line.replace(
          '"client.address":"127.0.0.1","k8s.namespace.name":"billing"',
          '"k8s.namespace.name":"billing","client.address":"127.0.0.1"',
        ),
      ),
    ).toMatch(/canonical/);
    const edited = line.replace("node-eu1-a", "node-eu1-b");
    expect(checkChain([...lines.slice(0, 2), { text: edited, location: "x" }]).lastHash).not.toBe(
      LEAF_2,
    );

    const doc = readFileSync(join(ROOT, "docs/integrity-format.md"), "utf8");
    for (const value of [LINE_2, LEAF_2, `(${utf8(LINE_2).length} bytes)`, RECEIVED_2])
      expect(doc.includes(value), value.slice(0, 80)).toBe(true);
  });
});

// §14.4: a witness's cosignature of the checkpoint of §8.8, with RFC 8032 §7.1 TEST 3.
describe("§14.4: a witness cosignature", () => {
  const SEED_3 = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7";
  const PUBLIC_3 = "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025";
  const WITNESS = "witness.example/w1";
  const VKEY = "witness.example/w1+c7da326f+BPxRzY5iGKGjjaR+0AIw8FgIFu0TujMDrF3rkRVIkIAl";
  const TIME = 1767268802;
  const SIGNATURE_HEX =
    "812aa551bf34f94dd5349f1ee54177906e270e3454d0bac866be63f7e81acfc38f15dede6886c40fcdb0a9b485a4d8f6f7d69ec4ee59a8200fb2afb248e8e606";
  const LINE =
    "— witness.example/w1 x9oybwAAAABpVmHCgSqlUb80+U3VNJ8e5UF3kG4nDjRU0LrIZr5j9+gaz8OPFd7eaIbED82wqbSFpNj299aexO5ZqCAPsq+ySOjmBg==\n";
  const witnessKey = (): SigningKey => {
    const k = fixedKey(SEED_3, PUBLIC_3);
    return { ...k, public: publicKeyFromRaw(WITNESS, Buffer.from(PUBLIC_3, "hex")) };
  };
  const TEXT = parseNote(NOTE).text;

  it("the key id (type 0x04) and the verifier key", () => {
    const input = Buffer.concat([
      Buffer.from(`${WITNESS}\n`),
      Buffer.from([0x04]),
      Buffer.from(PUBLIC_3, "hex"),
    ]);
    expect(input.toString("hex")).toBe(
      "7769746e6573732e6578616d706c652f77310a04fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    );
    expect(createHash("sha256").update(input).digest("hex").slice(0, 8)).toBe("c7da326f");
    expect(cosignerKeyOf(witnessKey()).verifierKey).toBe(VKEY);
    expect(parseCosignerKey(VKEY).keyId).toBe("c7da326f");
  });

  it("the signed message, the signature and the cosignature line", () => {
    const message = cosignedMessage(TEXT, TIME);
    expect(message.length).toBe(112);
    expect(message.toString()).toBe(`cosignature/v1\ntime 1767268802\n${TEXT}`);
    const line = cosign(TEXT, witnessKey(), TIME);
    expect(line).toBe(LINE);
    const blob = Buffer.from(LINE.trim().split(" ")[2] as string, "base64");
    expect(blob.length).toBe(76);
    expect(blob.subarray(0, 12).toString("hex")).toBe("c7da326f00000000695661c2");
    expect(blob.subarray(12).toString("hex")).toBe(SIGNATURE_HEX);
  });

  it("the stored note verifies for the agent's key, and counts the witness's cosignature", () => {
    const stored = NOTE + LINE;
    const parsed = parseNote(stored);
    expect(verifyNote(parsed, [key1.public]).valid).toHaveLength(1);
    expect(cosignersOf(stored, [parseCosignerKey(VKEY)])).toEqual([WITNESS]);
    expect(cosignersOf(NOTE, [parseCosignerKey(VKEY)])).toEqual([]);
    const doc = readFileSync(join(ROOT, "docs/integrity-format.md"), "utf8");
    for (const value of [
      VKEY,
      SIGNATURE_HEX,
      LINE.trim(),
      stored.trim(),
      "c7da326f00000000695661c2".slice(8),
    ])
      expect(doc).toContain(value);
    // One flipped bit of the signature: it no longer counts.
    const bad = stored.replace("x9oyb", "x9oyc");
    expect(cosignersOf(bad, [parseCosignerKey(VKEY)])).toEqual([]);
  });
});

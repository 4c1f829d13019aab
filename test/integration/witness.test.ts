import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  cosignatureOf,
  parseCosignerKey,
  verifyCosignature,
} from "../../agent/integrity/cosignature.js";
import { EMPTY_TREE_HASH } from "../../agent/integrity/merkle.js";
import { checkpointText, parseNote, signNote, verifyNote } from "../../agent/integrity/note.js";
import {
  generateSigningKey,
  parseVerifierKey,
  publicKeyFromRaw,
} from "../../agent/integrity/signing.js";
import { parseWitnessConfig } from "../../agent/witness/config.js";
import { startWitness } from "../../agent/witness/start.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { Agent as UndiciAgent, fetch as undiciFetch } from "undici";
import { CLI } from "../helpers/agent.js";
import { makePki } from "../helpers/certs.js";
import {
  addCheckpointBody,
  advanceBody,
  eachTempDir,
  makeLeaves,
  proofBetween,
  rootOf,
  signedCheckpoint,
  startTestWitness,
  type TestLog,
  type TestWitness,
  WITNESS_NAME,
  withWitness,
  witnessYaml,
  writeWitnessKey,
} from "../helpers/witness.js";

/**
 * `audit-agent witness` in-process (C2SP tlog-witness, spec HEAD status codes): real
 * checkpoints signed like the agent's, real Merkle trees and consistency proofs, every
 * status code, the cosignature checked with the witness's .pub, durable state across a
 * restart, forks and rollbacks in /metrics and /healthz, and no rollback under concurrency.
 */

const ORIGIN = "audit.example.com/payments";
const originHash = (origin: string) => createHash("sha256").update(origin).digest("hex");
const witnessKey = generateSigningKey(WITNESS_NAME);
/** A log no test submits to, for the witnesses that only have to start. */
const LOG_A = [{ origin: "a", keys: [generateSigningKey("a").public.verifierKey] }];

/** The cosignature line `line` verified against the .pub, over `text`. */
function cosignatureVerifies(line: string, pubFile: string, text: string): boolean {
  const m = /^\u2014 (\S+) (\S+)\n$/.exec(line);
  if (!m) return false;
  const blob = Buffer.from(m[2] as string, "base64");
  const c = cosignatureOf({
    name: m[1] as string,
    keyId: blob.subarray(0, 4).toString("hex"),
    signature: blob.subarray(4),
  });
  return c !== null && verifyCosignature(c, parseCosignerKey(readFileSync(pubFile, "utf8")), text);
}

describe("witness: add-checkpoint", () => {
  const tmp = eachTempDir();
  let w: TestWitness;
  let log: TestLog;
  let pubFile: string;
  let yaml: string;

  beforeEach(async () => {
    const keys = writeWitnessKey(tmp.path, witnessKey);
    pubFile = keys.pubFile;
    log = { key: generateSigningKey("payments"), origin: ORIGIN, leaves: makeLeaves(12) };
    yaml = witnessYaml({
      keyFile: keys.keyFile,
      stateDir: join(tmp.path, "state"),
      extra: "  max_body_bytes: 4096",
      logs: [{ origin: ORIGIN, keys: [log.key.public.verifierKey] }],
    });
    w = await startTestWitness(yaml);
  });

  afterEach(async () => {
    await w.running.shutdown();
  });

  it("cosigns 0 → 3 → 5 with real proofs; the cosignature verifies with the .pub; GET serves the cosigned note", async () => {
    const r3 = await w.post(await advanceBody(log, 0, 3));
    expect(r3.status).toBe(200);
    expect(r3.text).toMatch(/^\u2014 witness\.test\/w1 [A-Za-z0-9+/]{102}==\n$/);
    const text3 = parseNote(await signedCheckpoint(log, 3)).text;
    expect(cosignatureVerifies(r3.text, pubFile, text3)).toBe(true);

    const r5 = await w.post(await advanceBody(log, 3, 5));
    expect(r5.status).toBe(200);
    const note5 = await signedCheckpoint(log, 5);
    expect(cosignatureVerifies(r5.text, pubFile, parseNote(note5).text)).toBe(true);
    expect(cosignatureVerifies(r5.text, pubFile, text3)).toBe(false);

    const latest = await w.get(`/${originHash(ORIGIN)}/checkpoint`);
    expect(latest.status).toBe(200);
    expect(latest.contentType).toBe("text/plain; charset=utf-8");
    expect(latest.text).toBe(`${note5}${r5.text}`);
    const served = parseNote(latest.text);
    expect(verifyNote(served, [log.key.public]).valid).toHaveLength(1);

    expect((await w.get(`/${originHash("audit.example.com/other")}/checkpoint`)).status).toBe(404);
    const metrics = (await w.get("/metrics")).text;
    expect(metrics).toContain(`audit_witness_cosigned_total{origin="${ORIGIN}"} 2`);
    expect(metrics).toContain(`audit_witness_tree_size{origin="${ORIGIN}"} 5`);
    expect(await w.get("/healthz")).toMatchObject({ status: 200, text: "ok\n" });
  });

  it("keeps the state in one 0600 file per origin, named by SHA-256(origin), in a 0700 directory", async () => {
    expect((await w.post(await advanceBody(log, 0, 4))).status).toBe(200);
    const dir = join(tmp.path, "state");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dir)).toEqual([originHash(ORIGIN)]);
    const file = join(dir, originHash(ORIGIN));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const state = JSON.parse(readFileSync(file, "utf8"));
    expect(state).toMatchObject({ version: 1, origin: ORIGIN, size: 4 });
    expect(state.rootHash).toBe((await rootOf(log, 4)).toString("base64"));
  });

  it("answers 409 with the cosigned size (text/x.tlog.size) when the old size is not it", async () => {
    expect((await w.post(await advanceBody(log, 0, 5))).status).toBe(200);
    for (const old of [0, 3]) {
      const body = addCheckpointBody(
        old,
        old === 0 ? [] : await proofBetween(log, old, 8),
        await signedCheckpoint(log, 8),
      );
      const r = await w.post(body);
      expect(r).toEqual({ status: 409, contentType: "text/x.tlog.size", text: "5\n" });
    }
    expect((await w.get("/metrics")).text).toContain(
      `audit_witness_refused_total{origin="${ORIGIN}",reason="stale_old_size"} 2`,
    );
  });

  it("survives a restart: the new server refuses old size 0 with 409 5", async () => {
    expect((await w.post(await advanceBody(log, 0, 3))).status).toBe(200);
    expect((await w.post(await advanceBody(log, 3, 5))).status).toBe(200);
    const before = (await w.get(`/${originHash(ORIGIN)}/checkpoint`)).text;
    await w.running.shutdown();
    w = await startTestWitness(yaml);
    expect(await w.post(await advanceBody(log, 0, 5))).toEqual({
      status: 409,
      contentType: "text/x.tlog.size",
      text: "5\n",
    });
    expect((await w.get(`/${originHash(ORIGIN)}/checkpoint`)).text).toBe(before);
    expect((await w.post(await advanceBody(log, 5, 9))).status).toBe(200);
  });

  it("refuses a fork with 422, logs it at error level with both trees, and shows it in /metrics and /healthz", async () => {
    expect((await w.post(await advanceBody(log, 0, 5))).status).toBe(200);
    // The same key signs another history: the first 5 leaves differ. A larger tree of it
    // comes with a proof that cannot verify: refused, but not proof of a fork (the proof is
    // not signed: anyone could send a wrong one with a real checkpoint): no alarm.
    const fork: TestLog = { ...log, leaves: makeLeaves(12, "forked") };
    const r = await w.post(await advanceBody(fork, 5, 8));
    expect(r.status).toBe(422);
    expect(r.text).toBe(
      "the consistency proof from size 5 to 8 does not verify (a forked log, or a wrong proof)\n",
    );
    expect((await w.get("/healthz")).status).toBe(200);
    // Same size, another root: two signed trees of one size, the proof of a fork.
    const same = await w.post(addCheckpointBody(5, [], await signedCheckpoint(fork, 5)));
    expect(same).toMatchObject({
      status: 422,
      text: "a checkpoint of size 5 with another root hash\n",
    });

    const metrics = (await w.get("/metrics")).text;
    expect(metrics).toContain(`audit_witness_refused_total{origin="${ORIGIN}",reason="fork"} 1`);
    expect(metrics).toContain(
      `audit_witness_refused_total{origin="${ORIGIN}",reason="invalid_proof"} 1`,
    );
    expect(metrics).toContain(`audit_witness_tree_size{origin="${ORIGIN}"} 5`);
    const health = await w.get("/healthz");
    expect(health.status).toBe(503);
    expect(health.text).toMatch(/^fork: .* log audit\.example\.com\/payments signed a tree/);
    expect(health.text).toContain(
      `signed a tree (size 5, root ${(await rootOf(fork, 5)).toString("base64")}) that does not extend the one cosigned (size 5, root ${(await rootOf(log, 5)).toString("base64")})`,
    );
    // Logged once, at error level, with the evidence.
    const forks = w.logs.filter((l) => l.reason === "fork");
    expect(forks).toHaveLength(1);
    expect(forks[0]).toMatchObject({
      level: 50,
      origin: ORIGIN,
      oldSize: 5,
      size: 5,
      cosignedSize: 5,
      root: (await rootOf(fork, 5)).toString("base64"),
      cosignedRoot: (await rootOf(log, 5)).toString("base64"),
      checkpoint: await signedCheckpoint(fork, 5),
    });
    // Still cosigns the real history.
    expect((await w.post(await advanceBody(log, 5, 6))).status).toBe(200);
  });

  it("counts a smaller signed checkpoint as a rollback (409) and raises a health alarm", async () => {
    expect((await w.post(await advanceBody(log, 0, 5))).status).toBe(200);
    const r = await w.post(await advanceBody(log, 3, 3));
    expect(r).toEqual({ status: 409, contentType: "text/x.tlog.size", text: "5\n" });
    expect((await w.get("/metrics")).text).toContain(
      `audit_witness_refused_total{origin="${ORIGIN}",reason="rollback"} 1`,
    );
    const health = await w.get("/healthz");
    expect(health.status).toBe(503);
    expect(health.text).toMatch(
      /^rollback: .*size 3, root .* smaller than the one cosigned \(size 5/,
    );
  });

  it("cannot be rolled back by concurrent submissions", async () => {
    expect((await w.post(await advanceBody(log, 0, 3))).status).toBe(200);
    // From 3 to each of 4…12 at once, and from 6 and 9 onwards (valid only after one of them).
    const bodies = await Promise.all([
      ...[4, 5, 6, 7, 8, 9, 10, 11, 12].map((n) => advanceBody(log, 3, n)),
      advanceBody(log, 6, 12),
      advanceBody(log, 9, 11),
    ]);
    const replies = await Promise.all(bodies.map((b) => w.post(b)));
    const sizes = [4, 5, 6, 7, 8, 9, 10, 11, 12, 12, 11];
    const cosigned = sizes.filter((_, i) => replies[i]?.status === 200);
    expect(replies.filter((r, i) => i < 9 && r.status === 200)).toHaveLength(1);
    for (const r of replies) expect([200, 409]).toContain(r.status);
    const latest = parseNote((await w.get(`/${originHash(ORIGIN)}/checkpoint`)).text);
    const size = Number(latest.text.split("\n")[1]);
    expect(size).toBe(Math.max(...cosigned));
    const state = JSON.parse(readFileSync(join(tmp.path, "state", originHash(ORIGIN)), "utf8"));
    expect(state.size).toBe(size);
  });

  it("refuses checkpoints without a valid signature by the log's key with 403, ignoring unknown keys", async () => {
    const impostor = generateSigningKey("payments"); // same name, another key: unknown
    const other = { ...log, key: impostor };
    const r1 = await w.post(addCheckpointBody(0, [], await signedCheckpoint(other, 3)));
    expect(r1).toMatchObject({
      status: 403,
      text: "no signature by a key this witness trusts for the log\n",
    });
    // A known key's signature that fails: the whole note is refused, even with a valid one.
    const note = await signedCheckpoint(log, 3);
    const bad = note.replace(/ (\S+)\n$/, (_, b64: string) => {
      const blob = Buffer.from(b64, "base64");
      blob[blob.length - 1] ^= 1;
      return ` ${blob.toString("base64")}\n`;
    });
    const r2 = await w.post(addCheckpointBody(0, [], bad));
    expect(r2.status).toBe(403);
    expect(r2.text).toContain(`the signature of key payments+${log.key.public.keyId}`);
    const both = signNote(parseNote(note).text, [impostor, log.key]);
    expect((await w.post(addCheckpointBody(0, [], both))).status).toBe(200);
    expect((await w.get("/metrics")).text).toContain(
      `audit_witness_refused_total{origin="${ORIGIN}",reason="bad_signature"} 2`,
    );
  });

  it("answers 404 for an unknown origin", async () => {
    const stranger: TestLog = { ...log, origin: "audit.example.com/unknown" };
    const r = await w.post(await advanceBody(stranger, 0, 2));
    expect(r).toMatchObject({
      status: 404,
      text: 'unknown log origin "audit.example.com/unknown"\n',
    });
    expect((await w.get("/metrics")).text).toContain(
      'audit_witness_refused_total{origin="",reason="unknown_log"} 1',
    );
  });

  it("answers 400 for malformed bodies, notes and checkpoints, and old > new", async () => {
    const note = await signedCheckpoint(log, 3);
    const proofLine = (await rootOf(log, 1)).toString("base64");
    const malformed: [string | Uint8Array, string][] = [
      [`old 01\n\n${note}`, 'the first line must be "old <tree size>"'],
      [`old -1\n\n${note}`, 'the first line must be "old <tree size>"'],
      [`new 0\n\n${note}`, 'the first line must be "old <tree size>"'],
      [`old 0\n`, "expected an old size line"],
      [`old 0\n${note}`, 'proof line "audit.example.com/payments" is not the base64'],
      [`old 0\nnot-base64!\n\n${note}`, "is not the base64 of a 32-byte hash"],
      [`old 0\nAAAA\n\n${note}`, "is not the base64 of a 32-byte hash"],
      [`old 0\n${`${proofLine}\n`.repeat(64)}\n${note}`, "at most 63 consistency proof lines"],
      [`old 0\n\n${parseNote(note).text}`, "not a signed note"],
      [`old 4\n\n${note}`, "old size 4 is larger than the checkpoint's"],
      [Buffer.concat([Buffer.from(`old 0\n\n${ORIGIN}\n3\n\xff`, "latin1")]), "not valid UTF-8"],
      [`old 0\n\n${note.replace("\n3\n", "\n3\u0007\n")}`, "no control characters"],
    ];
    for (const [body, message] of malformed) {
      const r = await w.post(body);
      expect(r.status, message).toBe(400);
      expect(r.text, message).toContain(message);
    }
    // "three": signed, so it gets past the signature check to the checkpoint parser.
    const three = signNote(parseNote(note).text.replace("\n3\n", "\nthree\n"), [log.key]);
    const r = await w.post(addCheckpointBody(0, [], three));
    expect(r.status).toBe(400);
    expect(r.text).toContain("a checkpoint has an origin line, a decimal tree size");
  });

  it("answers 422 for a proof where none belongs, a wrong proof, and size 0 without the empty root", async () => {
    const proof = await proofBetween(log, 2, 5);
    const r1 = await w.post(addCheckpointBody(0, proof, await signedCheckpoint(log, 5)));
    expect(r1).toMatchObject({ status: 422, text: "old size 0 takes no consistency proof\n" });

    const zeroBad = signNote(
      checkpointText({ origin: ORIGIN, size: 0, rootHash: await rootOf(log, 1), extensions: [] }),
      [log.key],
    );
    const r2 = await w.post(addCheckpointBody(0, [], zeroBad));
    expect(r2).toMatchObject({
      status: 422,
      text: "a checkpoint of size 0 must have the empty tree's root\n",
    });
    const zero = signNote(
      checkpointText({ origin: ORIGIN, size: 0, rootHash: EMPTY_TREE_HASH, extensions: [] }),
      [log.key],
    );
    expect((await w.post(addCheckpointBody(0, [], zero))).status).toBe(200);

    expect((await w.post(await advanceBody(log, 0, 4))).status).toBe(200);
    const r3 = await w.post(addCheckpointBody(4, proof, await signedCheckpoint(log, 4)));
    expect(r3).toMatchObject({
      status: 422,
      text: "old size equals the tree size: no proof is needed\n",
    });
    const r4 = await w.post(addCheckpointBody(4, [], await signedCheckpoint(log, 7)));
    expect(r4).toMatchObject({
      status: 422,
      text: "a consistency proof from size 4 to 7 is required\n",
    });
    const wrong = await proofBetween(log, 4, 11);
    expect(wrong).toHaveLength(2);
    wrong.reverse();
    const r5 = await w.post(addCheckpointBody(4, wrong, await signedCheckpoint(log, 11)));
    expect(r5).toMatchObject({
      status: 422,
      text: "the consistency proof from size 4 to 11 does not verify (a forked log, or a wrong proof)\n",
    });
    const metrics = (await w.get("/metrics")).text;
    expect(metrics).toContain(
      `audit_witness_refused_total{origin="${ORIGIN}",reason="invalid_proof"} 5`,
    );
    expect(metrics).not.toContain(`reason="fork"`);
  });

  it("keeps and serves only the log's verified signatures, respelled canonically, and its own", async () => {
    const note = await signedCheckpoint(log, 3);
    // A line by a key the witness does not know, and the log's own line respelled with
    // spare padding (both verify or are ignored; neither is the witness's to republish).
    const split = note.lastIndexOf("\n\n");
    const ownLine = note.slice(split + 2);
    const junk = "\u2014 junk.example/x AAAAAAAAAA===\n";
    const respelled = `${ownLine.trimEnd()}=\n`;
    const r = await w.post(
      addCheckpointBody(0, [], `${note.slice(0, split + 2)}${respelled}${junk}`),
    );
    expect(r.status).toBe(200);
    const served = (await w.get(`/${originHash(ORIGIN)}/checkpoint`)).text;
    expect(served).toBe(`${note}${r.text}`);
  });

  it("cosigns the checkpoint text with its extension lines, and re-cosigns the same checkpoint", async () => {
    const note = await signedCheckpoint(log, 2, { extensions: ["ext line one", "ext 2"] });
    const r = await w.post(addCheckpointBody(0, [], note));
    expect(r.status).toBe(200);
    expect(cosignatureVerifies(r.text, pubFile, parseNote(note).text)).toBe(true);
    const again = await w.post(addCheckpointBody(2, [], `${note}${r.text}`));
    expect(again.status).toBe(200);
    // The served note holds one cosignature of this witness: the newest.
    const served = (await w.get(`/${originHash(ORIGIN)}/checkpoint`)).text;
    expect(served).toBe(`${note}${again.text}`);
  });

  it("answers 500 and raises an alarm when the state cannot be saved, cosigning nothing", async () => {
    const dir = join(tmp.path, "state");
    rmSync(dir, { recursive: true });
    writeFileSync(dir, "not a directory");
    const r = await w.post(await advanceBody(log, 0, 3));
    expect(r).toMatchObject({
      status: 500,
      text: "internal error: the checkpoint was not cosigned\n",
    });
    const health = await w.get("/healthz");
    expect(health.status).toBe(503);
    expect(health.text).toMatch(/^state: .*cannot write the state file/);
    expect(
      w.logs.some((l) => l.level === 50 && /cannot save the witness state/.test(String(l.msg))),
    ).toBe(true);
    expect((await w.get(`/${originHash(ORIGIN)}/checkpoint`)).status).toBe(404);
  });

  it("refuses a body larger than max_body_bytes with 413, and other methods and paths", async () => {
    const note = await signedCheckpoint(log, 2);
    const r = await w.post(`old 0\n\n${note}${"x".repeat(5000)}`);
    expect(r.status).toBe(413);
    expect(r.text).toBe("the body is larger than 4096 bytes\n");
    expect((await w.get("/add-checkpoint")).status).toBe(405);
    expect((await w.post("", "/healthz")).status).toBe(405);
    expect((await w.get("/nothing")).status).toBe(404);
  });
});

describe("witness: origin_prefix logs and submission_prefix", () => {
  it("witnesses every origin under a prefix as its own log, at <prefix>/add-checkpoint", async () => {
    const key = generateSigningKey("audit-agent");
    const logs = [{ originPrefix: "otel-audit-agent/", keys: [key.public.verifierKey] }];
    await withWitness(witnessKey, { logs, extra: '  submission_prefix: "/witness"' }, async (w) => {
      const a: TestLog = { key, origin: "otel-audit-agent/chain-a", leaves: makeLeaves(8, "a") };
      const b: TestLog = { key, origin: "otel-audit-agent/chain-b", leaves: makeLeaves(8, "b") };
      const post = (body: string) => w.post(body, "/witness/add-checkpoint");
      expect((await post(await advanceBody(a, 0, 5))).status).toBe(200);
      expect((await post(await advanceBody(b, 0, 2))).status).toBe(200);
      expect((await post(await advanceBody(a, 5, 8))).status).toBe(200);
      expect((await w.post(await advanceBody(b, 2, 3))).status).toBe(404); // no prefix: no such path
      const other: TestLog = { ...a, origin: "other/chain-a" };
      expect((await post(await advanceBody(other, 0, 2))).status).toBe(404);
      const forged: TestLog = { ...a, origin: "otel-audit-agent/c", key: generateSigningKey("x") };
      expect((await post(await advanceBody(forged, 0, 2))).status).toBe(403);
      const metrics = (await w.get("/metrics")).text;
      expect(metrics).toContain('audit_witness_tree_size{origin="otel-audit-agent/chain-a"} 8');
      expect(metrics).toContain('audit_witness_tree_size{origin="otel-audit-agent/chain-b"} 2');
      expect(metrics).toContain(
        'audit_witness_refused_total{origin="otel-audit-agent/*",reason="bad_signature"} 1',
      );
    });
  });
});

describe("witness: TLS", () => {
  const tmp = eachTempDir();

  it("serves add-checkpoint over HTTPS with tls.cert_file and tls.key_file", async () => {
    const pki = makePki(tmp.path);
    const log: TestLog = { key: generateSigningKey("p"), origin: ORIGIN, leaves: makeLeaves(4) };
    const { keyFile } = writeWitnessKey(tmp.path, witnessKey);
    const yaml = (cert: string) =>
      witnessYaml({
        keyFile,
        stateDir: join(tmp.path, "state"),
        extra: `  tls:\n    cert_file: ${JSON.stringify(cert)}\n    key_file: ${JSON.stringify(join(tmp.path, "server.key"))}`,
        logs: [{ origin: ORIGIN, keys: [log.key.public.verifierKey] }],
      });
    const running = await startWitness(
      parseWitnessConfig(yaml(join(tmp.path, "server.crt")), "w.yaml", {}),
      createLogger("silent"),
    );
    try {
      const dispatcher = new UndiciAgent({ connect: { ca: readFileSync(pki.ca) } });
      const r = await undiciFetch(`https://${running.address()}/add-checkpoint`, {
        method: "POST",
        body: await advanceBody(log, 0, 4),
        dispatcher,
      });
      expect(r.status).toBe(200);
      expect(await r.text()).toMatch(/^\u2014 witness\.test\/w1 /);
      await dispatcher.close();
    } finally {
      await running.shutdown();
    }
    await expect(
      startWitness(
        parseWitnessConfig(yaml(join(tmp.path, "missing.crt")), "w.yaml", {}),
        createLogger("silent"),
      ),
    ).rejects.toMatchObject({
      code: "WITNESS_CONFIG_INVALID",
      message: expect.stringContaining("witness.tls.cert_file: cannot read"),
    });
  });
});

describe("witness: start-up refusals", () => {
  const tmp = eachTempDir();

  const config = (keyFile: string) =>
    parseWitnessConfig(
      witnessYaml({ keyFile, stateDir: join(tmp.path, "state"), logs: LOG_A }),
      "witness.yaml",
      {},
    );

  it("refuses a key file that group or others can read", async () => {
    const { keyFile } = writeWitnessKey(tmp.path, witnessKey);
    chmodSync(keyFile, 0o644);
    await expect(startWitness(config(keyFile), createLogger("silent"))).rejects.toMatchObject({
      code: "KEY_FILE_UNSAFE",
    });
  });

  it("refuses a missing key file, naming keygen --witness", async () => {
    await expect(
      startWitness(config(join(tmp.path, "none.key")), createLogger("silent")),
    ).rejects.toMatchObject({
      code: "WITNESS_KEY_UNREADABLE",
      message: expect.stringContaining("keygen --witness"),
    });
  });

  it("refuses a damaged state file instead of starting from size 0", async () => {
    const { keyFile } = writeWitnessKey(tmp.path, witnessKey);
    const first = await startWitness(config(keyFile), createLogger("silent"));
    await first.shutdown();
    const file = join(tmp.path, "state", originHash("a"));
    for (const damage of [
      "{not json",
      JSON.stringify({ version: 1, origin: "a", size: 0 }),
      JSON.stringify({
        version: 1,
        origin: "b",
        size: 0,
        rootHash: EMPTY_TREE_HASH.toString("base64"),
        time: 1,
        note: signNote(
          checkpointText({ origin: "b", size: 0, rootHash: EMPTY_TREE_HASH, extensions: [] }),
          [witnessKey],
        ),
      }),
    ]) {
      writeFileSync(file, damage, { mode: 0o600 });
      await expect(startWitness(config(keyFile), createLogger("silent"))).rejects.toMatchObject({
        code: "WITNESS_STATE_DAMAGED",
        message: expect.stringContaining(file),
      });
    }
  });
});

describe("witness: the sunlight interop vector (FiloSottile/sunlight witness_test.go)", () => {
  const origin =
    "sigsum.org/v1/tree/4d6d8825a6bb689d459628312889dfbb0bcd41b5211d9e1ce768b0ff0309e562";
  const sig = (s: string) => `\u2014 ${origin} ${s}\n`;
  const cp1 = `${origin}\n1\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n${sig("UgIom7fPZTqpxWWhyjWduBvTvGVqsokMbqTArsQilegKoFBJQjUFAmQ0+YeSPM3wfUQMFSzVnnNuWRTYrajXpNUbIQY=")}`;
  const cp3text = `${origin}\n3\nRcCI1Nk56ZcSmIEfIn0SleqtV7uvrlXNccFx595Iwl0=\n`;
  const cp3 = `${cp3text}\n${sig("UgIom2VbtIcdFbwFAy1n7s6IkAxIY6J/GQOTuZF2ORV39d75cbAj2aQYwyJre36kezNobZs4SUUdrcawfAB8WVrx6go=")}`;
  const cp3bad = `${cp3text}\n${sig("UgIom2VbtIcdFbwFAy1n7s6IkAxIY6J/GQOTuZF2ORV39d75cbAj2aQYwyJre36kezNobZs4SUUdrcawfAB8WVrx6gx=")}`;
  const cp5 = `${origin}\n5\nQrtXrQZCCvpIgsSmOsah7HdICzMLLyDfxToMql9WTjY=\n\n${sig("UgIomw/EOJmWi0i1FQsOj+etB7F8IccFam/jgd6wzRns4QPVmyEZtdvl1U2KEmLOZ/ASRcWJi0tW90dJWAShei7sDww=")}`;
  const p1to3 =
    "KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nKgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

  it("gives sunlight's status codes and bodies, in its order", async () => {
    const logKey = publicKeyFromRaw(
      origin,
      Buffer.from("ffdc2d4d98e4124d3feaf788c0c2f9abfd796083d1f0495437f302ec79cf100f", "hex"),
    );
    await withWitness(witnessKey, { logs: [{ origin, keys: [logKey.verifierKey] }] }, async (w) => {
      const steps: [string, number, string][] = [
        [`old 0\n\n${cp1}`, 200, `\u2014 ${WITNESS_NAME} `],
        [`old 1\n${p1to3}\n${cp3bad}`, 403, "does not verify"],
        [`old 1\n${p1to3}\n${cp3.replaceAll("562", "563")}`, 404, "unknown log"],
        [`old 1\n\n${cp3}`, 422, "consistency proof"],
        [
          `old 1\nKgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nKgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABA=\n\n${cp3}`,
          422,
          "consistency proof",
        ],
        [`old 1\n${p1to3}\n${cp3}`, 200, `\u2014 ${WITNESS_NAME} `],
        [
          `old 1\nKgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n+fUDV+k970B4I3uKrqJM4aP1lloPZP8mvr2Z4wRw2LI=\nKgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n${cp5}`,
          409,
          "3\n",
        ],
        [
          `old 3\nKgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nKgMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nwgiIFdZfYNv6WU1OllBKsWnLYIS/DBMqt8Uh/S4OukE=\nKgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n${cp5}`,
          200,
          `\u2014 ${WITNESS_NAME} `,
        ],
        [`old 0\n\n${cp5}`, 409, "5\n"],
        [
          `old 5\n\n${origin}\n5\nQrtXrQZCCvpIgsSmOsah7HdICzMLLyDfxToMql9WTjY=\n`,
          400,
          "signed note",
        ],
      ];
      for (const [body, status, text] of steps) {
        const r = await w.post(body);
        expect(r.status, body).toBe(status);
        expect(r.text, body).toContain(text);
      }
    });
  });
});

describe("witness: the CLI", () => {
  const tmp = eachTempDir();

  it("keygen --witness writes a 0600 key and a .pub holding the cosigner key, and says who gets it", () => {
    const r = spawnSync(
      process.execPath,
      [CLI, "keygen", "--witness", "--out", tmp.path, "--name", "w1"],
      {
        encoding: "utf8",
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(statSync(join(tmp.path, "w1.key")).mode & 0o777).toBe(0o600);
    const pub = readFileSync(join(tmp.path, "w1.pub"), "utf8");
    const cosigner = parseCosignerKey(pub);
    expect(cosigner.name).toBe("w1");
    expect(r.stdout).toContain(cosigner.verifierKey);
    expect(r.stdout).toContain("extensions.signing.witnesses[].key");
    expect(r.stdout).toContain("verify --witness");
    // Not a log's verifier key: a witness key cannot be trusted as a signing key by mistake.
    expect(() => parseVerifierKey(pub)).toThrow(/not an Ed25519 \(algorithm 1\) key/);
  });

  it("witness --config serves until SIGTERM, then exits 0; a bad config exits 2 naming the field", async () => {
    const { keyFile } = writeWitnessKey(tmp.path, witnessKey);
    const configFile = join(tmp.path, "witness.yaml");
    writeFileSync(
      configFile,
      witnessYaml({ keyFile, stateDir: join(tmp.path, "state"), logs: LOG_A }),
    );
    const child = spawn(process.execPath, [CLI, "witness", "--config", configFile], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    const started = new Promise<string>((resolve, reject) => {
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk;
        const m = /"address":"([^"]+)".*"msg":"witness started"/.exec(stderr);
        if (m) resolve(m[1] as string);
      });
      child.once("exit", () => reject(new Error(`exited before starting: ${stderr}`)));
    });
    const address = await started;
    expect((await fetch(`http://${address}/healthz`)).status).toBe(200);
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);

    writeFileSync(configFile, readFileSync(configFile, "utf8").replace("listen:", "listn:"));
    const bad = spawnSync(process.execPath, [CLI, "witness", "--config", configFile], {
      encoding: "utf8",
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(`${configFile}:4:3: witness.listn: unknown key "listn"`);
  });
});

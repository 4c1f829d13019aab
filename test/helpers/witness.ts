import { Writable } from "node:stream";
import { join } from "node:path";
import pino from "pino";
import { afterEach, beforeEach } from "vitest";
import { cosignerKeyOf } from "../../agent/integrity/cosignature.js";
import { leafHash } from "../../agent/integrity/format.js";
import { writeKeyPair } from "../../agent/integrity/key-files.js";
import { consistencyProof, leavesSource, treeHash } from "../../agent/integrity/merkle.js";
import { checkpointText, signNote } from "../../agent/integrity/note.js";
import type { SigningKey } from "../../agent/integrity/signing.js";
import { parseWitnessConfig } from "../../agent/witness/config.js";
import { type RunningWitness, startWitness } from "../../agent/witness/start.js";
import { makeTempDir } from "./agent.js";

/**
 * A witness in-process on a free port, and logs to submit to it: real Merkle trees over
 * leaves, checkpoints signed as the agent signs them, add-checkpoint bodies with real
 * consistency proofs.
 */

export const WITNESS_NAME = "witness.test/w1";

/** A log: its signing key, origin and leaves (a fork is another log with the same key and origin). */
export interface TestLog {
  key: SigningKey;
  origin: string;
  leaves: Buffer[];
}

export function makeLeaves(count: number, tag = "leaf"): Buffer[] {
  return Array.from({ length: count }, (_, i) => leafHash(Buffer.from(`${tag} ${i}`)));
}

export async function rootOf(log: TestLog, size: number): Promise<Buffer> {
  return Buffer.from(await treeHash(size, leavesSource(log.leaves)));
}

/** The log's signed checkpoint note at `size`. */
export async function signedCheckpoint(
  log: TestLog,
  size: number,
  o: { extensions?: string[]; keys?: SigningKey[] } = {},
): Promise<string> {
  const text = checkpointText({
    origin: log.origin,
    size,
    rootHash: await rootOf(log, size),
    extensions: o.extensions ?? [],
  });
  return signNote(text, o.keys ?? [log.key]);
}

export async function proofBetween(log: TestLog, oldSize: number, size: number): Promise<Buffer[]> {
  return (await consistencyProof(oldSize, size, leavesSource(log.leaves))).map((h) =>
    Buffer.from(h),
  );
}

export function addCheckpointBody(oldSize: number, proof: readonly Buffer[], note: string): string {
  return `old ${oldSize}\n${proof.map((p) => `${p.toString("base64")}\n`).join("")}\n${note}`;
}

/** The body advancing `log` from `oldSize` to `size`, with the real proof. */
export async function advanceBody(log: TestLog, oldSize: number, size: number): Promise<string> {
  return addCheckpointBody(
    oldSize,
    await proofBetween(log, oldSize, size),
    await signedCheckpoint(log, size),
  );
}

/** Writes the witness's key pair (`w.key`, `w.pub` with the cosigner key) into `dir`. */
export function writeWitnessKey(
  dir: string,
  key: SigningKey,
): { keyFile: string; pubFile: string } {
  const keyFile = join(dir, "w.key");
  const pubFile = writeKeyPair(keyFile, key, cosignerKeyOf(key).verifierKey);
  return { keyFile, pubFile };
}

export interface TestWitness {
  running: RunningWitness;
  url: string;
  /** The witness's log lines, parsed. */
  logs: Record<string, unknown>[];
  post(body: string | Uint8Array, path?: string): Promise<Reply>;
  get(path: string): Promise<Reply>;
}

export interface Reply {
  status: number;
  contentType: string | null;
  text: string;
}

/** Starts a witness with the config `yaml` (logging into `logs`). */
export async function startTestWitness(yaml: string): Promise<TestWitness> {
  const config = parseWitnessConfig(yaml, "witness.yaml", {});
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n").filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  const running = await startWitness(config, pino({ level: "debug" }, sink));
  const url = `http://${running.address()}`;
  const reply = async (res: Response): Promise<Reply> => ({
    status: res.status,
    contentType: res.headers.get("content-type"),
    text: await res.text(),
  });
  return {
    running,
    url,
    logs,
    post: async (body, path = "/add-checkpoint") =>
      reply(await fetch(`${url}${path}`, { method: "POST", body })),
    get: async (path) => reply(await fetch(`${url}${path}`)),
  };
}

/** A log entry of the config: exact origin or origin_prefix, and the log's verifier keys. */
export interface LogEntry {
  origin?: string;
  originPrefix?: string;
  keys: string[];
}

/** The config of a witness on a free port with its key and state as given. */
export function witnessYaml(o: {
  keyFile: string;
  stateDir: string;
  logs: LogEntry[];
  /** More settings, YAML lines indented by two. */
  extra?: string;
}): string {
  const entry = (l: LogEntry) =>
    [
      l.origin !== undefined
        ? `    - origin: ${JSON.stringify(l.origin)}`
        : `    - origin_prefix: ${JSON.stringify(l.originPrefix)}`,
      `      keys: [${l.keys.map((k) => JSON.stringify(k)).join(", ")}]`,
    ].join("\n");
  return [
    "witness:",
    `  key_file: ${JSON.stringify(o.keyFile)}`,
    `  state_dir: ${JSON.stringify(o.stateDir)}`,
    "  listen: 127.0.0.1:0",
    ...(o.extra ? [o.extra] : []),
    "  logs:",
    ...o.logs.map(entry),
    "",
  ].join("\n");
}

/** A fresh temporary directory for each test of the describe block that calls this. */
export function eachTempDir(): { readonly path: string } {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => {
    tmp = makeTempDir("witness-test-");
  });
  afterEach(() => tmp.cleanup());
  return {
    get path() {
      return tmp.path;
    },
  };
}

/** Runs `fn` against a witness of `logs` (key `witnessKey`) in a temporary directory. */
export async function withWitness(
  witnessKey: SigningKey,
  o: { logs: LogEntry[]; extra?: string },
  fn: (w: TestWitness) => Promise<void>,
): Promise<void> {
  const tmp = makeTempDir("witness-test-");
  const { keyFile } = writeWitnessKey(tmp.path, witnessKey);
  const w = await startTestWitness(
    witnessYaml({ keyFile, stateDir: join(tmp.path, "state"), ...o }),
  );
  try {
    await fn(w);
  } finally {
    await w.running.shutdown();
    tmp.cleanup();
  }
}

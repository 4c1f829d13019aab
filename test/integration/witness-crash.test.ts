import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Agent as HttpDispatcher, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import {
  cosignatureOf,
  cosignerKeyOf,
  verifyCosignature,
} from "../../agent/integrity/cosignature.js";
import {
  consistencyProof,
  type Hash,
  memoLeavesSource,
  treeHash,
} from "../../agent/integrity/merkle.js";
import { checkpointText, parseNote, signNote, verifyNote } from "../../agent/integrity/note.js";
import { generateSigningKey, type SigningKey } from "../../agent/integrity/signing.js";
import { originHash } from "../../agent/witness/state.js";
import { makeTempDir } from "../helpers/agent.js";
import { deriveSeed, prng, type Rng, testSeed } from "../helpers/prng.js";
import {
  addCheckpointBody,
  makeLeaves,
  WITNESS_NAME,
  witnessYaml,
  writeWitnessKey,
} from "../helpers/witness.js";
import { spawnWitness, type WitnessChild } from "../helpers/witness-proc.js";

/**
 * The witness's state survives SIGKILL. The built witness (`audit-agent witness`, a child
 * process) is killed at random instants while clients submit growing checkpoints of a few
 * logs (two clients per log, racing: one gets 200, the other 409 and catches up), and
 * restarted on the same state directory, many times over. After every kill each state file
 * parses and holds a size some client submitted; after every restart the witness starts (a
 * damaged state file would stop it) and serves, for every log, a cosigned checkpoint at least
 * as large as the largest it acknowledged with a 200 (never rolled back), of a size that was
 * submitted, with the log's root at that size and a valid cosignature. At the end every log
 * still advances from the size the witness has.
 */

const SEED = testSeed("test/integration/witness-crash.test.ts");
const ITERATIONS = 16;
const LOGS = 3;
const CLIENTS_PER_LOG = 2;
const LEAVES = 16384;
const PREFIX = "crash.example/";

interface Log {
  origin: string;
  source: (start: number, end: number) => Hash;
  /** Every size some client sent a checkpoint of. */
  submitted: Set<number>;
  /** The largest size the witness answered 200 for. */
  acked: number;
  /** The size the witness served at the last restart. */
  seen: number;
}

async function rootAt(log: Log, size: number): Promise<Buffer> {
  return Buffer.from(await treeHash(size, log.source));
}

async function body(log: Log, key: SigningKey, oldSize: number, size: number): Promise<string> {
  const proof = await consistencyProof(oldSize, size, log.source);
  const text = checkpointText({
    origin: log.origin,
    size,
    rootHash: await rootAt(log, size),
    extensions: [],
  });
  return addCheckpointBody(
    oldSize,
    proof.map((h) => Buffer.from(h)),
    signNote(text, [key]),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("witness: SIGKILL", () => {
  const children: WitnessChild[] = [];
  const cleanups: (() => void)[] = [];

  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => c.kill("SIGKILL")));
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  it(`keeps every acknowledged cosignature and never a torn state across ${ITERATIONS} kills (seed ${SEED.hex})`, async () => {
    const tmp = makeTempDir("witness-crash-");
    cleanups.push(() => tmp.cleanup());
    const witnessKey = generateSigningKey(WITNESS_NAME);
    const cosigner = cosignerKeyOf(witnessKey);
    const logKey = generateSigningKey("crash.example");
    const stateDir = join(tmp.path, "state");
    const configFile = join(tmp.path, "witness.yaml");
    writeFileSync(
      configFile,
      witnessYaml({
        keyFile: writeWitnessKey(tmp.path, witnessKey).keyFile,
        stateDir,
        logs: [{ originPrefix: PREFIX, keys: [logKey.public.verifierKey] }],
      }),
    );
    const logs: Log[] = Array.from({ length: LOGS }, (_, i) => {
      const origin = `${PREFIX}log-${i}`;
      return {
        origin,
        source: memoLeavesSource(makeLeaves(LEAVES, origin)),
        submitted: new Set(),
        acked: 0,
        seen: 0,
      };
    });
    const unexpected: string[] = [];
    let sent = 0;
    const rng = SEED.rng;

    /** One client of `log`: submits from the size it believes the witness has until stopped. */
    const client = async (
      log: Log,
      crng: Rng,
      url: string,
      dispatcher: HttpDispatcher,
      stop: { now: boolean },
    ) => {
      let believed = log.seen;
      while (!stop.now) {
        const size = Math.min(LEAVES, believed + 1 + crng.int(5));
        if (size <= believed) return;
        const b = await body(log, logKey, believed, size);
        log.submitted.add(size);
        sent++;
        let status: number;
        let text: string;
        try {
          const res = await request(`${url}/add-checkpoint`, {
            method: "POST",
            body: b,
            dispatcher,
          });
          status = res.statusCode;
          text = await res.body.text();
        } catch {
          return; // the witness died with the request: outcome unknown
        }
        if (status === 200) {
          log.acked = Math.max(log.acked, size);
          believed = size;
        } else if (status === 409) believed = Number(text);
        else unexpected.push(`${log.origin} ${believed}→${size}: ${status} ${text.trim()}`);
      }
    };

    /** While the witness is down: every state file parses and holds a submitted size. */
    const checkFiles = () => {
      for (const log of logs) {
        const file = join(stateDir, originHash(log.origin));
        if (!existsSync(file)) {
          expect(log.acked, `${log.origin}: acknowledged but no state file`).toBe(0);
          continue;
        }
        const text = readFileSync(file, "utf8");
        let state: { origin: string; size: number };
        try {
          state = JSON.parse(text) as typeof state;
        } catch (err) {
          throw new Error(`${log.origin}: torn state file (${(err as Error).message}): ${text}`);
        }
        expect(state.origin).toBe(log.origin);
        expect(state.size, `${log.origin}: state file behind a 200`).toBeGreaterThanOrEqual(
          log.acked,
        );
        expect(log.submitted.has(state.size), `${log.origin}: size ${state.size} never sent`).toBe(
          true,
        );
      }
    };

    /** After a restart: what the witness serves for each log. */
    const checkServed = async (url: string) => {
      expect(readdirSync(stateDir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
      for (const log of logs) {
        const res = await request(`${url}/${originHash(log.origin)}/checkpoint`);
        const text = await res.body.text();
        if (res.statusCode === 404) {
          expect(log.acked, `${log.origin}: 200 given, then nothing served`).toBe(0);
          continue;
        }
        expect(res.statusCode).toBe(200);
        const note = parseNote(text);
        const [origin, sizeLine, root] = note.text.split("\n");
        const size = Number(sizeLine);
        expect(origin).toBe(log.origin);
        expect(size, `${log.origin}: rolled back below a 200`).toBeGreaterThanOrEqual(log.acked);
        expect(size, `${log.origin}: rolled back below a restart`).toBeGreaterThanOrEqual(log.seen);
        expect(log.submitted.has(size), `${log.origin}: size ${size} never sent`).toBe(true);
        expect(root).toBe((await rootAt(log, size)).toString("base64"));
        expect(verifyNote(note, [logKey.public]).valid).toHaveLength(1);
        const cosignatures = note.signatures
          .filter((s) => s.name === WITNESS_NAME)
          .map((s) => cosignatureOf(s));
        expect(cosignatures).toHaveLength(1);
        expect(verifyCosignature(cosignatures[0]!, cosigner, note.text)).toBe(true);
        log.seen = size;
      }
    };

    const start = async (): Promise<{ w: WitnessChild; url: string }> => {
      const w = spawnWitness(configFile);
      children.push(w);
      const url = `http://${await w.started}`;
      return { w, url };
    };

    let startupKills = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      if (rng.chance(0.2)) {
        // Killed while starting: reading the state, removing a temporary file, or just serving.
        const w = spawnWitness(configFile);
        children.push(w);
        await sleep(rng.int(250));
        await w.kill();
        startupKills++;
        checkFiles();
      }
      const { w, url } = await start();
      await checkServed(url);
      const dispatcher = new HttpDispatcher({ keepAliveTimeout: 10_000 });
      const stop = { now: false };
      const running = logs.flatMap((log, l) =>
        Array.from({ length: CLIENTS_PER_LOG }, (_, c) =>
          client(log, prng(deriveSeed(SEED.seed, i, l, c)), url, dispatcher, stop),
        ),
      );
      await sleep(30 + rng.int(600));
      await w.kill();
      stop.now = true;
      await Promise.all(running);
      await dispatcher.destroy();
      checkFiles();
    }

    // A last start: every log advances from the size the witness has.
    const { w, url } = await start();
    await checkServed(url);
    for (const log of logs) {
      const res = await request(`${url}/add-checkpoint`, {
        method: "POST",
        body: await body(log, logKey, log.seen, log.seen + 1),
      });
      expect(res.statusCode, await res.body.text()).toBe(200);
    }
    expect(await w.kill("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(unexpected).toEqual([]);
    console.log(
      `[witness-crash] seed ${SEED.hex}: ${ITERATIONS} kills under load, ${startupKills} while starting; ${sent} requests; acknowledged ${logs.map((l) => l.acked).join(", ")}`,
    );
  });
});

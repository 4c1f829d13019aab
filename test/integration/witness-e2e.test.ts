import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cosignatureOf, parseCosignerKey } from "../../agent/integrity/cosignature.js";
import { parseNote } from "../../agent/integrity/note.js";
import {
  type ChildAgent,
  freePort,
  killAgent,
  makeTempDir,
  postAuditRecords,
  spawnAgent,
  testConfigYaml,
  verifyOutputArgs,
  waitFor,
  runCli,
} from "../helpers/agent.js";
import { spawnWitness, type WitnessChild } from "../helpers/witness-proc.js";

/**
 * Witnessing end to end with real processes (issue 15): an agent and two witnesses, each
 * `audit-agent witness` in its own process with its own key and state. A quorum of two is
 * met; a witness SIGKILLed for a while, then restarted on its state, catches up with one
 * consistency proof over every batch it missed; the agent's WAL replaced by a forked chain
 * with the same origin and key (what someone who holds the agent's host can do) is refused
 * by the witnesses and reported by `verify --witness`; and the newest batches deleted from
 * the backend are `truncated` against the witnesses, with no checkpoint kept by hand.
 */

const ORIGIN = "audit.e2e/payments";
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface WitnessProcess {
  name: string;
  url: string;
  pub: string;
  start(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** A witness in its own directory and process, on a fixed port, following ORIGIN. */
async function witness(dir: string, name: string, agentPub: string): Promise<WitnessProcess> {
  const home = join(dir, name);
  mkdirSync(home, { recursive: true });
  const keygen = await runCli(["keygen", "--witness", "--out", home, "--name", name]);
  expect(keygen.status, keygen.stderr).toBe(0);
  const port = await freePort();
  const config = join(home, "witness.yaml");
  writeFileSync(
    config,
    `witness:
  key_file: ${join(home, `${name}.key`)}
  state_dir: ${join(home, "state")}
  listen: 127.0.0.1:${port}
  log_level: info
  logs:
    - origin: ${ORIGIN}
      keys: ["${agentPub}"]
`,
  );
  let child: WitnessChild | null = null;
  const w: WitnessProcess = {
    name,
    url: `http://127.0.0.1:${port}`,
    pub: join(home, `${name}.pub`),
    async start() {
      child = spawnWitness(config);
      await child.started;
    },
    async kill(signal = "SIGKILL") {
      await child?.kill(signal);
    },
  };
  cleanups.push(() => w.kill());
  await w.start();
  return w;
}

/** The agent, as a process, asking both witnesses, a quorum of two. */
async function agentWith(dir: string, witnesses: WitnessProcess[]): Promise<ChildAgent> {
  const list = witnesses
    .map((w) => `      - url: ${w.url}\n        key: "${readFileSync(w.pub, "utf8").trim()}"\n`)
    .join("");
  const yaml = testConfigYaml({ dir, grpc: false }).replace(
    "    batch:\n",
    `    origin: ${ORIGIN}\n    witnesses:\n${list}    witness_quorum: 2\n    witness_wait: 1s\n    batch:\n`,
  );
  const a = await spawnAgent(yaml, dir);
  cleanups.push(async () => {
    await killAgent(a);
  });
  return a;
}

/** The checkpoint notes the file exporter stored, oldest first. */
function storedCheckpoints(dir: string): string[] {
  const out = join(dir, "out");
  return readdirSync(out).flatMap((chain) =>
    readdirSync(join(out, chain))
      .filter((n) => n.startsWith("manifests-"))
      .sort()
      .flatMap((f) =>
        readFileSync(join(out, chain, f), "utf8")
          .split("\n")
          .filter(Boolean)
          .flatMap((l) => {
            const cp = (JSON.parse(l) as { checkpoint: string | null }).checkpoint;
            return cp ? [cp] : [];
          }),
      ),
  );
}

/** The names of the witnesses whose cosignature lines a stored note carries. */
function cosignedBy(note: string): string[] {
  return parseNote(note)
    .signatures.filter((s) => cosignatureOf(s) !== null)
    .map((s) => s.name);
}

/** Posts `batches` requests of 20 records from `from`, waiting for each to be delivered. */
async function send(a: ChildAgent, from: number, batches: number): Promise<number> {
  for (let i = 0; i < batches; i++) {
    const started = Date.now();
    expect(await postAuditRecords(a.httpUrl, from + i * 20, 20)).toBe(200);
    // Acknowledgements never wait for witnesses.
    expect(Date.now() - started).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 60)); // one batch each (timeout 20 ms)
  }
  return from + batches * 20;
}

describe("an agent and two witnesses, as processes", () => {
  it("quorum, a witness down and back, a forked WAL refused and reported, a removed tail caught", async () => {
    const tmp = makeTempDir("witness-e2e-");
    cleanups.push(tmp.cleanup);
    const keys = await runCli(["keygen", "--out", join(tmp.path, "keys"), "--name", "signing"]);
    expect(keys.status, keys.stderr).toBe(0);
    const agentPub = readFileSync(join(tmp.path, "keys", "signing.pub"), "utf8").trim();
    const w1 = await witness(tmp.path, "witness.e2e-w1", agentPub);
    const w2 = await witness(tmp.path, "witness.e2e-w2", agentPub);
    const both = ["--witness", w1.pub, "--witness", w2.pub];
    let agent = await agentWith(tmp.path, [w1, w2]);

    // Quorum met: every checkpoint exported with both cosignatures.
    let next = await send(agent, 0, 5);
    await waitFor(() => storedCheckpoints(tmp.path).length >= 5, 10_000, "5 checkpoints exported");
    for (const note of storedCheckpoints(tmp.path))
      expect(cosignedBy(note).sort()).toEqual([w1.name, w2.name]);

    // w2 down for a while: batches go out with w1's cosignature alone, after the wait.
    const w2Size = await cosignedSize(w2);
    expect(w2Size).toBeGreaterThan(0);
    await w2.kill();
    next = await send(agent, next, 4);
    await waitFor(
      () => cosignedBy(storedCheckpoints(tmp.path).at(-1) as string).join() === w1.name,
      15_000,
      "a checkpoint exported with one cosignature",
    );
    const whileDown = storedCheckpoints(tmp.path).length;
    // Back, on the state it had: it catches up with one proof over every batch it missed
    // (the agent retries it with backoff; batches keep coming meanwhile).
    await w2.start();
    // It restarted without forgetting: the same latest cosigned checkpoint as before.
    expect(await cosignedSize(w2)).toBe(w2Size);
    const deadline = Date.now() + 25_000;
    let caughtUp = false;
    while (!caughtUp && Date.now() < deadline) {
      next = await send(agent, next, 1);
      await new Promise((r) => setTimeout(r, 400));
      const all = storedCheckpoints(tmp.path);
      caughtUp = all.length > whileDown && cosignedBy(all.at(-1) as string).length === 2;
    }
    expect(caughtUp, "both cosignatures again after the restart").toBe(true);
    await killAgent(agent, "SIGTERM");
    const clean = await runCli(verifyOutputArgs(tmp.path, ...both));
    expect(clean.status, clean.stdout).toBe(0);

    // The newest batches deleted from the backend: consistent and cosigned on its own, but
    // the witnesses cosigned more. No checkpoint kept by hand is needed.
    const backup = join(tmp.path, "out-backup");
    rmSync(backup, { recursive: true, force: true });
    cpSync(join(tmp.path, "out"), backup, { recursive: true });
    cutLastBatches(tmp.path, 2);
    const cut = await runCli(verifyOutputArgs(tmp.path, ...both, "--witness-url", w1.url));
    expect(cut.status).toBe(1);
    expect(findingCategories(cut.stdout)).toContain("truncated");
    rmSync(join(tmp.path, "out"), { recursive: true });
    cpSync(backup, join(tmp.path, "out"), { recursive: true });

    // Whoever holds the host replaces the WAL (and its anchor) with a forked chain: same key,
    // same origin, another history. The witnesses refuse it; verify reports the fork.
    rmSync(join(tmp.path, "wal"), { recursive: true });
    rmSync(join(tmp.path, "wal.anchor"), { force: true });
    agent = await agentWith(tmp.path, [w1, w2]);
    await send(agent, 5000, 15);
    await waitFor(
      () => agent.logs.some((l) => l.includes("witness refused the checkpoint")),
      15_000,
      "the agent's log line for a refused checkpoint",
    );
    await killAgent(agent, "SIGTERM");
    const forked = await runCli(verifyOutputArgs(tmp.path, ...both, "--witness-url", w1.url));
    expect(forked.status).toBe(1);
    const findings = JSON.parse(forked.stdout) as {
      findings: Array<{ category: string; chainId: string; detail: string }>;
    };
    expect(findings.findings.some((f) => f.category === "unwitnessed")).toBe(true);
    expect(
      findings.findings.some((f) => f.category === "modified" && /a fork/.test(f.detail)),
    ).toBe(true);
    // The witness's key verifies its cosignatures: the .pub is a cosigner key.
    expect(parseCosignerKey(readFileSync(w1.pub, "utf8")).name).toBe(w1.name);
  }, 120_000);
});

/** The tree size of the latest checkpoint a witness cosigned for ORIGIN (its monitoring GET). */
async function cosignedSize(w: WitnessProcess): Promise<number> {
  const hash = createHash("sha256").update(ORIGIN).digest("hex");
  const res = await fetch(`${w.url}/${hash}/checkpoint`);
  expect(res.status).toBe(200);
  return Number((await res.text()).split("\n")[1]);
}

function findingCategories(stdout: string): string[] {
  return (JSON.parse(stdout) as { findings: Array<{ category: string }> }).findings.map(
    (f) => f.category,
  );
}

/** Removes the last `n` batches (their manifest lines and records) from the file output. */
function cutLastBatches(dir: string, n: number): void {
  const out = join(dir, "out");
  const chain = readdirSync(out)[0] as string;
  const names = readdirSync(join(out, chain)).sort();
  const manifests = names.filter((x) => x.startsWith("manifests-")).at(-1) as string;
  const mLines = readFileSync(join(out, chain, manifests), "utf8")
    .split("\n")
    .filter(Boolean);
  const firstCut = JSON.parse(mLines.at(-n) as string) as { manifest: { firstSeq: string } };
  writeFileSync(join(out, chain, manifests), `${mLines.slice(0, -n).join("\n")}\n`);
  const records = names.filter((x) => x.startsWith("records-")).at(-1) as string;
  const keep = readFileSync(join(out, chain, records), "utf8")
    .split("\n")
    .filter(Boolean)
    .filter(
      (l) => Number((JSON.parse(l) as { seq: string }).seq) < Number(firstCut.manifest.firstSeq),
    );
  writeFileSync(join(out, chain, records), `${keep.join("\n")}\n`);
}

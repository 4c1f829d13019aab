import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import {
  cosignatureOf,
  cosignerKeyOf,
  parseCosignerKey,
  verifyCosignature,
} from "../../agent/integrity/cosignature.js";
import { writeKeyPair } from "../../agent/integrity/key-files.js";
import { parseNote } from "../../agent/integrity/note.js";
import { cosignersOf } from "../../agent/verify/verify-checkpoints.js";
import { generateSigningKey } from "../../agent/integrity/signing.js";
import { type RunningAgent, startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { parseWitnessConfig } from "../../agent/witness/config.js";
import { type RunningWitness, startWitness } from "../../agent/witness/start.js";
import {
  makeTempDir,
  postAuditRecords,
  testConfigYaml,
  verifyOutputArgs,
  waitFor,
  runCli,
} from "../helpers/agent.js";

/**
 * The agent asks a real witness (audit-agent witness, in-process) to cosign each checkpoint
 * (issue 15): every batch reaches the backend with its checkpoint cosigned; `verify
 * --witness` requires the cosignatures, and with `--witness-url` catches a removed tail and
 * a history rewritten and re-signed with the agent's own key; a witness that is down holds
 * nothing acknowledged back.
 */

const ORIGIN = "audit.test/payments";
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A witness following ORIGIN, signed by `agentKey`; its cosigner .pub file. */
async function witness(dir: string, agentVerifierKey: string) {
  const key = generateSigningKey("witness.test/w1");
  writeKeyPair(join(dir, "witness", "witness.key"), key);
  const config = parseWitnessConfig(
    `witness:
  key_file: ${join(dir, "witness", "witness.key")}
  state_dir: ${join(dir, "witness", "state")}
  listen: 127.0.0.1:0
  log_level: error
  logs:
    - origin: ${ORIGIN}
      keys: ["${agentVerifierKey}"]
`,
    "witness.yaml",
    {},
  );
  const running: RunningWitness = await startWitness(config, createLogger("error"));
  cleanups.push(() => running.shutdown());
  const pub = join(dir, "witness.pub");
  writeFileSync(pub, `${running.cosigner.verifierKey}\n`);
  return { running, pub, url: `http://${running.address()}` };
}

/** An agent (test config) signing with `<dir>/keys/signing.key`, asking `witnessUrl`. */
async function agent(
  dir: string,
  witnessUrl: string,
  witnessKey: string,
  o: { keyFile?: string; extra?: string; batchTimeout?: string } = {},
): Promise<{ agent: RunningAgent; url: string }> {
  const extra = o.extra ?? "";
  const yaml = testConfigYaml({ dir, grpc: false, keyFile: o.keyFile })
    .replace("      timeout: 20ms\n", `      timeout: ${o.batchTimeout ?? "20ms"}\n`)
    .replace(
      "    batch:\n",
      `    origin: ${ORIGIN}\n    witnesses:\n      - url: ${witnessUrl}\n        key: "${witnessKey}"\n${extra}    batch:\n`,
    )
    .replace("extensions:\n", "extensions:\n  health_check:\n    endpoint: 127.0.0.1:0\n")
    .replace("service:\n", "service:\n  extensions: [health_check]\n");
  const a = await startAgent(parseConfig(yaml, "agent.yaml", {}), createLogger("error"));
  cleanups.push(() => a.shutdown(2000).then(() => undefined));
  return { agent: a, url: `http://${a.addresses().otlp?.http}/v1/logs` };
}

function agentKey(dir: string): string {
  const key = generateSigningKey("audit-agent");
  writeKeyPair(join(dir, "keys", "signing.key"), key);
  return key.public.verifierKey;
}

async function verify(dir: string, ...args: string[]) {
  const run = await runCli(verifyOutputArgs(dir, ...args));
  return {
    status: run.status,
    report: JSON.parse(run.stdout || "{}") as Report,
    stderr: run.stderr,
  };
}

interface Report {
  ok: boolean;
  chains: Array<{
    chainId: string;
    latestCheckpoint: { size: number; cosigners: string[] } | null;
  }>;
  findings: Array<{ category: string; detail: string }>;
}

/** The manifest lines the file exporter wrote, parsed. */
function manifestLines(dir: string): Array<{ checkpoint: string | null }> {
  const out = join(dir, "out");
  const [chain] = readdirSync(out);
  const files = readdirSync(join(out, chain as string)).filter((n) => n.startsWith("manifests-"));
  return files.flatMap((f) =>
    readFileSync(join(out, chain as string, f), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { checkpoint: string | null }),
  );
}

describe("an agent with a witness", () => {
  it("exports every checkpoint cosigned; verify --witness requires it, and with --witness-url catches a removed tail", async () => {
    const tmp = makeTempDir("witnessing-");
    cleanups.push(tmp.cleanup);
    const w = await witness(tmp.path, agentKey(tmp.path));
    const a = await agent(tmp.path, w.url, w.running.cosigner.verifierKey);
    for (let i = 0; i < 5; i++) {
      expect(await postAuditRecords(a.url, i * 20, 20)).toBe(200);
      await waitFor(
        () => a.agent.deliveries[0]?.deliveredThrough === i * 20 + 19,
        10_000,
        "delivery",
      );
    }
    await a.agent.shutdown(2000);

    // Every checkpoint the backend holds carries the witness's valid cosignature.
    const cosigner = parseCosignerKey(readFileSync(w.pub, "utf8"));
    const checkpoints = manifestLines(tmp.path).flatMap((m) =>
      m.checkpoint ? [m.checkpoint] : [],
    );
    expect(checkpoints.length).toBeGreaterThanOrEqual(5);
    for (const note of checkpoints) {
      const parsed = parseNote(note);
      const c = parsed.signatures.map(cosignatureOf).find((x) => x?.name === cosigner.name);
      expect(c && verifyCosignature(c, cosigner, parsed.text), note).toBe(true);
    }

    const clean = await verify(tmp.path, "--witness", w.pub, "--witness-url", w.url);
    expect(clean.status, clean.stderr).toBe(0);
    expect(clean.report.chains[0]?.latestCheckpoint).toMatchObject({
      size: 100,
      cosigners: ["witness.test/w1"],
    });

    // Another witness's key: the checkpoints are not cosigned by it.
    const otherPub = join(tmp.path, "other.pub");
    writeFileSync(otherPub, `${parseCosignerKey(generateCosignerPub()).verifierKey}\n`);
    const other = await verify(tmp.path, "--witness", otherPub);
    expect(other.status).toBe(1);
    expect(other.report.findings.map((f) => f.category)).toEqual(["unwitnessed"]);

    // A --witness-url that answers anything but a checkpoint of the chain's origin is a
    // wrong URL or a broken witness: unreadable (exit 3), never a pass.
    const portal = createServer((_req, res) => res.end("<html>Sign in</html>"));
    await new Promise<void>((r) => portal.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => portal.close(() => r())));
    const wrong = await verify(
      tmp.path,
      "--witness",
      w.pub,
      "--witness-url",
      `http://127.0.0.1:${(portal.address() as { port: number }).port}`,
    );
    expect(wrong.status).toBe(3);

    // The tail removed: the last batch's records and manifest line. What is left is
    // consistent and cosigned, so only the witness's own copy of the checkpoint shows it.
    cutLastBatch(tmp.path);
    const cut = await verify(tmp.path, "--witness", w.pub);
    expect(cut.status).toBe(0);
    const caught = await verify(tmp.path, "--witness", w.pub, "--witness-url", w.url);
    expect(caught.status).toBe(1);
    expect(caught.report.findings.map((f) => f.category)).toContain("truncated");
  });

  it("a history rewritten with the agent's own key is refused by the witness and reported as a fork by verify", async () => {
    const tmp = makeTempDir("witnessing-fork-");
    cleanups.push(tmp.cleanup);
    const w = await witness(tmp.path, agentKey(tmp.path));
    const a = await agent(tmp.path, w.url, w.running.cosigner.verifierKey);
    expect(await postAuditRecords(a.url, 0, 50)).toBe(200);
    await waitFor(() => a.agent.deliveries[0]?.deliveredThrough === 49, 10_000, "delivery");
    await a.agent.shutdown(2000);

    // Whoever holds the host: a new WAL, the same key and origin, another history.
    const forged = makeTempDir("witnessing-forged-");
    cleanups.push(forged.cleanup);
    for (const f of ["signing.key", "signing.pub"])
      writeFileSync(join(forged.path, f), readFileSync(join(tmp.path, "keys", f)), { mode: 0o600 });
    const b = await agent(forged.path, w.url, w.running.cosigner.verifierKey, {
      keyFile: join(forged.path, "signing.key"),
    });
    expect(await postAuditRecords(b.url, 1000, 60)).toBe(200);
    await waitFor(() => b.agent.deliveries[0]?.deliveredThrough === 59, 10_000, "delivery");
    // The witness refused it (422: not consistent with what it cosigned), and the agent says so.
    const health = await fetch(`http://${b.agent.addresses().health_check?.http}/`).then(
      (r) => r.json() as Promise<{ degraded: string[] }>,
    );
    expect(health.degraded.join("\n")).toMatch(/witness witness.test\/w1 refused: HTTP 422/);
    await b.agent.shutdown(2000);

    const report = await runCli([
      "verify",
      "--source",
      `file:${join(forged.path, "out")}`,
      "--trust",
      join(forged.path, "signing.pub"),
      "--witness",
      w.pub,
      "--witness-url",
      w.url,
      "--json",
      "--quiet",
    ]);
    expect(report.status, report.stderr).toBe(1);
    const findings = (JSON.parse(report.stdout) as Report).findings;
    expect(findings.map((f) => f.category)).toContain("unwitnessed");
    expect(findings.find((f) => f.category === "modified")?.detail).toMatch(/a fork/);
  });

  it("the batch sealed at shutdown goes out cosigned too", async () => {
    const tmp = makeTempDir("witnessing-stop-");
    cleanups.push(tmp.cleanup);
    const w = await witness(tmp.path, agentKey(tmp.path));
    // Nothing is sealed before the shutdown: the batch timeout is longer than the test.
    const a = await agent(tmp.path, w.url, w.running.cosigner.verifierKey, {
      batchTimeout: "60s",
    });
    expect(await postAuditRecords(a.url, 0, 5)).toBe(200);
    await a.agent.shutdown(10_000);
    const checkpoints = manifestLines(tmp.path).flatMap((m) =>
      m.checkpoint ? [m.checkpoint] : [],
    );
    expect(checkpoints).toHaveLength(1);
    expect(
      cosignersOf(checkpoints[0] as string, [parseCosignerKey(readFileSync(w.pub, "utf8"))]),
    ).toEqual(["witness.test/w1"]);
  });

  it("a witness that is down holds nothing acknowledged back: batches go out after the wait, and health says so", async () => {
    const tmp = makeTempDir("witnessing-down-");
    cleanups.push(tmp.cleanup);
    agentKey(tmp.path);
    const down = generateCosignerPub();
    const a = await agent(tmp.path, "http://127.0.0.1:1", down, {
      extra: "    witness_wait: 200ms\n    witness_stale_after: 1s\n",
    });
    const started = Date.now();
    expect(await postAuditRecords(a.url, 0, 20)).toBe(200);
    expect(Date.now() - started).toBeLessThan(1000);
    await waitFor(() => a.agent.deliveries[0]?.deliveredThrough === 19, 10_000, "delivery");
    await waitFor(
      async () => {
        const h = (await fetch(`http://${a.agent.addresses().health_check?.http}/`).then((r) =>
          r.json(),
        )) as { degraded: string[]; reasons: string[] };
        return h.degraded.some((d) => d.includes("has not cosigned")) && h.reasons.length === 0;
      },
      5000,
      "a stale witness in health's degraded reasons (ready all the same)",
    );
  });
});

/** A cosigner verifier key of a fresh witness key, for a witness that never answers. */
function generateCosignerPub(): string {
  return cosignerKeyOf(generateSigningKey("witness.test/other")).verifierKey;
}

/** Removes the last batch from the file output: its record lines and its manifest line. */
function cutLastBatch(dir: string): void {
  const out = join(dir, "out");
  const chain = readdirSync(out)[0] as string;
  const names = readdirSync(join(out, chain)).sort();
  const manifests = names.filter((n) => n.startsWith("manifests-")).at(-1) as string;
  const mLines = readFileSync(join(out, chain, manifests), "utf8")
    .split("\n")
    .filter(Boolean);
  const last = JSON.parse(mLines.at(-1) as string) as { manifest: { firstSeq: string } };
  writeFileSync(join(out, chain, manifests), `${mLines.slice(0, -1).join("\n")}\n`);
  const records = names.filter((n) => n.startsWith("records-")).at(-1) as string;
  const rLines = readFileSync(join(out, chain, records), "utf8")
    .split("\n")
    .filter(Boolean);
  const keep = rLines.filter(
    (l) => Number((JSON.parse(l) as { seq: string }).seq) < Number(last.manifest.firstSeq),
  );
  writeFileSync(join(out, chain, records), `${keep.join("\n")}\n`);
}

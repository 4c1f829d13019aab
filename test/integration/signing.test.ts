import { spawnSync } from "node:child_process";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import { verifyConsistency, verifyInclusion } from "../../agent/integrity/merkle.js";
import {
  type Checkpoint,
  parseCheckpointText,
  parseNote,
  verifyNote,
} from "../../agent/integrity/note.js";
import { leafHash } from "../../agent/integrity/format.js";
import { parseConfig } from "../../agent/config/load.js";
import { startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import {
  CLI,
  type InProcessAgent,
  makeTempDir,
  readOutput,
  startInProcessAgent,
  testConfigYaml,
  waitFor,
} from "../helpers/agent.js";

/**
 * The agent's signed side as a monitor sees it: the latest checkpoint and RFC 6962 proofs
 * from the checkpoint endpoint verify against the agent's public key; `prove` gives the
 * same proofs offline; continuous verification notices tampering done in the backend.
 */

function withSigning(yaml: string, extra: string): string {
  return yaml.replace("  signing:\n", `  signing:\n${extra}`);
}

function withVerification(yaml: string): string {
  return yaml.replace("extensions:\n", "extensions:\n  verification:\n    interval: 1h\n");
}

async function send(url: string, from: number, n: number): Promise<void> {
  const logRecords = Array.from({ length: n }, (_, i) => ({
    eventName: "audit.test",
    attributes: [{ key: "n", value: { intValue: from + i } }],
  }));
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] }),
  });
  expect(res.status).toBe(200);
}

function checkpointOf(note: string, trustedPub: string): Checkpoint {
  const parsed = parseNote(note);
  const { valid } = verifyNote(parsed, readTrustedKeys([trustedPub]));
  expect(valid).toHaveLength(1);
  return parseCheckpointText(parsed.text);
}

describe("checkpoints, proofs and continuous verification", () => {
  const tmp = makeTempDir();
  const pub = join(tmp.path, "keys", "signing.pub");
  const configYaml = withVerification(
    withSigning(
      testConfigYaml({ dir: tmp.path }),
      "    endpoint: 127.0.0.1:0\n    batch:\n      max_records: 7\n      timeout: 20ms\n",
    ).replace("    batch:\n      timeout: 20ms\n", ""),
  );
  let agent: InProcessAgent;
  let endpoint = "";

  beforeAll(async () => {
    const config = parseConfig(configYaml, "test.yaml", {});
    const running = await startAgent(config, createLogger("error"));
    const a = running.addresses();
    agent = {
      agent: running,
      httpUrl: `http://${a.otlp?.http}/v1/logs`,
      grpcAddress: a.otlp?.grpc ?? "",
      outDir: join(tmp.path, "out"),
      stop: async () => void (await running.shutdown(5000)),
    };
    endpoint = `http://${a.signing?.http}`;
  });

  afterAll(async () => {
    await agent?.stop();
    tmp.cleanup();
  });

  const delivered = (seq: number) =>
    waitFor(
      () => agent.agent.deliveries[0]?.deliveredThrough === seq,
      10_000,
      `delivery of seq ${seq}`,
    );

  it("writes the key pair on first start, the private key readable by its owner only", () => {
    expect(statSync(join(tmp.path, "keys", "signing.key")).mode & 0o777).toBe(0o600);
    expect(readFileSync(pub, "utf8")).toMatch(/^audit-agent\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+\n$/);
  });

  it("serves a signed checkpoint that covers every sealed record", async () => {
    await send(agent.httpUrl, 0, 20);
    await delivered(19);
    const note = await (await fetch(`${endpoint}/checkpoint`)).text();
    const cp = checkpointOf(note, pub);
    expect(cp.origin).toBe(`otel-audit-agent/${agent.agent.chainId}`);
    expect(cp.size).toBe(20);
  });

  it("gives inclusion proofs that verify against the checkpoint and the stored line", async () => {
    const cp = checkpointOf(await (await fetch(`${endpoint}/checkpoint`)).text(), pub);
    const { chain } = await readOutput(agent.outDir);
    for (const seq of [0, 6, 7, 13, 19]) {
      const proof = (await (await fetch(`${endpoint}/proof/inclusion?seq=${seq}`)).json()) as {
        leafHash: string;
        rootHash: string;
        proof: string[];
        treeSize: number;
      };
      expect(proof.treeSize).toBe(cp.size);
      expect(proof.rootHash).toBe(cp.rootHash.toString("hex"));
      const leaf = leafHash(Buffer.from(chain.lines[seq]?.text ?? "", "utf8"));
      expect(proof.leafHash).toBe(leaf.toString("hex"));
      const path = proof.proof.map((h) => Buffer.from(h, "hex"));
      expect(verifyInclusion(seq, cp.size, leaf, path, cp.rootHash)).toBe(true);
      expect(
        verifyInclusion(seq, cp.size, leafHash(Buffer.from("forged")), path, cp.rootHash),
      ).toBe(false);
    }
    const bad = await fetch(`${endpoint}/proof/inclusion?seq=999`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(
      /seq 999 is not in a tree of 20 records/,
    );
  });

  it("gives consistency proofs between an older and a newer checkpoint", async () => {
    const older = checkpointOf(await (await fetch(`${endpoint}/checkpoint`)).text(), pub);
    await send(agent.httpUrl, 20, 15);
    await delivered(34);
    const newer = checkpointOf(await (await fetch(`${endpoint}/checkpoint`)).text(), pub);
    expect(newer.size).toBe(35);
    const body = (await (
      await fetch(`${endpoint}/proof/consistency?old=${older.size}&new=${newer.size}`)
    ).json()) as { proof: string[] };
    const path = body.proof.map((h) => Buffer.from(h, "hex"));
    expect(verifyConsistency(older.size, newer.size, older.rootHash, newer.rootHash, path)).toBe(
      true,
    );
    expect(verifyConsistency(older.size, newer.size, Buffer.alloc(32), newer.rootHash, path)).toBe(
      false,
    );
  });

  it("continuous verification passes on the untouched backend and fails once it is altered", async () => {
    const verifier = agent.agent.verifier;
    expect(verifier).not.toBeNull();
    expect(await verifier?.runOnce()).toBe(true);
    const { chain } = await readOutput(agent.outDir);
    const segment = join(
      agent.outDir,
      agent.agent.chainId,
      (chain.lines[3]?.location ?? "").split(":")[0] as string,
    );
    const text = readFileSync(segment, "utf8");
    writeFileSync(segment, text.replace('"intValue":"3"', '"intValue":"9"'));
    expect(await verifier?.runOnce()).toBe(false);
    expect(verifier?.status.failures).toBe(1);
    const findings = verifier?.status.lastFindings.file ?? [];
    expect(findings.map((f) => f.category)).toContain("modified");
    expect(findings.find((f) => f.category === "modified")?.seq).toBe(3);
    writeFileSync(segment, text);
    expect(await verifier?.runOnce()).toBe(true);
  });

  it("prove works offline from the WAL once the agent is stopped, against a saved checkpoint", async () => {
    const note = await (await fetch(`${endpoint}/checkpoint`)).text();
    const cpFile = join(tmp.path, "checkpoint.txt");
    writeFileSync(cpFile, note);
    const cp = checkpointOf(note, pub);
    await agent.stop();
    const configFile = join(tmp.path, "agent.yaml");
    writeFileSync(configFile, configYaml);
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
    const incl = run("prove", "--seq", "5", "--config", configFile, "--checkpoint", cpFile);
    expect(incl.status).toBe(0);
    const proof = JSON.parse(incl.stdout) as {
      leafHash: string;
      proof: string[];
      checkpoint: string;
    };
    // The checkpoint the proof is against goes with it, for checking offline.
    expect(proof.checkpoint).toBe(note);
    expect(
      verifyInclusion(
        5,
        cp.size,
        Buffer.from(proof.leafHash, "hex"),
        proof.proof.map((h) => Buffer.from(h, "hex")),
        cp.rootHash,
      ),
    ).toBe(true);
    const cons = run("prove", "--consistency", "10", "35", "--config", configFile);
    expect(cons.status).toBe(0);
    expect(JSON.parse(cons.stdout)).toMatchObject({
      type: "consistency",
      oldSize: 10,
      newSize: 35,
    });
    // The latest checkpoint, found in the WAL, goes with a proof at its size.
    const latest = run("prove", "--seq", "0", "--config", configFile);
    const latestProof = JSON.parse(latest.stdout) as { treeSize: number; checkpoint: string };
    expect(latestProof.checkpoint).toContain(`\n${latestProof.treeSize}\n`);
    const usage = run("prove", "--config", configFile);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/either --seq N or --consistency OLD NEW/);

    // A checkpoint whose signed text was changed (a larger tree claimed) is refused, with
    // the code and file named, and so is one signed by a key not trusted.
    const forged = join(tmp.path, "forged.txt");
    writeFileSync(forged, note.replace(`\n${cp.size}\n`, `\n${cp.size + 1}\n`));
    const bad = run("prove", "--seq", "5", "--config", configFile, "--checkpoint", forged);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/PROVE_CHECKPOINT_UNTRUSTED.*forged\.txt.*does not verify/);
    expect(bad.stdout).toBe("");
    const otherKeys = join(tmp.path, "other-keys");
    expect(run("keygen", "--out", otherKeys, "--name", "other").status).toBe(0);
    const untrusted = run(
      "prove",
      "--seq",
      "5",
      "--config",
      configFile,
      "--checkpoint",
      cpFile,
      "--trust",
      join(otherKeys, "other.pub"),
    );
    expect(untrusted.status).not.toBe(0);
    expect(untrusted.stderr).toMatch(/not signed by a trusted key/);
  });
});

describe("signing keys", () => {
  it("keygen writes a 0600 private key and a verifier key, and never overwrites", () => {
    const tmp = makeTempDir();
    try {
      const run = (...args: string[]) =>
        spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
      const first = run("keygen", "--out", tmp.path, "--name", "payments-eu1");
      expect(first.status).toBe(0);
      expect(statSync(join(tmp.path, "payments-eu1.key")).mode & 0o777).toBe(0o600);
      const keys = readTrustedKeys([join(tmp.path, "payments-eu1.pub")]);
      expect(keys[0]?.name).toBe("payments-eu1");
      expect(first.stdout).toContain(keys[0]?.verifierKey);
      const again = run("keygen", "--out", tmp.path, "--name", "payments-eu1");
      expect(again.status).toBe(2);
      expect(again.stderr).toMatch(/already exists: keys are never overwritten/);
    } finally {
      tmp.cleanup();
    }
  });

  it("refuses to start with a signing key that group or others can read", async () => {
    const tmp = makeTempDir();
    try {
      const first = await startInProcessAgent({ dir: tmp.path });
      await first.stop();
      chmodSync(join(tmp.path, "keys", "signing.key"), 0o644);
      await expect(startInProcessAgent({ dir: tmp.path })).rejects.toThrow(
        /readable by group or others \(mode 644\): run chmod 600/,
      );
    } finally {
      tmp.cleanup();
    }
  });
});

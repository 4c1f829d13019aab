import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import { startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import {
  CLI,
  type InProcessAgent,
  makeTempDir,
  testConfigYaml,
  waitFor,
} from "../helpers/agent.js";

/**
 * `audit-agent verify` as CI would run it: against an agent config's exporter (same paths
 * and keys as the agent), and as a cross-check of two backends record by record.
 */
const run = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });

describe("verify --config and --cross-check", () => {
  const tmp = makeTempDir();
  let agent: InProcessAgent;
  const configFile = join(tmp.path, "agent.yaml");

  beforeAll(async () => {
    const yaml = testConfigYaml({ dir: tmp.path }).replace(
      "    batch:\n      timeout: 20ms\n",
      "    batch:\n      timeout: 20ms\n      max_records: 5\n",
    );
    writeFileSync(configFile, yaml);
    const running = await startAgent(parseConfig(yaml, configFile, {}), createLogger("error"));
    agent = {
      agent: running,
      httpUrl: `http://${running.addresses().otlp?.http}/v1/logs`,
      grpcAddress: "",
      outDir: join(tmp.path, "out"),
      stop: async () => void (await running.shutdown(5000)),
    };
    const logRecords = Array.from({ length: 23 }, (_, i) => ({
      eventName: "audit.cli",
      attributes: [{ key: "i", value: { intValue: i } }],
    }));
    const res = await fetch(agent.httpUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] }),
    });
    expect(res.status).toBe(200);
    await waitFor(() => agent.agent.deliveries[0]?.deliveredThrough === 22, 10_000, "export");
    await agent.stop();
  });

  afterAll(() => tmp.cleanup());

  it("reads the backend named by the config's exporter and trusts the config's key by default", () => {
    const r = run("verify", "--config", configFile, "--exporter", "file");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/23 records, seq 0\.\.22/);
    expect(r.stdout).toMatch(/OK: no findings/);
  });

  it("names the exporters it knows when asked for one that is not in the pipeline", () => {
    const r = run("verify", "--config", configFile, "--exporter", "loki/eu");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /exporter "loki\/eu" is not in the logs pipeline of .*\(exporters: file\)/,
    );
  });

  it("cross-checks two backends: a twin that lost its last batch verifies alone but not against the other", () => {
    const out = join(tmp.path, "out");
    const twin = join(tmp.path, "twin");
    cpSync(out, twin, { recursive: true });
    const chainDir = join(twin, readdirSync(twin)[0] as string);
    const recordsFile = join(
      chainDir,
      readdirSync(chainDir).find((n) => n.startsWith("records-")) as string,
    );
    const manifestsFile = join(
      chainDir,
      readdirSync(chainDir).find((n) => n.startsWith("manifests-")) as string,
    );
    const records = readFileSync(recordsFile, "utf8").split("\n").filter(Boolean);
    const manifests = readFileSync(manifestsFile, "utf8").split("\n").filter(Boolean);
    const last = JSON.parse(manifests[manifests.length - 1] as string) as {
      manifest: { firstSeq: string };
    };
    writeFileSync(recordsFile, `${records.slice(0, Number(last.manifest.firstSeq)).join("\n")}\n`);
    writeFileSync(manifestsFile, `${manifests.slice(0, -1).join("\n")}\n`);
    const pub = join(tmp.path, "keys", "signing.pub");

    const alone = run("verify", "--source", `file:${twin}`, "--trust", pub);
    expect(alone.status).toBe(0);
    const same = run(
      "verify",
      "--source",
      `file:${out}`,
      "--source",
      `file:${out}`,
      "--trust",
      pub,
      "--cross-check",
    );
    expect(same.status).toBe(0);
    expect(same.stdout).toMatch(/OK: both hold the same records/);
    const crossed = run(
      "verify",
      "--source",
      `file:${out}`,
      "--source",
      `file:${twin}`,
      "--trust",
      pub,
      "--cross-check",
      "--json",
    );
    expect(crossed.status).toBe(1);
    const reports = JSON.parse(crossed.stdout) as Array<{
      ok: boolean;
      findings: Array<{ category: string; seq: number }>;
    }>;
    expect(reports.map((r) => r.ok)).toEqual([true, true, false]);
    const missing = reports[2]?.findings ?? [];
    expect(missing.length).toBe(23 - Number(last.manifest.firstSeq));
    expect(new Set(missing.map((f) => f.category))).toEqual(new Set(["missing"]));
  });

  it("reports a whole chain removed, given a checkpoint seen earlier for it", () => {
    const out = join(tmp.path, "out");
    const chainId = readdirSync(out)[0] as string;
    const manifests = readFileSync(
      join(
        out,
        chainId,
        readdirSync(join(out, chainId)).find((n) => n.startsWith("manifests-")) as string,
      ),
      "utf8",
    );
    const note = (JSON.parse(manifests.split("\n")[0] as string) as { checkpoint: string })
      .checkpoint;
    const saved = join(tmp.path, "seen-checkpoint.txt");
    writeFileSync(saved, note);
    const empty = join(tmp.path, "emptied");
    cpSync(out, empty, { recursive: true });
    rmSync(join(empty, chainId), { recursive: true });
    mkdirSync(join(empty, "other-chain"));
    const pub = join(tmp.path, "keys", "signing.pub");
    expect(
      run("verify", "--source", `file:${out}`, "--trust", pub, "--checkpoint", saved).status,
    ).toBe(0);
    const r = run("verify", "--source", `file:${empty}`, "--trust", pub, "--checkpoint", saved);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(
      new RegExp(
        `truncated .*otel-audit-agent/${chainId} was seen, but the source holds no such chain`,
      ),
    );
  });

  it("refuses --cross-check with one source", () => {
    const r = run(
      "verify",
      "--source",
      `file:${join(tmp.path, "out")}`,
      "--trust",
      join(tmp.path, "keys", "signing.pub"),
      "--cross-check",
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--cross-check compares exactly two sources \(got 1\)/);
  });
});

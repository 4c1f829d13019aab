import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import { readTrustedKeys } from "../../agent/integrity/key-files.js";
import { startAgent, type RunningAgent } from "../../agent/service/agent.js";
import { VerificationRunner } from "../../agent/service/verification-runner.js";
import { emptyState } from "../../agent/verify/state.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { makeTempDir, testConfigYaml, waitFor } from "../helpers/agent.js";

/**
 * In-agent verification safe to leave on: each run reads only what is new (its state kept
 * in the agent's store, so a restart does not start over), plus a few earlier batches at
 * random; it runs on a worker thread under a memory cap, and reports per run.
 */

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function config(dir: string, verification: string): ReturnType<typeof parseConfig> {
  const yaml = testConfigYaml({ dir, batchMaxRecords: 10 }).replace(
    "extensions:\n",
    `extensions:\n  verification:\n    interval: 1h\n${verification}`,
  );
  return parseConfig(yaml, "test.yaml", {});
}

async function start(
  dir: string,
  verification = "",
): Promise<{ agent: RunningAgent; url: string }> {
  const agent = await startAgent(config(dir, verification), createLogger("error"));
  cleanups.push(() => agent.shutdown(1000).then(() => undefined));
  return { agent, url: `http://${agent.addresses().otlp?.http}/v1/logs` };
}

async function send(url: string, from: number, n: number): Promise<void> {
  const logRecords = Array.from({ length: n }, (_, i) => ({
    eventName: "audit.test",
    attributes: [{ key: "n", value: { intValue: String(from + i) } }],
  }));
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] }),
  });
  expect(res.status).toBe(200);
}

async function delivered(agent: RunningAgent, last: number): Promise<void> {
  await waitFor(() => agent.deliveries[0]?.deliveredThrough === last, 15_000, "delivered");
}

describe("continuous verification", () => {
  it("checks only what is new on each run, and keeps what it established across restarts", async () => {
    const tmp = makeTempDir("continuous-");
    cleanups.push(tmp.cleanup);
    let { agent, url } = await start(tmp.path, "    spot_check_batches: 0\n");
    await send(url, 0, 100);
    await delivered(agent, 99);
    expect(await agent.verifier?.runOnce()).toBe(true);
    expect(agent.verifier?.status.lastRuns.file).toMatchObject({ checked: 100, treeSize: 100 });

    await send(url, 100, 50);
    await delivered(agent, 149);
    expect(await agent.verifier?.runOnce()).toBe(true);
    expect(agent.verifier?.status.lastRuns.file).toMatchObject({ checked: 50, treeSize: 150 });

    // A restart resumes from the state in the store.
    await agent.shutdown(1000);
    ({ agent, url } = await start(tmp.path, "    spot_check_batches: 0\n"));
    await send(url, 150, 20);
    await delivered(agent, 169);
    expect(await agent.verifier?.runOnce()).toBe(true);
    expect(agent.verifier?.status.lastRuns.file).toMatchObject({ checked: 20, treeSize: 170 });

    // Its metrics say what each run did.
    const metrics = await (await fetch(`http://${agent.addresses().metrics?.http}/metrics`)).text();
    expect(metrics).toMatch(/audit_agent_verification_checked_records\{exporter="file"\} 20\n/);
    expect(metrics).toMatch(/audit_agent_verification_tree_size\{exporter="file"\} 170\n/);
    expect(metrics).toMatch(/audit_agent_verification_duration_seconds\{exporter="file"\} \d/);
  });

  it("runs on a worker under its memory cap: over the cap is a failed run, and stop ends a run", async () => {
    const tmp = makeTempDir("continuous-");
    cleanups.push(tmp.cleanup);
    const { agent, url } = await start(tmp.path);
    await send(url, 0, 30);
    await delivered(agent, 29);
    const file = config(tmp.path, "").exporters[0] as {
      factory: { type: string };
      config: unknown;
    };
    const trusted = readTrustedKeys([join(tmp.path, "keys", "signing.pub")]);
    const run = { known: [], state: emptyState() };

    const roomy = new VerificationRunner(128, trusted, 0);
    const clean = await roomy.forExporter(file.factory.type, file.config)(run);
    expect(clean.report.findings).toEqual([]);
    expect(clean.checked).toBe(30);

    // A heap too small for the run: the run fails with the setting to raise, nothing else does.
    const cramped = new VerificationRunner(2, trusted, 0);
    await expect(cramped.forExporter(file.factory.type, file.config)(run)).rejects.toThrow(
      /max_memory_mib \(2 MiB\)/,
    );

    // stop() ends a run in progress at once instead of waiting for it.
    const stoppable = new VerificationRunner(128, trusted, 0);
    const pending = stoppable.forExporter(file.factory.type, file.config)(run);
    const settled = pending.then(
      () => "done",
      () => "ended",
    );
    const started = Date.now();
    await stoppable.stop();
    expect(["done", "ended"]).toContain(await settled);
    expect(Date.now() - started).toBeLessThan(2000);
    await send(url, 30, 5);
    await delivered(agent, 34);
  });
});

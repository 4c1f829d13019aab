import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfigFile } from "../../agent/config/load.js";
import { readFileExport } from "../../agent/exporters/file/reader.js";
import { ReloadableAgent } from "../../agent/service/reload.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import {
  type ChildAgent,
  childAgentPerTest,
  freePort,
  makeTempDir,
  postAuditRecords,
  readOutput,
  runCli,
  testConfigYaml,
  verifyOutputArgs,
  waitFor,
} from "../helpers/agent.js";
import { deriveSeed, prng, testSeed } from "../helpers/prng.js";
import { spawnWitness } from "../helpers/witness-proc.js";

/**
 * SIGHUP reloads `audit-agent run`'s config (agent/service/reload.ts): a child agent, real
 * signals, clients that retry as OTLP exporters do. Under load every acknowledged record
 * ends up in the output exactly once; an edited config takes effect; a broken one is
 * refused with a coded error and the agent serves on; SIGTERM during a reload stops cleanly.
 */

const FILE = "test/integration/reload.test.ts";
const { seed, hex, rng } = testSeed(FILE);

/** The test config on a fixed HTTP port (clients must find the agent again after a reload). */
function yamlOn(dir: string, port: number, edit: (yaml: string) => string = (y) => y): string {
  const yaml = testConfigYaml({ dir, grpc: false })
    .replace("endpoint: 127.0.0.1:0", `endpoint: 127.0.0.1:${port}`)
    .replace("level: error", "level: info");
  return edit(yaml);
}

/** Replaces the agent's config file (spawnAgent wrote it to <dir>/agent.yaml). */
function rewriteConfig(dir: string, yaml: string): void {
  writeFileSync(join(dir, "agent.yaml"), yaml);
}

/** Log lines whose message starts with `prefix`, parsed. */
function logsWith(agent: ChildAgent, prefix: string): Array<Record<string, unknown>> {
  return agent.logs
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    })
    .filter((e) => typeof e.msg === "string" && e.msg.startsWith(prefix));
}

async function reloads(agent: ChildAgent, count: number, what = "config reloads") {
  await waitFor(
    () => logsWith(agent, "config reload finished").length >= count,
    30_000,
    `${what} (logs:\n${agent.logs.slice(-20).join("\n")})`,
  );
}

/**
 * A client that sends batches of records ("record N", N from `from` up) and retries each
 * batch until it is acknowledged, as an OTLP exporter does; returns the acknowledged ones.
 */
function loadClient(url: string, from: number, rngSeed: number, until: () => boolean) {
  const draw = prng(rngSeed);
  const acked: number[] = [];
  const done = (async () => {
    let next = from;
    while (!until()) {
      const count = 1 + draw.int(8);
      for (;;) {
        const status = await postAuditRecords(url, next, count).catch(() => 0);
        if (status === 200) break;
        // Connection refused during a reload (or a 503): back off a little and send it again.
        await new Promise((r) => setTimeout(r, 10 + draw.int(40)));
      }
      for (let k = 0; k < count; k++) acked.push(next + k);
      next += count;
    }
  })();
  return { acked, done };
}

/**
 * SIGTERM, which must exit 0; then the output's chain must be sound and `verify` clean.
 * Returns the numbers N of the stored records ("record N"), in chain order.
 */
async function stopAndCheck(agent: ChildAgent, dir: string): Promise<number[]> {
  agent.child.kill("SIGTERM");
  expect(await agent.exited).toEqual({ code: 0, signal: null });
  const { records, findings } = await readOutput(join(dir, "out"));
  expect(findings).toEqual([]);
  const verify = await runCli(verifyOutputArgs(dir));
  expect(verify.status, verify.stdout + verify.stderr).toBe(0);
  return records.map((r) => {
    const body = r.record.logRecord.body as { stringValue: string };
    return Number(/^record (\d+)/.exec(body.stringValue)?.[1]);
  });
}

describe(`SIGHUP reloads the agent's config (seed ${hex})`, () => {
  const t = childAgentPerTest();
  /** An agent on the test config with its HTTP receiver on a fixed port. */
  const start = async () => {
    const port = await freePort();
    const yaml = yamlOn(t.dir, port);
    return { port, yaml, agent: await t.spawn(yaml) };
  };

  it("under continuous load: every acknowledged record is stored exactly once, the chain verifies", async () => {
    const { agent } = await start();
    let stop = false;
    const clients = Array.from({ length: 3 }, (_, c) =>
      loadClient(agent.httpUrl, c * 1_000_000, deriveSeed(seed, c), () => stop),
    );
    const rounds = 2 + rng.int(3);
    let expected = 0;
    for (let r = 0; r < rounds; r++) {
      await new Promise((res) => setTimeout(res, 100 + rng.int(300)));
      const acked = clients.reduce((n, c) => n + c.acked.length, 0);
      agent.child.kill("SIGHUP");
      expected++;
      if (r === 0 || rng.chance(0.4)) {
        // A second SIGHUP while the first reload runs: one more reload follows it.
        await waitFor(() => logsWith(agent, "config reload: reading").length >= expected);
        agent.child.kill("SIGHUP");
        expected++;
      }
      await reloads(agent, expected);
      // The clients are served again after each reload.
      await waitFor(
        () => clients.reduce((n, c) => n + c.acked.length, 0) > acked + 10,
        20_000,
        "records acknowledged after the reload",
      );
    }
    stop = true;
    await Promise.all(clients.map((c) => c.done));
    const numbers = await stopAndCheck(agent, t.dir);
    expect(logsWith(agent, "config reload finished")).toHaveLength(expected);
    expect(logsWith(agent, "config reload refused")).toEqual([]);
    const acked = clients.flatMap((c) => c.acked);
    expect(acked.length).toBeGreaterThan(rounds * 10);
    // Exactly once: no number twice, and every acknowledged one present (the clients stopped
    // only after an acknowledgement, so nothing unacknowledged can have been stored).
    expect(new Set(numbers).size).toBe(numbers.length);
    expect([...numbers].sort((a, b) => a - b)).toEqual([...acked].sort((a, b) => a - b));
  }, 120_000);

  it("applies an edited config: a new audit filter and a new exporter directory", async () => {
    const { yaml, agent } = await start();
    expect(await postAuditRecords(agent.httpUrl, 0, 3)).toBe(200);
    const outB = join(t.dir, "out-b");
    rewriteConfig(
      t.dir,
      yaml
        // Only the event audit.kept is audit now.
        .replace("    match: any", "    conditions:\n      - event_name: audit.kept")
        .replace(
          "exporters:\n  file:\n",
          `exporters:\n  file/b:\n    directory: ${outB}\n  file:\n`,
        )
        .replace("exporters: [file]", "exporters: [file, file/b]"),
    );
    agent.child.kill("SIGHUP");
    await reloads(agent, 1);
    const [done] = logsWith(agent, "config reload finished");
    expect(done?.changed).toEqual(["processors.audit_filter changed", "exporters.file/b added"]);
    expect(done?.durationMs).toEqual(expect.any(Number));
    expect(await postAuditRecords(agent.httpUrl, 3, 3)).toBe(200); // filtered out now
    expect(await postAuditRecords(agent.httpUrl, 6, 2, 0, "audit.kept")).toBe(200);
    await waitFor(async () => {
      const chains = await readFileExport(outB).catch(() => []);
      return chains.some((c) => c.lines.some((l) => l.text.includes("record 7")));
    });
    expect(await stopAndCheck(agent, t.dir)).toEqual([0, 1, 2, 6, 7]);
  }, 60_000);

  it("reads the receivers' token file again: the new token is the one accepted", async () => {
    const tokenFile = join(t.dir, "token");
    const tokens = ["a".repeat(16) + hex, "b".repeat(16) + hex];
    writeFileSync(tokenFile, tokens[0] as string, { mode: 0o600 });
    const port = await freePort();
    const agent = await t.spawn(
      yamlOn(t.dir, port, (y) =>
        y.replace(
          `endpoint: 127.0.0.1:${port}`,
          `endpoint: 127.0.0.1:${port}\n        auth:\n          bearer_token_file: ${tokenFile}`,
        ),
      ),
    );
    const post = (from: number, token: string) =>
      postAuditRecords(agent.httpUrl, from, 1, 0, "audit.test", {
        authorization: `Bearer ${token}`,
      });
    expect(await post(0, tokens[0] as string)).toBe(200);
    expect(await post(1, tokens[1] as string)).toBe(401);
    writeFileSync(tokenFile, tokens[1] as string);
    agent.child.kill("SIGHUP");
    await reloads(agent, 1);
    expect(logsWith(agent, "config reload finished")[0]?.changed).toEqual([]);
    expect(await post(1, tokens[0] as string)).toBe(401);
    expect(await post(1, tokens[1] as string)).toBe(200);
    expect(await stopAndCheck(agent, t.dir)).toEqual([0, 1]);
  }, 60_000);

  it("refuses a broken config with a coded error and serves on the previous one", async () => {
    const { yaml, agent } = await start();
    rewriteConfig(t.dir, yaml.replace("max_size_mib: 64", "max_size_mib: lots"));
    agent.child.kill("SIGHUP");
    await waitFor(() => logsWith(agent, "config reload refused").length === 1);
    const [refused] = logsWith(agent, "config reload refused");
    expect(refused).toMatchObject({ level: "error", code: "CONFIG_INVALID", reload: "refused" });
    expect(refused?.msg).toMatch(/extensions\.wal\.max_size_mib: expected number, got "lots"/);
    expect(await postAuditRecords(agent.httpUrl, 0, 2)).toBe(200);

    // Moving the WAL would start a new chain: refused too, and nothing stopped.
    rewriteConfig(t.dir, yaml.replace(join(t.dir, "wal"), join(t.dir, "wal2")));
    agent.child.kill("SIGHUP");
    await waitFor(() => logsWith(agent, "config reload refused").length === 2);
    expect(logsWith(agent, "config reload refused")[1]).toMatchObject({ code: "RELOAD_REFUSED" });
    expect(logsWith(agent, "config reload refused")[1]?.msg).toMatch(
      /extensions\.wal\.directory changed/,
    );
    expect(await postAuditRecords(agent.httpUrl, 2, 2)).toBe(200);

    // A signing key replaced in place would rotate the key: refused.
    const other = join(t.dir, "other-key");
    expect((await runCli(["keygen", "--out", other])).status).toBe(0);
    const keyFile = join(t.dir, "keys", "signing.key");
    const original = readFileSync(keyFile);
    copyFileSync(join(other, "audit-agent.key"), keyFile);
    rewriteConfig(t.dir, yaml);
    agent.child.kill("SIGHUP");
    await waitFor(() => logsWith(agent, "config reload refused").length === 3);
    expect(logsWith(agent, "config reload refused")[2]).toMatchObject({ code: "RELOAD_REFUSED" });
    expect(logsWith(agent, "config reload refused")[2]?.msg).toMatch(/does not rotate the key/);
    writeFileSync(keyFile, original);
    expect(logsWith(agent, "config reload: stopping")).toEqual([]);

    expect(await stopAndCheck(agent, t.dir)).toEqual([0, 1, 2, 3]);
  }, 60_000);

  it("a valid config that cannot start (its port is taken) falls back to the previous one", async () => {
    const { port, yaml, agent } = await start();
    expect(await postAuditRecords(agent.httpUrl, 0, 2)).toBe(200);
    const taken = createServer();
    await new Promise<void>((res) => taken.listen(0, "127.0.0.1", res));
    try {
      const takenPort = (taken.address() as { port: number }).port;
      rewriteConfig(t.dir, yaml.replace(`127.0.0.1:${port}`, `127.0.0.1:${takenPort}`));
      agent.child.kill("SIGHUP");
      await waitFor(
        () => logsWith(agent, "config reload failed: running on the previous").length === 1,
      );
    } finally {
      taken.close();
    }
    const [failed] = logsWith(agent, "RELOAD_FAILED");
    expect(failed).toMatchObject({ level: "error", code: "RELOAD_FAILED", reload: "failed" });
    expect(failed?.cause).toMatch(/RECEIVER_LISTEN_FAILED/);
    expect(await postAuditRecords(agent.httpUrl, 2, 2)).toBe(200);
    expect(await stopAndCheck(agent, t.dir)).toEqual([0, 1, 2, 3]);
  }, 60_000);

  it("SIGTERM right after SIGHUP stops cleanly with every acknowledged record exported", async () => {
    const { agent } = await start();
    expect(await postAuditRecords(agent.httpUrl, 0, 5)).toBe(200);
    agent.child.kill("SIGHUP");
    await new Promise((res) => setTimeout(res, rng.int(60)));
    expect(await stopAndCheck(agent, t.dir)).toEqual([0, 1, 2, 3, 4]);
    expect(logsWith(agent, "stopped")).toHaveLength(1);
  }, 60_000);

  it("SIGHUP during start-up reloads once the agent is up", async () => {
    const port = await freePort();
    let sent = false;
    const agent = await t.spawn(yamlOn(t.dir, port), [], {}, (line, child) => {
      if (!sent && line.includes('"write-ahead log open"')) {
        sent = true;
        child.kill("SIGHUP");
      }
    });
    await reloads(agent, 1);
    expect(logsWith(agent, "SIGHUP came during start-up")).toHaveLength(1);
    expect(await postAuditRecords(agent.httpUrl, 0, 1)).toBe(200);
  }, 60_000);
});

describe("audit-agent witness on SIGHUP", () => {
  it("logs that it does not reload, and runs on until SIGTERM", async () => {
    const tmp = makeTempDir();
    try {
      const keygen = await runCli(["keygen", "--witness", "--out", tmp.path, "--name", "w1"]);
      expect(keygen.status, keygen.stderr).toBe(0);
      const agentKeys = await runCli(["keygen", "--out", tmp.path, "--name", "agent"]);
      expect(agentKeys.status, agentKeys.stderr).toBe(0);
      mkdirSync(join(tmp.path, "state"));
      const config = join(tmp.path, "witness.yaml");
      writeFileSync(
        config,
        `witness:
  key_file: ${join(tmp.path, "w1.key")}
  state_dir: ${join(tmp.path, "state")}
  listen: 127.0.0.1:0
  log_level: info
  logs:
    - origin: test/log
      keys: ["${readFileSync(join(tmp.path, "agent.pub"), "utf8").trim()}"]
`,
      );
      const w = spawnWitness(config);
      await w.started;
      w.child.kill("SIGHUP");
      await waitFor(() => w.logs.some((l) => l.includes("SIGHUP ignored")));
      expect(w.child.exitCode).toBeNull();
      expect(await w.kill("SIGTERM")).toEqual({ code: 0, signal: null });
    } finally {
      tmp.cleanup();
    }
  }, 30_000);
});

describe("ReloadableAgent in process: one reload at a time", () => {
  it("coalesces reloads asked for during one, and stops after the reload under way", async () => {
    const tmp = makeTempDir();
    try {
      const file = join(tmp.path, "agent.yaml");
      writeFileSync(file, testConfigYaml({ dir: tmp.path }));
      let loads = 0;
      const load = (f: string) => {
        loads++;
        return loadConfigFile(f, {});
      };
      const logger = createLogger("error");
      const agent = await ReloadableAgent.start(loadConfigFile(file, {}), { file, load, logger });
      const first = agent.current;
      // Three asked for at once: the first runs, the other two make one more after it.
      await Promise.all([agent.reload(), agent.reload(), agent.reload()]);
      expect(loads).toBe(2);
      expect(agent.current).not.toBe(first);
      expect(agent.current.chainId).toBe(first.chainId);
      // A reload leaves nothing of the agent it replaced running: no timer, socket or server.
      // (Requests under way, such as a file read, come and go: not counted.)
      const lasting = () =>
        process
          .getActiveResourcesInfo()
          .filter((r) => !/Req/.test(r))
          .sort();
      const resources = lasting();
      for (let i = 0; i < 3; i++) await agent.reload();
      expect(lasting()).toEqual(resources);
      expect(loads).toBe(5);

      // Stopping during a reload waits for it, then stops the agent it started.
      let reloaded = false;
      const reloading = agent.reload().then(() => (reloaded = true));
      const stopped = await agent.shutdown(1000);
      expect(reloaded).toBe(true);
      expect(loads).toBe(6);
      expect(stopped).toEqual({ drained: true });
      await reloading;
      // Once stopping, a reload is ignored.
      await agent.reload();
      expect(loads).toBe(6);
    } finally {
      tmp.cleanup();
    }
  }, 30_000);
});

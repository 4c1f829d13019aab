import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { attr, childAgentPerTest, ROOT, readOutput, waitFor } from "../helpers/agent.js";

/**
 * The shipped default config, run as `audit-agent run` in a fresh working directory:
 * data lands under ./data relative to it, and SIGTERM under load finishes in-flight
 * requests, drains the exporter and exits 0 with nothing acknowledged left behind.
 */

const defaultYaml = readFileSync(join(ROOT, "config/default.yaml"), "utf8");
const ephemeralPorts = {
  AUDIT_AGENT_GRPC_ENDPOINT: "127.0.0.1:0",
  AUDIT_AGENT_HTTP_ENDPOINT: "127.0.0.1:0",
  AUDIT_AGENT_HEALTH_ENDPOINT: "127.0.0.1:0",
  AUDIT_AGENT_METRICS_ENDPOINT: "127.0.0.1:0",
};

function request(id: string, n: number) {
  return JSON.stringify({
    resourceLogs: [
      {
        scopeLogs: [
          {
            logRecords: Array.from({ length: n }, (_, i) => ({
              eventName: i % 2 === 0 ? "audit.action" : "app.noise",
              attributes: [
                { key: "req.id", value: { stringValue: id } },
                { key: "rec.idx", value: { intValue: i } },
              ],
            })),
          },
        ],
      },
    ],
  });
}

describe("audit-agent run with config/default.yaml", () => {
  const t = childAgentPerTest();

  it("serves, writes under ./data, and on SIGTERM under load drains and exits 0", async () => {
    const agent = await t.spawn(defaultYaml, [], ephemeralPorts);
    const loadUntil = Date.now() + 300;
    const acked: string[] = [];
    let stop = false;
    const clients = Array.from({ length: 6 }, async (_, c) => {
      for (let i = 0; !stop; i++) {
        const id = `c${c}-${i}`;
        try {
          const res = await fetch(agent.httpUrl, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: request(id, 10),
          });
          if (res.status === 200) acked.push(id);
        } catch {
          return; // the listener is closed during shutdown: expected
        }
      }
    });
    // At least 300 ms of load, and until some requests were acknowledged (however slow the host).
    await waitFor(
      () => acked.length > 5 && Date.now() >= loadUntil,
      20_000,
      "acknowledged requests under load",
    );
    agent.child.kill("SIGTERM");
    const exit = await agent.exited;
    stop = true;
    await Promise.all(clients);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(acked.length).toBeGreaterThan(5);
    expect(agent.logs.some((l) => l.includes('"drained":true'))).toBe(true);

    expect(existsSync(join(t.dir, "data/wal/CURRENT"))).toBe(true);
    const { records, findings } = await readOutput(join(t.dir, "data/out"));
    expect(findings).toEqual([]);
    const counts = new Map<string, number>();
    for (const r of records) {
      expect(r.record.logRecord.eventName).toBe("audit.action");
      const id = attr(r.record, "req.id")?.stringValue as string;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const id of acked) expect(counts.get(id)).toBe(5);
    // Every stored request is whole (5 audit records of 10), acknowledged or not.
    for (const n of counts.values()) expect(n).toBe(5);
  });

  it("continues the same chain on the next start", async () => {
    let agent = await t.spawn(defaultYaml, [], ephemeralPorts);
    await fetch(agent.httpUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: request("first", 2),
    });
    agent.child.kill("SIGTERM");
    expect((await agent.exited).code).toBe(0);
    const chainId = agent.chainId;
    agent = await t.spawn(defaultYaml, [], ephemeralPorts);
    expect(agent.chainId).toBe(chainId);
    await fetch(agent.httpUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: request("second", 2),
    });
    agent.child.kill("SIGTERM");
    expect((await agent.exited).code).toBe(0);
    const { records, findings } = await readOutput(join(t.dir, "data/out"));
    expect(findings).toEqual([]);
    expect(records.map((r) => [r.seq, attr(r.record, "req.id")?.stringValue])).toEqual([
      ["0", "first"],
      ["1", "second"],
    ]);
  });

  it("exits 2 with the config problem when the config is invalid", async () => {
    await expect(
      t.spawn(defaultYaml.replace("max_size_mib: 256", "max_size_mib: lots")),
    ).rejects.toThrow(
      /agent exited \(2\)[\s\S]*extensions\.wal\.max_size_mib: expected number, got "lots"/,
    );
  });
});

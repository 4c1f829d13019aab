import { cpSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { fileSource } from "../../agent/exporters/file/reader.js";
import { crossCheck } from "../../agent/verify/cross-check.js";
import { makeTempDir, startInProcessAgent, waitFor } from "../helpers/agent.js";

/** `verify --cross-check`: two backends compared record by record, read as streams. */

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

describe("cross-check of two backends", () => {
  it("finds a record missing from one and a record that differs, in either direction", async () => {
    const tmp = makeTempDir("cross-check-");
    cleanups.push(tmp.cleanup);
    const a = await startInProcessAgent({ dir: tmp.path, grpc: false, batchMaxRecords: 10 });
    const logRecords = Array.from({ length: 50 }, (_, i) => ({
      eventName: "audit.test",
      attributes: [{ key: "n", value: { intValue: String(i) } }],
    }));
    const res = await fetch(a.httpUrl, {
      method: "POST",
      body: JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] }),
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(200);
    await waitFor(() => a.agent.deliveries[0]?.deliveredThrough === 49, 15_000, "delivered");
    await a.stop();
    const twin = join(tmp.path, "twin");
    cpSync(a.outDir, twin, { recursive: true });
    expect(await crossCheck(fileSource(a.outDir), fileSource(twin))).toEqual([]);

    const chainDir = join(twin, a.agent.chainId);
    const segment = join(
      chainDir,
      readdirSync(chainDir).find((n) => n.startsWith("records-")) as string,
    );
    const lines = readFileSync(segment, "utf8").split("\n").filter(Boolean);
    lines.splice(20, 1); // seq 20 gone from the twin
    lines[30] = (lines[30] as string).replace('"intValue":"31"', '"intValue":"13"');
    writeFileSync(segment, lines.map((l) => `${l}\n`).join(""));
    const findings = await crossCheck(fileSource(a.outDir), fileSource(twin));
    expect(findings.map((f) => [f.category, f.seq])).toEqual(
      expect.arrayContaining([
        ["missing", 20],
        ["modified", 31],
      ]),
    );
    expect(findings).toHaveLength(2);
    const reverse = await crossCheck(fileSource(twin), fileSource(a.outDir));
    expect(reverse.map((f) => [f.category, f.seq]).sort()).toEqual([
      ["missing", 20],
      ["modified", 31],
    ]);
  });
});

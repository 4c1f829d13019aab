import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfigFile } from "../../agent/config/load.js";
import { ReloadableAgent } from "../../agent/service/reload.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { makeTempDir, postAuditRecords, testConfigYaml } from "../helpers/agent.js";

/**
 * A reload must keep the WAL (agent/service/reload.ts): the same directory, not merely the
 * same path. A path whose symlink was re-pointed, or whose directory was replaced, since
 * the agent opened it names another WAL: reloading onto it would stop the agent, to start
 * another chain there or not at all.
 */
describe("SIGHUP reload and the WAL directory's identity", () => {
  const setup = async (walTarget: string) => {
    const tmp = makeTempDir();
    mkdirSync(join(tmp.path, walTarget));
    symlinkSync(join(tmp.path, walTarget), join(tmp.path, "wal"));
    const file = join(tmp.path, "agent.yaml");
    writeFileSync(file, testConfigYaml({ dir: tmp.path, grpc: false }));
    const load = (f: string) => loadConfigFile(f, {});
    const logger = createLogger("fatal");
    const agent = await ReloadableAgent.start(load(file), { file, load, logger });
    return { tmp, file, agent };
  };

  it("refuses a reload after the WAL path's symlink was re-pointed, or its directory replaced", async () => {
    const { tmp, agent } = await setup("wal-a");
    try {
      const first = agent.current;
      const url = `http://${first.addresses().otlp?.http}/v1/logs`;
      expect(await postAuditRecords(url, 0, 3)).toBe(200);
      // Re-pointed to an empty directory (or, as bad, to an old copy of the WAL).
      mkdirSync(join(tmp.path, "wal-b"));
      rmSync(join(tmp.path, "wal"));
      symlinkSync(join(tmp.path, "wal-b"), join(tmp.path, "wal"));
      await agent.reload();
      expect(agent.current).toBe(first);
      // Back as it was: the reload goes through.
      rmSync(join(tmp.path, "wal"));
      symlinkSync(join(tmp.path, "wal-a"), join(tmp.path, "wal"));
      await agent.reload();
      expect(agent.current).not.toBe(first);
      expect(agent.current.chainId).toBe(first.chainId);
      const second = agent.current;
      // The directory itself moved away and another put at its place.
      renameSync(join(tmp.path, "wal-a"), join(tmp.path, "wal-a.moved"));
      mkdirSync(join(tmp.path, "wal-a"));
      await agent.reload();
      expect(agent.current).toBe(second);
      await agent.shutdown(1000);
    } finally {
      await agent.shutdown(1000);
      tmp.cleanup();
    }
  }, 30_000);

  it("refuses the same directory written another way (its anchor is found beside the path)", async () => {
    const { tmp, file, agent } = await setup("wal-a");
    try {
      const first = agent.current;
      symlinkSync(join(tmp.path, "wal-a"), join(tmp.path, "alias"));
      writeFileSync(
        file,
        testConfigYaml({ dir: tmp.path, grpc: false }).replace(
          `directory: ${join(tmp.path, "wal")}`,
          `directory: ${join(tmp.path, "alias")}`,
        ),
      );
      await agent.reload();
      expect(agent.current).toBe(first);
    } finally {
      await agent.shutdown(1000);
      tmp.cleanup();
    }
  }, 30_000);
});

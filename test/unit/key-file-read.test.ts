import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AgentError } from "../../agent/common/errors.js";
import { readPrivateKey, writeKeyPair } from "../../agent/integrity/key-files.js";
import { generateSigningKey } from "../../agent/integrity/signing.js";
import { makeTempDir } from "../helpers/agent.js";

/**
 * readPrivateKey checks and reads one open file (agent/integrity/key-files.ts): the path is
 * opened once, and the mode checked is that of what is read. Checked by path and read by
 * path again, a key swapped in between (for a world-readable file, a FIFO, a directory)
 * was read unchecked, or hung the agent, or failed with an uncoded error.
 */
describe("readPrivateKey reads what it checked", () => {
  const tmp = makeTempDir();
  afterAll(() => tmp.cleanup());

  it("reads an owner-only key", () => {
    const path = join(tmp.path, "k", "signing.key");
    writeKeyPair(path, generateSigningKey("audit-agent"));
    expect(readPrivateKey(path, "audit-agent").public.verifierKey).toMatch(/^audit-agent\+/);
  });

  it("refuses a directory (mode 0700) with a coded error", () => {
    const dir = join(tmp.path, "a-dir");
    mkdirSync(dir, { mode: 0o700 });
    const err = (() => {
      try {
        readPrivateKey(dir, "audit-agent");
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe("CONFIG_FILE_UNREADABLE");
  });

  it("refuses a FIFO (mode 0600) without waiting for a writer", () => {
    const fifo = join(tmp.path, "fifo.key");
    execFileSync("mkfifo", [fifo]);
    chmodSync(fifo, 0o600);
    // In a child (on the build: npm run build): a read that blocks would hang this worker.
    const run = () =>
      execFileSync(
        process.execPath,
        [
          "-e",
          `import("./dist/agent/integrity/key-files.js").then(({ readPrivateKey }) => { try { readPrivateKey(${JSON.stringify(fifo)}, "x"); } catch (e) { console.log(e.code); } })`,
        ],
        { timeout: 10_000, encoding: "utf8" },
      );
    expect(run().trim()).toBe("CONFIG_FILE_UNREADABLE");
  });
});

import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { fileExporterConfigSchema } from "../../agent/exporters/file/config.js";
import { FileSink } from "../../agent/exporters/file/file-sink.js";
import {
  killAgent,
  makeTempDir,
  postAuditRecords,
  spawnAgent,
  testConfigYaml,
} from "../helpers/agent.js";

/**
 * The file exporter's output is its owner's alone, or readable by the group when asked
 * (group_readable), whatever the umask: audit records are not for every user of the host.
 */

const dirs: Array<{ cleanup(): void }> = [];
const umask = process.umask();
afterEach(() => {
  process.umask(umask);
  for (const d of dirs.splice(0)) d.cleanup();
});

async function modesWritten(groupReadable: boolean) {
  const d = makeTempDir("file-modes-");
  dirs.push(d);
  process.umask(0); // the most permissive umask a process could inherit
  const out = join(d.path, "out", "nested");
  const sink = new FileSink(
    fileExporterConfigSchema.parse({ directory: out, group_readable: groupReadable }),
    pino({ level: "silent" }),
  );
  const chainId = "0123456789abcdef0123456789abcdef";
  await sink.open(chainId);
  await sink.write({
    index: 0,
    firstSeq: 0,
    lastSeq: -1,
    count: 0,
    records: [],
    manifest: '{"manifest":true}',
    checkpoint: null,
  } as never);
  await sink.close();
  const chainDir = join(out, chainId);
  const mode = (p: string) => statSync(p).mode & 0o777;
  const files = ["records", "manifests"].map((k) =>
    join(chainDir, `${k}-00000000000000000000.ndjson`),
  );
  return { dirs: [out, chainDir].map(mode), files: files.map(mode) };
}

describe("file exporter output modes", () => {
  it("are 0700 and 0600 by default, even under umask 000", async () => {
    expect(await modesWritten(false)).toEqual({ dirs: [0o700, 0o700], files: [0o600, 0o600] });
  });

  it("are 0750 and 0640 with group_readable", async () => {
    expect(await modesWritten(true)).toEqual({ dirs: [0o750, 0o750], files: [0o640, 0o640] });
  });
});

describe("audit-agent run", () => {
  it("creates its WAL, keys and output owner-only under an inherited umask 000", async () => {
    const d = makeTempDir("run-modes-");
    dirs.push(d);
    process.umask(0); // inherited by the child
    const agent = await spawnAgent(testConfigYaml({ dir: d.path, grpc: false }), d.path);
    try {
      expect(await postAuditRecords(agent.httpUrl, 0, 3)).toBe(200);
    } finally {
      await killAgent(agent, "SIGTERM");
    }
    const loose: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        const mode = statSync(p).mode & 0o777;
        if (e.isDirectory()) {
          if (mode & 0o077) loose.push(`${p} ${mode.toString(8)}`);
          walk(p);
        } else if (mode & 0o077 && !p.endsWith(".pub") && !p.endsWith("agent.yaml"))
          loose.push(`${p} ${mode.toString(8)}`);
      }
    };
    for (const sub of ["wal", "keys", "out"]) walk(join(d.path, sub));
    expect(loose).toEqual([]);
  });
});

import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateSigningKey } from "../../agent/integrity/signing.js";
import { makeTempDir, runCli, testConfigYaml } from "../helpers/agent.js";

/**
 * Mistakes an operator makes get a coded error that says what to fix, the exit code of the
 * CLI's convention (agent/cli/main.ts: 2 usage or config, 3 a source unreachable), no stack
 * trace, and nothing created or changed (issue 17).
 */

const STACK = "    at ";
/** A run that is not refused would serve until killed: the limit makes such a test fail. */
const LIMIT = { timeoutMs: 20_000 };

/** Every path under `dir`, relative, for "nothing was created" checks. */
function tree(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).sort();
}

function expectRefused(
  r: { status: number; stdout: string; stderr: string },
  status: number,
  code: string,
) {
  expect(r.stderr, r.stderr).toContain(`audit-agent: ${code}: `);
  expect(r.stderr).not.toContain(STACK);
  expect(r.stderr).not.toContain("internal error");
  expect(r.status, r.stderr).toBe(status);
}

describe("prove --agent when the checkpoint endpoint cannot answer", () => {
  let server: Server | null = null;

  afterEach(async () => {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    server = null;
  });

  /** An HTTP server on an ephemeral port answering every request with `status` and `body`. */
  async function serve(status: number, body: string): Promise<string> {
    server = createServer((_req, res) => res.writeHead(status).end(body));
    await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it("no endpoint listening: PROVE_AGENT_UNREACHABLE naming the URL and the setting, exit 3", async () => {
    const url = await serve(200, "");
    await new Promise((r) => server?.close(r)); // the port is now free: nothing listens
    server = null;
    const r = await runCli(["prove", "--seq", "0", "--agent", url]);
    expectRefused(r, 3, "PROVE_AGENT_UNREACHABLE");
    expect(r.stderr).toContain(`cannot reach ${url}/proof/inclusion?seq=0 (ECONNREFUSED)`);
    expect(r.stderr).toContain("extensions.signing.endpoint");
    expect(r.stdout).toBe("");
  });

  it("an answer that is not JSON: PROVE_AGENT_BAD_ANSWER, exit 1", async () => {
    const url = await serve(200, "garbage");
    const r = await runCli(["prove", "--seq", "0", "--agent", url]);
    expectRefused(r, 1, "PROVE_AGENT_BAD_ANSWER");
    expect(r.stderr).toContain(`${url}/proof/inclusion?seq=0 answered HTTP 200 with text`);
  });

  it("JSON that is not the proof asked for: PROVE_AGENT_BAD_ANSWER", async () => {
    const url = await serve(200, JSON.stringify({ type: "inclusion", seq: "x" }));
    const r = await runCli(["prove", "--consistency", "1", "2", "--agent", url]);
    expectRefused(r, 1, "PROVE_AGENT_BAD_ANSWER");
    expect(r.stderr).toContain("JSON that is not a consistency proof");
  });

  it("a non-2xx answer without the endpoint's error: PROVE_AGENT_ERROR saying what to check", async () => {
    const url = await serve(404, "<html>not found</html>");
    const r = await runCli(["prove", "--seq", "0", "--agent", `${url}/`]);
    expectRefused(r, 1, "PROVE_AGENT_ERROR");
    expect(r.stderr).toContain(`${url}/proof/inclusion?seq=0 answered HTTP 404`);
    expect(r.stderr).toContain("extensions.signing.endpoint");
  });

  it("the endpoint's own error is passed on", async () => {
    const url = await serve(400, JSON.stringify({ error: "seq 9 is not in the sealed tree" }));
    const r = await runCli(["prove", "--seq", "9", "--agent", url]);
    expectRefused(r, 1, "PROVE_AGENT_ERROR");
    expect(r.stderr).toContain("answered HTTP 400: seq 9 is not in the sealed tree");
  });

  it("--agent that is not an http(s) URL: PROVE_USAGE, exit 2", async () => {
    for (const agent of ["127.0.0.1:8890", "ftp://host/", "not a url"]) {
      const r = await runCli(["prove", "--seq", "0", "--agent", agent]);
      expectRefused(r, 2, "PROVE_USAGE");
      expect(r.stderr).toContain(`--agent "${agent}" is not an http(s) URL`);
    }
  });
});

describe("prove without --agent where no WAL is", () => {
  it("is PROVE_NO_WAL, exit 2, and creates no empty WAL", async () => {
    const tmp = makeTempDir();
    try {
      const file = join(tmp.path, "agent.yaml");
      writeFileSync(file, testConfigYaml({ dir: tmp.path }));
      const r = await runCli(["prove", "--seq", "0", "--config", file], { cwd: tmp.path });
      expectRefused(r, 2, "PROVE_NO_WAL");
      expect(r.stderr).toContain(`no write-ahead log at ${join(tmp.path, "wal")}`);
      expect(tree(tmp.path)).toEqual(["agent.yaml"]);
    } finally {
      tmp.cleanup();
    }
  });
});

describe("configs and paths that cannot be used are refused before anything changes", () => {
  let tmp: ReturnType<typeof makeTempDir>;

  beforeEach(() => {
    tmp = makeTempDir();
  });
  afterEach(() => tmp.cleanup());

  /** Writes the test config (everything under the temp dir) edited by `edit`, returns its path. */
  function config(yaml: string): string {
    const file = join(tmp.path, "agent.yaml");
    writeFileSync(file, yaml);
    return file;
  }

  it("a missing previous_key_file: validate and run refuse it, and run generates no key", async () => {
    const missing = join(tmp.path, "old", "previous.key");
    const file = config(testConfigYaml({ dir: tmp.path, previousKeyFile: missing }));
    const before = tree(tmp.path);

    const v = await runCli(["validate", "--config", file]);
    expectRefused(v, 2, "CONFIG_FILE_MISSING");
    expect(v.stderr).toContain(
      `extensions.signing.previous_key_file: ${missing} does not exist (nor does its directory ${join(tmp.path, "old")})`,
    );
    expect(v.stdout).toBe("");

    const r = await runCli(["run", "--config", file], { cwd: tmp.path, ...LIMIT });
    expectRefused(r, 2, "CONFIG_FILE_MISSING");
    expect(r.stderr).toContain("extensions.signing.previous_key_file");
    // No key generated, no WAL opened, no output directory.
    expect(tree(tmp.path)).toEqual(before);
  });

  it("the WAL directory is a file, or under one: CONFIG_DIR_UNUSABLE, no key generated", async () => {
    writeFileSync(join(tmp.path, "wal"), "not a directory");
    const file = config(testConfigYaml({ dir: tmp.path }));
    const before = tree(tmp.path);
    const v = await runCli(["validate", "--config", file]);
    expectRefused(v, 2, "CONFIG_DIR_UNUSABLE");
    expect(v.stderr).toContain(
      `extensions.wal.directory: ${join(tmp.path, "wal")} is a file, not a directory`,
    );
    const r = await runCli(["run", "--config", file], { cwd: tmp.path, ...LIMIT });
    expectRefused(r, 2, "CONFIG_DIR_UNUSABLE");
    expect(tree(tmp.path)).toEqual(before);

    const under = config(
      testConfigYaml({ dir: tmp.path }).replace(
        `directory: ${join(tmp.path, "wal")}`,
        `directory: ${join(tmp.path, "wal", "inner")}`,
      ),
    );
    const u = await runCli(["run", "--config", under], { cwd: tmp.path, ...LIMIT });
    expectRefused(u, 2, "CONFIG_DIR_UNUSABLE");
    expect(u.stderr).toContain(`${join(tmp.path, "wal")} is a file, so`);
    expect(tree(tmp.path)).toEqual(before);
  });

  it("a signing key group or others can read: KEY_FILE_UNSAFE with the chmod that fixes it", async () => {
    const keys = await runCli(["keygen", "--out", join(tmp.path, "keys"), "--name", "signing"]);
    expect(keys.status, keys.stderr).toBe(0);
    const key = join(tmp.path, "keys", "signing.key");
    chmodSync(key, 0o640);
    const file = config(testConfigYaml({ dir: tmp.path }));
    const before = tree(tmp.path);
    const v = await runCli(["validate", "--config", file]);
    expectRefused(v, 2, "KEY_FILE_UNSAFE");
    expect(v.stderr).toContain(
      `extensions.signing.key_file: ${key} holds a signing key and is readable by group or others (mode 0640): run chmod 600 ${key}`,
    );
    const r = await runCli(["run", "--config", file], { cwd: tmp.path, ...LIMIT });
    expectRefused(r, 2, "KEY_FILE_UNSAFE");
    expect(tree(tmp.path)).toEqual(before);
  });
});

describe("numeric options given garbage", () => {
  let tmp: ReturnType<typeof makeTempDir>;

  beforeEach(() => {
    tmp = makeTempDir();
  });
  afterEach(() => tmp.cleanup());

  it("run --grace and AUDIT_AGENT_GRACE_SECONDS: exit 2 with the accepted form, nothing started", async () => {
    const file = join(tmp.path, "agent.yaml");
    writeFileSync(file, testConfigYaml({ dir: tmp.path }));
    const cases: Array<[string[], Record<string, string>, string]> = [
      [["--grace", "abc"], {}, "abc"],
      [["--grace", "-5"], {}, "-5"],
      [["--grace", "NaN"], {}, "NaN"],
      [["--grace", "1e3"], {}, "1e3"],
      [[], { AUDIT_AGENT_GRACE_SECONDS: "-3" }, "-3"],
      [[], { AUDIT_AGENT_GRACE_SECONDS: "ten" }, "ten"],
    ];
    for (const [args, env, value] of cases) {
      const r = await runCli(["run", "--config", file, ...args], {
        cwd: tmp.path,
        env,
        ...LIMIT,
      });
      expectRefused(r, 2, "CLI_BAD_OPTION");
      expect(r.stderr).toContain(
        `--grace (or AUDIT_AGENT_GRACE_SECONDS) "${value}" is invalid: give a number of seconds ≥ 0, such as 30`,
      );
    }
    expect(tree(tmp.path)).toEqual(["agent.yaml"]);
  });

  it("whole-number options of verify and prove refuse fractions, signs and words", async () => {
    const cases: Array<[string[], string]> = [
      [
        ["verify", "--source", "file:.", "--threads", "65"],
        '--threads "65" is invalid: give a whole number from 0 to 64',
      ],
      [
        ["verify", "--source", "file:.", "--spot-check", "1.5"],
        '--spot-check "1.5" is invalid: give a whole number ≥ 0',
      ],
      [
        ["verify", "--source", "file:.", "--quorum", "0"],
        '--quorum "0" is invalid: give a whole number ≥ 1',
      ],
      [["prove", "--seq", "-1"], '--seq "-1" is invalid: give a whole number ≥ 0'],
      [["prove", "--consistency", "1", "two"], '--consistency "two" is invalid'],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args, { cwd: tmp.path });
      expectRefused(r, 2, "CLI_BAD_OPTION");
      expect(r.stderr).toContain(message);
    }
    expect(tree(tmp.path)).toEqual([]);
  });
});

describe("a witness config that is not valid", () => {
  it("is WITNESS_CONFIG_INVALID with its code, exit 2, nothing created", async () => {
    const tmp = makeTempDir();
    try {
      const file = join(tmp.path, "witness.yaml");
      writeFileSync(file, "witness:\n  key_file: w.key\n  state_dir: state\n  listn: x\n");
      const r = await runCli(["witness", "--config", file], { cwd: tmp.path, ...LIMIT });
      expectRefused(r, 2, "WITNESS_CONFIG_INVALID");
      expect(r.stderr).toContain(`${file}:4:3: witness.listn: unknown key "listn"`);
      expect(tree(tmp.path)).toEqual(["witness.yaml"]);
    } finally {
      tmp.cleanup();
    }
  });

  it("a missing key and a world-readable TLS key are refused before the state is created", async () => {
    const tmp = makeTempDir();
    try {
      const file = join(tmp.path, "witness.yaml");
      const tlsKey = join(tmp.path, "tls.key");
      writeFileSync(join(tmp.path, "tls.crt"), "cert");
      writeFileSync(tlsKey, "key", { mode: 0o644 });
      chmodSync(tlsKey, 0o644);
      const logKey = generateSigningKey("log.example").public.verifierKey;
      writeFileSync(
        file,
        `witness:\n  key_file: w.key\n  state_dir: state\n  listen: 127.0.0.1:0\n  tls:\n    cert_file: tls.crt\n    key_file: tls.key\n  logs:\n    - origin: log.example/x\n      keys: ["${logKey}"]\n`,
      );
      const before = tree(tmp.path);
      const r = await runCli(["witness", "--config", file], { cwd: tmp.path, ...LIMIT });
      expectRefused(r, 2, "WITNESS_CONFIG_INVALID");
      expect(r.stderr).toContain(
        "  - CONFIG_FILE_MISSING: witness.key_file: w.key does not exist: create the key with audit-agent keygen --witness",
      );
      expect(r.stderr).toContain(
        "  - CONFIG_FILE_UNSAFE: witness.tls.key_file: tls.key holds a secret and is readable by every user of the host (mode 0644): run chmod 600 tls.key",
      );
      expect(tree(tmp.path)).toEqual(before);
    } finally {
      tmp.cleanup();
    }
  });
});

describe("keygen --out and wal --dir pointed at a bad path", () => {
  let tmp: ReturnType<typeof makeTempDir>;

  beforeEach(() => {
    tmp = makeTempDir();
    writeFileSync(join(tmp.path, "afile"), "x");
  });
  afterEach(() => tmp.cleanup());

  it("keygen --out a file, or a directory under a file: CLI_BAD_PATH, nothing written", async () => {
    for (const [out, message] of [
      ["afile", "afile is a file, not a directory"],
      ["afile/keys", `${join(tmp.path, "afile")} is a file, so afile/keys cannot be created`],
    ] as const) {
      const r = await runCli(["keygen", "--out", out], { cwd: tmp.path });
      expectRefused(r, 2, "CLI_BAD_PATH");
      expect(r.stderr).toContain(message);
    }
    expect(tree(tmp.path)).toEqual(["afile"]);
  });

  it("keygen where NAME.pub cannot be written keeps no private key", async () => {
    mkdirSync(join(tmp.path, "keys", "k.pub"), { recursive: true });
    const r = await runCli(["keygen", "--out", "keys", "--name", "k"], { cwd: tmp.path });
    expectRefused(r, 2, "KEYGEN_WRITE_FAILED");
    expect(existsSync(join(tmp.path, "keys", "k.key"))).toBe(false);
  });

  it.skipIf(process.getuid?.() === 0)(
    "keygen --out under a directory the user cannot write: CLI_BAD_PATH",
    async () => {
      mkdirSync(join(tmp.path, "ro"), { mode: 0o500 });
      const r = await runCli(["keygen", "--out", "ro/keys"], { cwd: tmp.path });
      expectRefused(r, 2, "CLI_BAD_PATH");
      expect(r.stderr).toContain("is not writable by the agent's user");
      chmodSync(join(tmp.path, "ro"), 0o700);
      expect(tree(join(tmp.path, "ro"))).toEqual([]);
    },
  );

  it("wal check, repair and new-chain --dir a file: CLI_BAD_PATH, no copy made", async () => {
    for (const args of [["check"], ["repair"], ["new-chain", "--reason", "disk lost"]]) {
      const r = await runCli(["wal", ...args, "--dir", "afile"], { cwd: tmp.path });
      expectRefused(r, 2, "CLI_BAD_PATH");
      expect(r.stderr).toContain("--dir afile is a file, not a directory");
    }
    expect(tree(tmp.path)).toEqual(["afile"]);
  });
});

import { describe, expect, it } from "vitest";
import { generateSigningKey } from "../../agent/integrity/signing.js";
import { parseWitnessConfig } from "../../agent/witness/config.js";

/**
 * The witness's config (docs/witness.md): validated like the agent's, each problem reported
 * as file:line:col: key.path: what is wrong, unknown keys refused.
 */

const KEY = generateSigningKey("payments").public.verifierKey;

const problemsOf = (yaml: string, env: Record<string, string> = {}): string => {
  try {
    parseWitnessConfig(yaml, "w.yaml", env);
  } catch (err) {
    expect((err as { code: string }).code).toBe("WITNESS_CONFIG_INVALID");
    return (err as Error).message;
  }
  throw new Error("the config was accepted");
};

describe("witness config", () => {
  it("reads a minimal config with its defaults, expanding ${env:…}", () => {
    const config = parseWitnessConfig(
      `witness:
  key_file: \${env:KEY_FILE}
  state_dir: ./state
  logs:
    - origin: audit.example.com/payments
      keys: ["${KEY}"]
    - origin_prefix: otel-audit-agent/
      keys: ["\${env:AGENT_KEY}"]
`,
      "w.yaml",
      { KEY_FILE: "/keys/w.key", AGENT_KEY: KEY },
    );
    expect(config).toMatchObject({
      keyFile: "/keys/w.key",
      stateDir: "./state",
      listen: "127.0.0.1:8891",
      tls: null,
      maxBodyBytes: 65536,
      submissionPrefix: "",
      alertWindowMs: 3_600_000,
      logLevel: "info",
      warnings: [],
    });
    expect(config.logs.map((l) => [l.origin, l.originPrefix, l.keys[0]?.verifierKey])).toEqual([
      ["audit.example.com/payments", undefined, KEY],
      [undefined, "otel-audit-agent/", KEY],
    ]);
  });

  it("names every bad field with its place in the file", () => {
    const message = problemsOf(`witness:
  key_file: ./w.key
  state_dir: ./state
  listen: localhost
  max_body_bytes: 10
  submission_prefix: witness/
  alert_window: 5
  tls:
    cert_file: ./c.pem
  logs:
    - origin: a
      origin_prefix: b
      keys: ["${KEY}"]
    - origin: c
      keys: ["not-a-key"]
    - origin: c
      keys: []
      extra: 1
`);
    for (const problem of [
      `w.yaml:4:11: witness.listen: endpoint "localhost" must be host:port`,
      "w.yaml:5:19: witness.max_body_bytes: at least 1024 bytes",
      "w.yaml:6:22: witness.submission_prefix:",
      'w.yaml:7:17: witness.alert_window: duration 5 needs a unit: write "5s" or "5ms"',
      "w.yaml:9:5: witness.tls.key_file: required: expected string",
      "w.yaml:11:15: witness.logs[0].origin: set exactly one of origin (an exact origin line) and origin_prefix",
      'w.yaml:15:14: witness.logs[1].keys[0]: "not-a-key" is not a verifier key',
      "w.yaml:17:13: witness.logs[2].keys: list the log's verifier keys",
      'w.yaml:18:7: witness.logs[2].extra: unknown key "extra": check the spelling against docs/witness.md',
    ])
      expect(message).toContain(problem);
  });

  it("refuses a missing witness section, unknown top-level keys, duplicate origins and bad YAML", () => {
    expect(problemsOf("listen: 1\n")).toContain('w.yaml:1:1: listen: unknown key "listen"');
    expect(problemsOf("witness:\n  key_file: k\n")).toContain(
      "witness.state_dir: required: expected string",
    );
    const twice = problemsOf(`witness:
  key_file: k
  state_dir: s
  logs:
    - origin: a
      keys: ["${KEY}"]
    - origin: a
      keys: ["${KEY}"]
`);
    expect(twice).toContain(
      'w.yaml:7:15: witness.logs[1].origin: origin "a" is listed twice: merge the keys into one entry',
    );
    expect(problemsOf("witness:\n  key_file: k\n  key_file: j\n")).toContain(
      'w.yaml:3:3: duplicate key "key_file"',
    );
  });

  it("refuses an origin with a control character", () => {
    expect(
      problemsOf(
        `witness:\n  key_file: k\n  state_dir: s\n  logs:\n    - origin: "a\\tb"\n      keys: ["${KEY}"]\n`,
      ),
    ).toContain("witness.logs[0].origin: must be one line of text, without control characters");
  });
});

import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checkConfigFiles, configFileProblems } from "../../agent/config/file-checks.js";
import { parseConfig } from "../../agent/config/load.js";
import { cosignerKeyOf } from "../../agent/integrity/cosignature.js";
import { writeKeyPair } from "../../agent/integrity/key-files.js";
import { generateSigningKey } from "../../agent/integrity/signing.js";
import { makeTempDir, testConfigYaml } from "../helpers/agent.js";

/**
 * The files and directories a config names, as `validate` and `run` check them before
 * changing anything (agent/config/file-checks.ts): each problem names the setting, the file,
 * what is wrong and what to do.
 */

let tmp: ReturnType<typeof makeTempDir>;
beforeEach(() => {
  tmp = makeTempDir();
});
afterEach(() => tmp.cleanup());

/** A file under the temp dir with `mode`. */
function file(name: string, mode = 0o600): string {
  const path = join(tmp.path, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, "content\n");
  chmodSync(path, mode);
  return path;
}

/** The test config with `extra` YAML inserted after `after` (which must occur once). */
function yaml(edits: Array<[string, string]> = [], base = testConfigYaml({ dir: tmp.path })) {
  let text = base;
  for (const [after, extra] of edits) {
    if (!text.includes(after)) throw new Error(`no "${after}" in the config`);
    text = text.replace(after, `${after}\n${extra}`);
  }
  return text;
}

function problems(text: string) {
  return configFileProblems(parseConfig(text, "agent.yaml", {})).map(
    (p) => `${p.code} ${p.setting}: ${p.message}`,
  );
}

const HTTP = "      http:\n        endpoint: 127.0.0.1:0";
const GRPC = "      grpc:\n        endpoint: 127.0.0.1:0";
const SIGNING = "  signing:";

describe("files a config names", () => {
  it("passes a config whose files all exist with safe modes, and a key still to be generated", () => {
    const cert = file("tls/cert.pem", 0o644);
    const key = file("tls/key.pem", 0o640); // group-readable: a Secret mounted with fsGroup
    const token = file("token", 0o440);
    expect(
      problems(
        yaml([
          [HTTP, `        tls:\n          cert_file: ${cert}\n          key_file: ${key}`],
          [GRPC, `        auth:\n          bearer_token_file: ${token}`],
        ]),
      ),
    ).toEqual([]);
  });

  it("names the setting of a missing certificate, an unsafe TLS key and a CA that is a directory", () => {
    const key = file("tls/key.pem", 0o644);
    const ca = join(tmp.path, "tls");
    const cert = join(tmp.path, "tls", "cert.pem");
    expect(
      problems(
        yaml([
          [
            HTTP,
            `        tls:\n          cert_file: ${cert}\n          key_file: ${key}\n          client_ca_file: ${ca}`,
          ],
        ]),
      ),
    ).toEqual([
      `CONFIG_FILE_MISSING receivers.otlp.protocols.http.tls.cert_file: ${cert} does not exist: fix the path, or create the file`,
      `CONFIG_FILE_UNSAFE receivers.otlp.protocols.http.tls.key_file: ${key} holds a secret and is readable by every user of the host (mode 0644): run chmod 600 ${key} (on Kubernetes, mount the Secret with defaultMode: 0440 or tighter)`,
      `CONFIG_FILE_UNREADABLE receivers.otlp.protocols.http.tls.client_ca_file: ${ca} is not a file (a directory?): give the file's path`,
    ]);
  });

  it("refuses a world-readable receiver token as the receiver would (AUTH_TOKEN_UNSAFE)", () => {
    const token = file("token", 0o604);
    expect(
      problems(yaml([[GRPC, `        auth:\n          bearer_token_file: ${token}`]])),
    ).toEqual([
      `AUTH_TOKEN_UNSAFE receivers.otlp.protocols.grpc.auth.bearer_token_file: ${token} holds a secret and is readable by every user of the host (mode 0604): run chmod 600 ${token} (on Kubernetes, mount the Secret with defaultMode: 0440 or tighter)`,
    ]);
  });

  it("checks exporters' TLS files, witnesses' token and CA files and trusted keys", () => {
    const cosigner = cosignerKeyOf(generateSigningKey("w.example")).verifierKey;
    const token = file("witness-token", 0o666);
    const ca = join(tmp.path, "missing-ca.pem");
    const trust = join(tmp.path, "old.pub");
    const text = yaml([
      [
        "exporters:",
        `  otlp_http:\n    endpoint: https://upstream:4318\n    tls:\n      ca_file: ${ca}`,
      ],
      [
        SIGNING,
        `    witnesses:\n      - url: https://w.example/\n        key: ${cosigner}\n        bearer_token_file: ${token}\n        tls:\n          ca_file: ${ca}`,
      ],
      ["extensions:", `  verification:\n    trust: [${trust}]`],
    ]).replace("exporters: [file]", "exporters: [file, otlp_http]");
    expect(problems(text)).toEqual([
      `CONFIG_FILE_UNSAFE extensions.signing.witnesses[0].bearer_token_file: ${token} holds a secret and is readable by every user of the host (mode 0666): run chmod 600 ${token} (on Kubernetes, mount the Secret with defaultMode: 0440 or tighter)`,
      `CONFIG_FILE_MISSING extensions.signing.witnesses[0].tls.ca_file: ${ca} does not exist: fix the path, or create the file`,
      `CONFIG_FILE_MISSING extensions.verification.trust[0]: ${trust} does not exist: fix the path, or create the file`,
      `CONFIG_FILE_MISSING exporters.otlp_http.tls.ca_file: ${ca} does not exist: fix the path, or create the file`,
    ]);
  });

  it("a signing key: refused when group-readable, missing without generate_if_missing, or its directory unusable", () => {
    const keyFile = join(tmp.path, "keys", "signing.key");
    writeKeyPair(keyFile, generateSigningKey("s"));
    expect(problems(yaml())).toEqual([]);
    chmodSync(keyFile, 0o640);
    expect(problems(yaml())).toEqual([
      `KEY_FILE_UNSAFE extensions.signing.key_file: ${keyFile} holds a signing key and is readable by group or others (mode 0640): run chmod 600 ${keyFile}`,
    ]);

    const absent = join(tmp.path, "none", "signing.key");
    const noKey = testConfigYaml({ dir: tmp.path, keyFile: absent });
    expect(problems(noKey)).toEqual([]); // generate_if_missing (the default) will create it
    expect(problems(yaml([[SIGNING, "    key_env: AUDIT_KEY_PEM"]], noKey))).toEqual([]);
    expect(problems(yaml([[SIGNING, "    generate_if_missing: false"]], noKey))).toEqual([
      `KEY_FILE_MISSING extensions.signing.key_file: ${absent} does not exist and generate_if_missing is false: create it with audit-agent keygen --out ${join(tmp.path, "none")}, or fix the path`,
    ]);
    const underFile = join(file("plain"), "signing.key");
    expect(problems(testConfigYaml({ dir: tmp.path, keyFile: underFile }))).toEqual([
      `CONFIG_DIR_UNUSABLE extensions.signing.key_file: ${join(tmp.path, "plain")} is a file, not a directory: give a directory, or move the file away`,
    ]);
  });

  it("a file exporter's directory that is a file", () => {
    const out = file("out");
    expect(problems(yaml())).toEqual([
      `CONFIG_DIR_UNUSABLE exporters.file.directory: ${out} is a file, not a directory: give a directory, or move the file away`,
    ]);
  });

  it("reports every problem in one coded error", () => {
    const previous = join(tmp.path, "previous.key");
    const config = parseConfig(
      testConfigYaml({ dir: tmp.path, previousKeyFile: previous }).replace(
        `directory: ${join(tmp.path, "out")}`,
        "directory: /dev/null/out",
      ),
      "agent.yaml",
      {},
    );
    expect(() => checkConfigFiles(config)).toThrow(
      expect.objectContaining({
        code: "CONFIG_FILE_MISSING",
        message: expect.stringMatching(
          /^agent\.yaml names files the agent cannot use:\n {2}- CONFIG_FILE_MISSING: extensions\.signing\.previous_key_file: .*\n {2}- CONFIG_DIR_UNUSABLE: exporters\.file\.directory: \/dev\/null is a file/,
        ),
      }),
    );
  });
});

import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { ErrorCode } from "../common/error-codes.js";
import { AgentError } from "../common/errors.js";
import type { AgentConfig } from "./load.js";
import { directoryProblem } from "../common/directory-check.js";
import { dotted, type Path } from "./parse-problems.js";

/**
 * The files and directories a valid config names, checked before the agent changes
 * anything: `audit-agent validate` reports what `run` would trip over later (a missing
 * previous_key_file used to crash `run` after it had generated a new key), and `run` checks
 * the same at start, before it opens the WAL or creates a key.
 *
 * Each file must exist and be readable; a secret must not be readable by others, as ssh
 * refuses a 0644 key:
 * - signing keys (signing key_file, previous_key_file) by group or others, as the agent
 *   refuses them when it reads them (KEY_FILE_UNSAFE);
 * - bearer tokens and TLS private keys by others: group-readable is allowed, since a
 *   Kubernetes Secret mounted with fsGroup is (the receiver's AUTH_TOKEN_UNSAFE rule).
 * A directory the agent writes (the WAL, a file exporter's output, the directory of a key
 * generate_if_missing will create) must be one, or be creatable, and be writable.
 * Files are found by name: every `*_file` setting, so a new component's are checked too.
 */

/** One thing wrong with a file or directory the config names. */
export interface FileProblem {
  code: ErrorCode;
  /** The setting, e.g. `extensions.signing.previous_key_file`. */
  setting: string;
  /** What is wrong and what to do, naming the file. */
  message: string;
}

/** What a file holds, which decides who may read it. */
type Kind = "signing key" | "secret" | "public";

/** Group or others (a signing key) or others alone (a token, a TLS key) may not read it. */
const UNSAFE_BITS: Record<Kind, number> = { "signing key": 0o077, secret: 0o007, public: 0 };

/** Throws the problems of the files `config` names, all of them, as one coded error. */
export function checkConfigFiles(config: AgentConfig): void {
  const problems = configFileProblems(config);
  const first = problems[0];
  if (!first) return;
  throw new AgentError(
    first.code,
    `${config.file} names files the agent cannot use:\n${listed(problems)}`,
  );
}

/** The problems one per line, each with its code and setting, for an error message. */
export function listed(problems: readonly FileProblem[]): string {
  return problems.map((p) => `  - ${p.code}: ${p.setting}: ${p.message}`).join("\n");
}

export function configFileProblems(config: AgentConfig): FileProblem[] {
  const problems: FileProblem[] = [];
  const ids = config.extensionIds;
  signingFiles(config, ["extensions", ids.signing], problems);
  for (const [i, file] of (config.verification?.trust ?? []).entries())
    checkFile(
      file,
      "public",
      ["extensions", ids.verification ?? "verification", "trust", i],
      problems,
    );
  checkDirectory(config.wal.directory, ["extensions", ids.wal, "directory"], problems);
  for (const r of config.receivers) namedFiles(r.config, ["receivers", r.id], problems);
  for (const e of config.exporters) namedFiles(e.config, ["exporters", e.id], problems);
  return problems;
}

/**
 * The files of a witness config (`audit-agent witness`), checked as the agent's are before
 * the witness creates its state: its key (a signing key) and its TLS certificate and key.
 */
export function witnessFileProblems(config: {
  keyFile: string;
  tls: { certFile: string; keyFile: string } | null;
}): FileProblem[] {
  const problems: FileProblem[] = [];
  checkFile(config.keyFile, "signing key", ["witness", "key_file"], problems, {
    missing:
      "create the key with audit-agent keygen --witness --out DIR --name NAME, or fix the path",
  });
  if (config.tls) {
    checkFile(config.tls.certFile, "public", ["witness", "tls", "cert_file"], problems);
    checkFile(config.tls.keyFile, "secret", ["witness", "tls", "key_file"], problems);
  }
  return problems;
}

function signingFiles(config: AgentConfig, base: Path, problems: FileProblem[]): void {
  const s = config.signing;
  // key_env takes precedence: key_file is not read then.
  if (!s.key_env) {
    if (existsSync(s.key_file))
      checkFile(s.key_file, "signing key", [...base, "key_file"], problems);
    else if (s.generate_if_missing)
      checkDirectory(dirname(s.key_file), [...base, "key_file"], problems);
    else
      problems.push({
        code: "KEY_FILE_MISSING",
        setting: dotted([...base, "key_file"]),
        message: `${s.key_file} does not exist and generate_if_missing is false: create it with audit-agent keygen --out ${dirname(s.key_file)}, or fix the path`,
      });
  }
  if (s.previous_key_file)
    checkFile(s.previous_key_file, "signing key", [...base, "previous_key_file"], problems, {
      missing: "set previous_key_file to the key that signed before the rotation, or remove it",
    });
  s.witnesses.forEach((w, i) => namedFiles(w, [...base, "witnesses", i], problems));
}

/** Every `*_file` setting in a component's config (tokens, TLS files), and its `directory`. */
function namedFiles(config: unknown, base: Path, problems: FileProblem[]): void {
  if (config === null || typeof config !== "object") return;
  for (const [key, value] of Object.entries(config)) {
    const path = [...base, key];
    if (typeof value === "string" && key.endsWith("_file")) {
      const secret = key === "bearer_token_file" || (key === "key_file" && base.at(-1) === "tls");
      checkFile(value, secret ? "secret" : "public", path, problems);
    } else if (typeof value === "string" && key === "directory") {
      checkDirectory(value, path, problems);
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => namedFiles(v, [...path, i], problems));
    } else namedFiles(value, path, problems);
  }
}

function checkFile(
  file: string,
  kind: Kind,
  path: Path,
  problems: FileProblem[],
  fix: { missing?: string } = {},
): void {
  const setting = dotted(path);
  const report = (code: ErrorCode, message: string) => problems.push({ code, setting, message });
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(file);
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === "ENOENT" || errno === "ENOTDIR")
      report(
        "CONFIG_FILE_MISSING",
        `${file} does not exist${missingFrom(file)}: ${fix.missing ?? `fix the path, or create the file`}`,
      );
    else report("CONFIG_FILE_UNREADABLE", `cannot look at ${file}: ${(err as Error).message}`);
    return;
  }
  if (!stat.isFile()) {
    report("CONFIG_FILE_UNREADABLE", `${file} is not a file (a directory?): give the file's path`);
    return;
  }
  try {
    accessSync(file, constants.R_OK);
  } catch {
    report(
      "CONFIG_FILE_UNREADABLE",
      `${file} cannot be read by the agent's user (uid ${process.getuid?.()}; mode ${mode(stat)}, owner uid ${stat.uid}): run chown or chmod u+r ${file}`,
    );
    return;
  }
  const unsafe = stat.mode & UNSAFE_BITS[kind];
  if (unsafe !== 0) {
    const who = unsafe & 0o070 ? "group or others" : "every user of the host";
    report(
      kind === "signing key"
        ? "KEY_FILE_UNSAFE"
        : path.includes("auth") && path[0] === "receivers"
          ? "AUTH_TOKEN_UNSAFE"
          : "CONFIG_FILE_UNSAFE",
      `${file} holds a ${kind} and is readable by ${who} (mode ${mode(stat)}): run chmod 600 ${file}${kind === "secret" ? " (on Kubernetes, mount the Secret with defaultMode: 0440 or tighter)" : ""}`,
    );
  }
}

/** ", nor does its directory D" when the file's directory is missing too: the usual typo. */
function missingFrom(file: string): string {
  const dir = dirname(resolve(file));
  return existsSync(dir) ? "" : ` (nor does its directory ${dir})`;
}

function mode(stat: { mode: number }): string {
  return (stat.mode & 0o777).toString(8).padStart(4, "0");
}

/**
 * A directory the agent writes: it must be one and writable, or, when it does not exist,
 * its nearest existing ancestor must be a writable directory (the agent creates the rest).
 */
function checkDirectory(dir: string, path: Path, problems: FileProblem[]): void {
  const problem = directoryProblem(dir);
  if (problem)
    problems.push({ code: "CONFIG_DIR_UNUSABLE", setting: dotted(path), message: problem });
}

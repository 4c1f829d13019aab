import {
  chmodSync,
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";
import { AgentError } from "../common/errors.js";
import {
  type PublicKey,
  parseVerifierKey,
  privateKeyPem,
  type SigningKey,
  signingKeyFromPem,
} from "./signing.js";

/**
 * Key files. The private key is PKCS#8 PEM preceded by "# audit-agent signing key: NAME";
 * it is written with mode 0600 and refused at start when group or others can read it.
 * The public key file (`<key>.pub`) holds the C2SP verifier key line that `verify
 * --trust` takes.
 */

/** The key-name line of a private key file (also accepted in a PEM from the environment). */
export const NAME_LINE = /^# audit-agent signing key: (\S+)$/m;

/** Where the public key of the private key file `privatePath` is kept: `<name>.pub`. */
export function publicKeyPath(privatePath: string): string {
  return `${privatePath.replace(/\.key$/, "")}.pub`;
}

/**
 * Writes the private key (0600, never over an existing file) and `<name>.pub` holding
 * `publicKeyLine`: the signing key's verifier key, or a witness's cosigner key.
 */
export function writeKeyPair(
  privatePath: string,
  key: SigningKey,
  publicKeyLine: string = key.public.verifierKey,
): string {
  mkdirSync(dirname(privatePath), { recursive: true, mode: 0o700 });
  writeFileSync(privatePath, privateKeyPem(key), { mode: 0o600, flag: "wx" });
  const publicPath = publicKeyPath(privatePath);
  try {
    chmodSync(privatePath, 0o600);
    writeFileSync(publicPath, `${publicKeyLine}\n`, { mode: 0o644 });
  } catch (err) {
    // No private key without its public one: the next attempt starts clean.
    rmSync(privatePath, { force: true });
    throw new AgentError(
      "KEYGEN_WRITE_FAILED",
      `cannot write the public key ${publicPath}: ${(err as Error).message}; nothing was kept. Fix the path or move what is there away`,
      { cause: err },
    );
  }
  return publicPath;
}

/**
 * Reads a private key file, refusing one that group or others can read. The file is opened
 * once and its mode checked on that descriptor: checked by path and read by path again, a
 * file swapped in between (a world-readable one) would be read unchecked. Opened without
 * blocking, and refused unless a regular file: a FIFO put there would hang the agent.
 */
export function readPrivateKey(path: string, fallbackName: string): SigningKey {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    return readOpenKey(fd, path, fallbackName);
  } finally {
    closeSync(fd);
  }
}

function readOpenKey(fd: number, path: string, fallbackName: string): SigningKey {
  const st = fstatSync(fd);
  if (!st.isFile())
    throw new AgentError(
      "CONFIG_FILE_UNREADABLE",
      `signing key ${path} is not a file (a directory, a FIFO?): give the key file's path`,
    );
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new AgentError(
      "KEY_FILE_UNSAFE",
      `signing key ${path} is readable by group or others (mode ${mode.toString(8)}): run chmod 600 ${path}` +
        " (on Kubernetes, fsGroup makes mounted Secret files group-readable: copy the key to an owner-only file, see deploy/kubernetes/README.md, or use signing.key_env)",
    );
  }
  const pem = readFileSync(fd, "utf8");
  return signingKeyFromPem(NAME_LINE.exec(pem)?.[1] ?? fallbackName, pem);
}

/** Reads trusted public keys: verifier key lines, one per line, '#' comments allowed. */
export function readTrustedKeys(paths: readonly string[]): PublicKey[] {
  return readKeyLines(paths, "--trust").map(parseVerifierKey);
}

/**
 * The key lines of public key files (the agent's `.pub`, a witness's `.pub`): one key per
 * line, blank lines and '#' comments skipped; a file that holds a private key or no key is
 * refused, naming the option (`option`) it was given to.
 */
export function readKeyLines(paths: readonly string[], option: string): string[] {
  return paths.flatMap((path) => {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new AgentError(
        "TRUST_FILE_UNREADABLE",
        `cannot read ${option === "--trust" ? "trusted" : "witness"} key file ${path}: ${(err as Error).message}`,
      );
    }
    if (text.includes("PRIVATE KEY")) {
      throw new AgentError(
        "TRUST_FILE_PRIVATE",
        `${path} holds a private key: pass the public key file (.pub) to ${option}`,
      );
    }
    const lines = text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    if (lines.length === 0)
      throw new AgentError("TRUST_FILE_EMPTY", `${path} holds no verifier key`);
    return lines;
  });
}

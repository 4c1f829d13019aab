import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { AgentError } from "../common/errors.js";
import { directoryProblem } from "../common/directory-check.js";
import { cosignerKeyOf } from "../integrity/cosignature.js";
import { writeKeyPair } from "../integrity/key-files.js";
import { generateSigningKey } from "../integrity/signing.js";

/**
 * `audit-agent keygen --out DIR [--name NAME] [--witness]`: a new Ed25519 key pair. With
 * --witness the .pub holds the witness's cosigner key (C2SP tlog-cosignature, type 0x04),
 * which agents and verifiers are given, instead of a signing key's verifier key.
 */
export function keygen(opts: { out: string; name: string; witness?: boolean }): void {
  // Checked before the key is made: a path that cannot hold it is refused with nothing
  // created, instead of failing half-way with a bare ENOTDIR or EACCES.
  const problem = directoryProblem(opts.out);
  if (problem) throw new AgentError("CLI_BAD_PATH", `keygen --out: ${problem}`);
  const privatePath = resolve(join(opts.out, `${opts.name}.key`));
  if (existsSync(privatePath)) {
    throw new AgentError(
      "KEYGEN_EXISTS",
      `${privatePath} already exists: keys are never overwritten; choose another --out or --name`,
    );
  }
  const key = generateSigningKey(opts.name);
  if (opts.witness) {
    const cosigner = cosignerKeyOf(key).verifierKey;
    const publicPath = writeKeyPair(privatePath, key, cosigner);
    process.stdout.write(
      `private key: ${privatePath} (mode 0600; keep it secret, on the witness's host only: set witness.key_file to it)\n` +
        `public key:  ${publicPath} (the witness's cosigner key: give it to agents, extensions.signing.witnesses[].key, and to verifiers, audit-agent verify --witness ${publicPath})\n` +
        `${cosigner}\n`,
    );
    return;
  }
  const publicPath = writeKeyPair(privatePath, key);
  process.stdout.write(
    `private key: ${privatePath} (mode 0600; keep it secret: set signing.key_file to it)\n` +
      `public key:  ${publicPath} (give it to verifiers: audit-agent verify --trust ${publicPath})\n` +
      `${key.public.verifierKey}\n`,
  );
}

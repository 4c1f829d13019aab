import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { AgentError } from "../common/errors.js";
import { writeKeyPair } from "../integrity/key-files.js";
import { generateSigningKey } from "../integrity/signing.js";

/** `audit-agent keygen --out DIR [--name NAME]`: a new Ed25519 signing key pair. */
export function keygen(opts: { out: string; name: string }): void {
  const privatePath = resolve(join(opts.out, `${opts.name}.key`));
  if (existsSync(privatePath)) {
    throw new AgentError(
      "KEYGEN_EXISTS",
      `${privatePath} already exists: keys are never overwritten; choose another --out or --name`,
    );
  }
  const key = generateSigningKey(opts.name);
  const publicPath = writeKeyPair(privatePath, key);
  process.stdout.write(
    `private key: ${privatePath} (mode 0600; keep it secret: set signing.key_file to it)\n` +
      `public key:  ${publicPath} (give it to verifiers: audit-agent verify --trust ${publicPath})\n` +
      `${key.public.verifierKey}\n`,
  );
}

import { existsSync } from "node:fs";
import { AgentError } from "../common/errors.js";
import { NAME_LINE, readPrivateKey, writeKeyPair } from "../integrity/key-files.js";
import { generateSigningKey, type SigningKey, signingKeyFromPem } from "../integrity/signing.js";
import type { Logger } from "../telemetry/logger.js";
import type { SigningConfig } from "./config.js";

/**
 * The signing keys `extensions.signing` names: from the environment, from a key file, or
 * generated on first start; plus the outgoing key of a rotation.
 */
export interface LoadedKeys {
  key: SigningKey;
  previous?: SigningKey;
  /** Where the public key was written, when the key was generated now. */
  generatedPublicKey?: string;
}

export function loadSigningKeys(
  config: SigningConfig,
  env: Record<string, string | undefined>,
  logger: Logger,
): LoadedKeys {
  let key: SigningKey;
  let generatedPublicKey: string | undefined;
  if (config.key_env) {
    const pem = env[config.key_env];
    if (!pem)
      throw new AgentError(
        "KEY_ENV_MISSING",
        `signing.key_env names ${config.key_env}, which is not set`,
      );
    key = signingKeyFromPem(NAME_LINE.exec(pem)?.[1] ?? config.key_name, pem);
  } else if (existsSync(config.key_file)) {
    key = readPrivateKey(config.key_file, config.key_name);
  } else if (config.generate_if_missing) {
    key = generateSigningKey(config.key_name);
    generatedPublicKey = writeKeyPair(config.key_file, key);
    logger.info(
      {
        privateKey: config.key_file,
        publicKey: generatedPublicKey,
        verifierKey: key.public.verifierKey,
      },
      "generated a signing key; give the public key to verifiers",
    );
  } else {
    throw new AgentError(
      "KEY_FILE_MISSING",
      `signing key ${config.key_file} does not exist: create one with audit-agent keygen --out DIR`,
    );
  }
  const previous = config.previous_key_file
    ? readPrivateKey(config.previous_key_file, config.key_name)
    : undefined;
  return { key, previous, generatedPublicKey };
}

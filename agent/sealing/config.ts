import { z } from "../common/zod.js";
import { durationDefault, endpointSchema } from "../common/config-schema.js";
import { extensionFactory } from "../common/component.js";
import { witnessingSchema } from "./witness-config.js";

/**
 * `extensions.signing`: the key that signs batch manifests and checkpoints, and how the
 * chain is cut into batches. Always on, like the WAL: with no key configured the agent
 * creates one under ./data/keys on first start, so the out-of-the-box run is signed too.
 */
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const signingConfigSchema = z
  .object({
    key_file: z.string().min(1).default("./data/keys/signing.key"),
    /** Name of an environment variable holding the PEM private key (takes precedence over key_file). */
    key_env: z
      .string()
      .regex(
        /^[A-Za-z_][A-Za-z0-9_]*$/,
        "key_env must be an environment variable's name: letters, digits and '_', not starting with a digit",
      )
      .optional(),
    key_name: z
      .string()
      .regex(KEY_NAME, "key_name: letters, digits, '.', '_' or '-', up to 64")
      .default("audit-agent"),
    /** The key used before a rotation: it signs the entry that announces the new key. */
    previous_key_file: z.string().min(1).optional(),
    /** Create key_file (and key_file.pub) when it does not exist. */
    generate_if_missing: z.boolean().default(true),
    /** Checkpoint origin line; default "otel-audit-agent/<chain id>". */
    origin: z
      .string()
      .min(1)
      .refine((o) => ![...o].some((c) => c < " " || c === "\u007f"), {
        message: "origin is one line of printable characters (C2SP signed-note)",
      })
      .optional(),
    batch: z
      .object({
        max_records: z.number().int().positive().max(1_000_000).default(1000),
        max_size_mib: z.number().positive().max(256).default(4),
        timeout: durationDefault("1s"),
      })
      .strict()
      .default({}),
    /** Serves the latest checkpoint and proofs over HTTP for monitors; off when unset. */
    endpoint: endpointSchema.optional(),
    ...witnessingSchema,
  })
  .strict()
  .refine((c) => (c.witness_quorum ?? 0) <= c.witnesses.length, {
    message: "witness_quorum is more than the witnesses listed",
    path: ["witness_quorum"],
  });

export type SigningConfig = z.infer<typeof signingConfigSchema>;

export const signingExtensionFactory = extensionFactory("signing", signingConfigSchema);

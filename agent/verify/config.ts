import { z } from "zod";
import { durationSchema } from "../common/config-schema.js";
import { extensionFactory } from "../common/component.js";

/**
 * `extensions.verification`: the agent periodically reads what its exporters wrote and
 * verifies it against its own keys and checkpoints, so tampering in a backend is noticed
 * without waiting for an external audit.
 */
export const verificationConfigSchema = z
  .object({
    interval: durationSchema.default(600_000),
    /** Exporter ids to verify; default: every exporter that has a reader. */
    exporters: z.array(z.string().min(1)).optional(),
    /** Extra trusted public key files (keys used before a rotation). */
    trust: z.array(z.string().min(1)).default([]),
  })
  .strict();

export type VerificationConfig = z.infer<typeof verificationConfigSchema>;

export const verificationExtensionFactory = extensionFactory(
  "verification",
  verificationConfigSchema,
);

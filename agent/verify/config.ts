import { z } from "../common/zod.js";
import { durationDefault } from "../common/config-schema.js";
import { extensionFactory } from "../common/component.js";

/**
 * `extensions.verification`: the agent periodically reads what its exporters wrote and
 * verifies it against its own keys and checkpoints, so tampering in a backend is noticed
 * without waiting for an external audit.
 */
export const verificationConfigSchema = z
  .object({
    interval: durationDefault("10m"),
    /** Exporter ids to verify; default: every exporter that has a reader. */
    exporters: z.array(z.string().min(1)).optional(),
    /** Extra trusted public key files (keys used before a rotation). */
    trust: z.array(z.string().min(1)).default([]),
    /** Heap cap of the worker thread that verifies, in MiB: a run that needs more fails. */
    max_memory_mib: z.number().int().min(32).max(4096).default(128),
    /**
     * Runs are incremental: they read only what is new. Each also reads again this many
     * signed batches verified before, at random, so a change to old records in a backend
     * that is not write-once is found too.
     */
    spot_check_batches: z.number().int().min(0).max(10_000).default(16),
  })
  .strict();

export type VerificationConfig = z.infer<typeof verificationConfigSchema>;

export const verificationExtensionFactory = extensionFactory(
  "verification",
  verificationConfigSchema,
);

import { z } from "../common/zod.js";
import { durationDefault } from "../common/config-schema.js";
import { parseCosignerKey } from "../integrity/cosignature.js";

/**
 * `extensions.signing.witnesses` and their quorum: the C2SP witnesses the agent asks to
 * cosign each new checkpoint (docs/witness.md). A witness off the agent's host is what
 * catches a removed tail or a rewritten history that the agent's own key re-signed.
 */
export const witnessSchema = z
  .object({
    /** The witness's submission prefix: the agent POSTs to `<url>/add-checkpoint`. */
    url: z.string().url(),
    /** The witness's cosigner verifier key (`audit-agent keygen --witness` writes it). */
    key: z.string().superRefine((text, ctx) => {
      try {
        parseCosignerKey(text);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    }),
    /** Bearer token sent to a witness behind an authenticating proxy (optional). */
    bearer_token_file: z.string().min(1).optional(),
    tls: z
      .object({
        ca_file: z.string().min(1).optional(),
        insecure_skip_verify: z.boolean().default(false),
      })
      .strict()
      .optional(),
    /** One request's time limit. */
    timeout: durationDefault("5s"),
  })
  .strict();

export type WitnessConfig = z.infer<typeof witnessSchema>;

export const witnessingSchema = {
  witnesses: z.array(witnessSchema).max(16).default([]),
  /** Cosignatures a checkpoint needs to count as witnessed (default: every witness). */
  witness_quorum: z.number().int().positive().optional(),
  /**
   * How long a sealed batch waits for its checkpoint's cosignatures before exporters ship
   * it without them. Acknowledgements never wait for witnesses.
   */
  witness_wait: durationDefault("2s"),
  /** After this long without a quorum of cosignatures: a metric, and a health reason. */
  witness_stale_after: durationDefault("5m"),
};

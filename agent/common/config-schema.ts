import { z } from "./zod.js";

/** Schemas shared by component configs, with messages that say what to write instead. */

const ENDPOINT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d+)$/;

export const endpointSchema = z.string().superRefine((value, ctx) => {
  const m = ENDPOINT.exec(value);
  if (!m) {
    ctx.addIssue({
      code: "custom",
      message: `endpoint "${value}" must be host:port, for example 127.0.0.1:4317`,
    });
    return;
  }
  const port = Number(m[2]);
  if (port > 65535) {
    ctx.addIssue({
      code: "custom",
      message: `bad port ${m[2]} in endpoint "${value}": ports are 0 to 65535`,
    });
  }
});

export function splitEndpoint(endpoint: string): { host: string; port: number } {
  const m = ENDPOINT.exec(endpoint) as RegExpExecArray;
  const host = (m[1] as string).replace(/^\[|\]$/g, "");
  return { host, port: Number(m[2]) };
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Collector-style duration ("500ms", "5s", "1m", "1h"), parsed to milliseconds. */
export const durationSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  if (typeof value === "number") {
    ctx.addIssue({
      code: "custom",
      message: `duration ${value} needs a unit: write "${value}s" or "${value}ms"`,
    });
    return z.NEVER;
  }
  const m = DURATION.exec(value.trim());
  if (!m) {
    ctx.addIssue({
      code: "custom",
      message: `"${value}" is not a duration: use a number with ms, s, m or h, like "5s"`,
    });
    return z.NEVER;
  }
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
});

/** A duration as a config file writes it. */
export type DurationText = `${number}${"ms" | "s" | "m" | "h"}`;

/**
 * durationSchema with a default, written as text: zod 3 parses a default through the schema
 * like a value in the file (a bare number of milliseconds would be refused as unit-less).
 */
export const durationDefault = (text: DurationText) => durationSchema.default(text);

/** Collector `retry_on_failure`. For audit data the default is to retry forever (max_elapsed_time 0). */
export const retryOnFailureSchema = z
  .object({
    enabled: z.boolean().default(true),
    initial_interval: durationDefault("1s"),
    max_interval: durationDefault("30s"),
    max_elapsed_time: durationDefault("0s"),
    multiplier: z.number().finite().min(1).default(1.5),
    randomization_factor: z.number().min(0).max(1).default(0.5),
  })
  .strict();

export type RetryOnFailure = z.infer<typeof retryOnFailureSchema>;

import { z } from "../../common/zod.js";
import { durationDefault } from "../../common/config-schema.js";

/**
 * The HTTP client settings shared by HTTP-based exporters, shaped like the Collector's
 * confighttp client: endpoint, headers, timeout, compression and tls, plus inline auth
 * (the Collector uses basicauth / bearertokenauth extensions for the same thing).
 */
export const tlsClientSchema = z
  .object({
    ca_file: z.string().min(1).optional(),
    cert_file: z.string().min(1).optional(),
    key_file: z.string().min(1).optional(),
    insecure_skip_verify: z.boolean().default(false),
    min_version: z.enum(["1.2", "1.3"]).default("1.2"),
  })
  .strict()
  .refine((t) => (t.cert_file === undefined) === (t.key_file === undefined), {
    message: "set cert_file and key_file together (client certificate for mTLS)",
  });

/** The auth forms every HTTP exporter accepts; plugins may add their own beside them. */
export const httpAuthFields = {
  basic: z
    .object({ username: z.string().min(1), password: z.string() })
    .strict()
    .optional(),
  bearer_token: z.string().min(1).optional(),
};

export const httpAuthSchema = z
  .object(httpAuthFields)
  .strict()
  .refine((a) => !(a.basic && a.bearer_token), { message: "use basic or bearer_token, not both" });

export const httpClientFields = {
  endpoint: z.string().url({ message: "endpoint must be a URL such as http://loki:3100" }),
  headers: z.record(z.string(), z.string()).default({}),
  auth: httpAuthSchema.optional(),
  tls: tlsClientSchema.optional(),
  timeout: durationDefault("30s"),
  compression: z.enum(["gzip", "none"]).default("gzip"),
};

export const httpClientConfigSchema = z.object(httpClientFields).strict();
export type HttpClientConfig = z.infer<typeof httpClientConfigSchema>;

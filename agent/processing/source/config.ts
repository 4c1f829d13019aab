import { z } from "../../common/zod.js";
import { LONE_SURROGATE } from "../../integrity/jcs.js";

/**
 * Configuration of the `source` processor: what the agent itself knows of who sent a record,
 * stamped into the envelope's `source` member (docs/integrity-format.md §2.4), where the
 * application cannot set it. After the Collector's resourcedetection (configured facts of
 * where the agent runs) and k8sattributes (facts of the connection) processors.
 */

/** The `source` names the agent takes from the connection, and the settings that turn them on. */
export const CONNECTION_KEYS = {
  "client.address": "client_address",
  "tls.client.subject": "client_certificate",
  "tls.client.hash.sha256": "client_certificate",
} as const;

/**
 * The names that may be configured under `attributes` (OpenTelemetry semantic conventions):
 * facts of where the agent runs, from the Kubernetes Downward API or the deployment.
 */
export const CONFIGURED_KEYS = [
  "cloud.availability_zone",
  "cloud.region",
  "container.image.name",
  "host.name",
  "k8s.cluster.name",
  "k8s.container.name",
  "k8s.namespace.name",
  "k8s.node.name",
  "k8s.pod.name",
  "k8s.pod.uid",
] as const;

/** Longest configured value: a name or an image reference, never a document. */
const MAX_VALUE_LENGTH = 1024;

const attributeValue = z
  .string()
  .max(MAX_VALUE_LENGTH, `keep an attribute value under ${MAX_VALUE_LENGTH} characters`)
  .refine((v) => !LONE_SURROGATE.test(v), "the value is not well-formed Unicode");

export const sourceConfigSchema = z
  .object({
    /** Stamp `client.address`: the IP address of the connection the request came on. */
    client_address: z.boolean().default(false),
    /**
     * Stamp `tls.client.subject` and `tls.client.hash.sha256` of the client certificate the
     * receiver verified (mTLS: the receiver's tls.client_ca_file).
     */
    client_certificate: z.boolean().default(false),
    /** Fixed facts, usually ${env:…} of Downward API variables; empty values are left out. */
    attributes: z.record(z.string(), attributeValue).default({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    for (const key of Object.keys(c.attributes)) {
      if (key in CONNECTION_KEYS) {
        const setting = CONNECTION_KEYS[key as keyof typeof CONNECTION_KEYS];
        ctx.addIssue({
          code: "custom",
          path: ["attributes", key],
          message: `${key} is taken from the connection, not configured: set ${setting}: true`,
        });
      } else if (!(CONFIGURED_KEYS as readonly string[]).includes(key)) {
        ctx.addIssue({
          code: "custom",
          path: ["attributes", key],
          message: `"${key}" is not a source attribute (use ${CONFIGURED_KEYS.join(", ")})`,
        });
      }
    }
  });

export type SourceConfig = z.infer<typeof sourceConfigSchema>;

import { z } from "../../common/zod.js";
import { CHAIN_ID_PATTERN } from "../../integrity/format.js";
import { durationDefault, retryOnFailureSchema } from "../../common/config-schema.js";
import { httpClientFields } from "../http/config.js";

/**
 * `exporters.loki`: one Loki entry per audit record (the canonical text as the line) in
 * low-cardinality streams, manifests in their own stream, pushed as JSON.
 * docs/exporter-loki.md is the reference.
 */

/** Prometheus / Loki label names. */
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Labels the exporter sets itself on every stream. */
export const RESERVED_LABELS = ["chain_id", "audit_stream"] as const;
/** Loki's default `max_label_names_per_series` is 15; two are the exporter's own. */
const MAX_USER_LABELS = 13;

const DURATION = /^\d+(?:\.\d+)?(?:ms|s|m|h)$/;

function labelNameProblem(name: string): string | null {
  if (!LABEL_NAME.test(name))
    return `"${name}" is not a Loki label name: use letters, digits and '_', not starting with a digit (for example service_name)`;
  if (name.startsWith("__"))
    return `label names starting with "__" are reserved by Loki: rename "${name}"`;
  if ((RESERVED_LABELS as readonly string[]).includes(name))
    return `"${name}" is set by the exporter itself: choose another label name`;
  return null;
}

const labelsSchema = z
  .object({
    /** Resource attribute → label name, e.g. `service.name: service_name`. */
    resource_attributes: z
      .record(z.string().min(1), z.string())
      .default({ "service.name": "service_name" }),
    /**
     * Envelope `source` member → label name (integrity-format §2.4), e.g.
     * `k8s.namespace.name: namespace`: what the agent knew of the sender, not its claim.
     */
    source: z.record(z.string().min(1), z.string()).default({}),
    /** Label name → fixed value, e.g. `env: prod`. */
    static: z.record(z.string(), z.string()).default({}),
  })
  .strict()
  .superRefine((labels, ctx) => {
    const seen = new Map<string, string>();
    const use = (name: string, where: string, path: (string | number)[]) => {
      const problem = labelNameProblem(name);
      if (problem) ctx.addIssue({ code: "custom", path, message: problem });
      const before = seen.get(name);
      if (before)
        ctx.addIssue({
          code: "custom",
          path,
          message: `label "${name}" is set twice (${before} and ${where}): give each its own name`,
        });
      seen.set(name, where);
    };
    for (const [attribute, name] of Object.entries(labels.resource_attributes))
      use(name, `resource attribute ${attribute}`, ["resource_attributes", attribute]);
    for (const [member, name] of Object.entries(labels.source))
      use(name, `source member ${member}`, ["source", member]);
    for (const [name, value] of Object.entries(labels.static)) {
      use(name, "static", ["static", name]);
      if (value === "")
        ctx.addIssue({
          code: "custom",
          path: ["static", name],
          message: `static label "${name}" needs a value: Loki drops labels with empty values`,
        });
    }
    if (seen.size > MAX_USER_LABELS)
      ctx.addIssue({
        code: "custom",
        message: `${seen.size} labels configured; keep at most ${MAX_USER_LABELS} (Loki's default max_label_names_per_series is 15, and chain_id and audit_stream are two of them). Move high-cardinality values into the record, not into labels`,
      });
  });

const readSchema = z
  .object({
    /** Read only this chain (default: every chain found by its labels). */
    chain_id: z
      .string()
      .regex(CHAIN_ID_PATTERN, "read.chain_id must be a chain id (letters, digits, '.', '_', '-')")
      .optional(),
    /** How far back to read: a duration before now ("8760h") or an RFC 3339 time. */
    since: z
      .string()
      .default("8760h")
      .refine((v) => DURATION.test(v.trim()) || !Number.isNaN(Date.parse(v)), {
        message:
          'read.since must be a duration before now like "8760h", or an RFC 3339 time like "2024-01-01T00:00:00Z"',
      }),
    /** Width of each query's time range; at most Loki's max_query_length (721h by default). */
    query_window: durationDefault("720h"),
    /**
     * The `limit` of each query_range call: a window of a stream counts as read once a query
     * for it returns fewer entries. Loki's max_entries_limit_per_query (5000 by default)
     * caps it. It does not set a page's bytes: the reader asks for the entries' lengths
     * first (a probe answer of some 150 bytes an entry, 1.5 MB at 10000) and fetches lines
     * in pages of at most PAGE_BYTES (windows.ts), well under Loki's 4 MiB gRPC message
     * limit even for records of wal.max_record_size_kib (1 MiB by default).
     */
    page_size: z
      .number()
      .int({ message: "read.page_size must be a whole number, like 5000" })
      .min(1)
      .max(10_000, {
        message:
          "read.page_size must be at most 10000 (Loki's default max_entries_limit_per_query is 5000)",
      })
      .default(5000),
  })
  .strict();

export const lokiExporterConfigSchema = z
  .object({
    ...httpClientFields,
    endpoint: z
      .string()
      .url({ message: "endpoint must be Loki's base URL, such as http://loki:3100" })
      .refine((u) => !/\/loki\/api\//.test(u), {
        message:
          "endpoint is Loki's base URL (http://loki:3100), without /loki/api/v1/push: the exporter adds the API paths",
      }),
    /** Sent as X-Scope-OrgID (multi-tenant Loki). */
    tenant_id: z.string().min(1).optional(),
    labels: labelsSchema.default({}),
    /** Send seq and leaf hash as structured metadata (needs Loki 3 / allow_structured_metadata). */
    structured_metadata: z.boolean().default(true),
    /** Upper bound of one push request's uncompressed body; a batch is split to fit. */
    max_request_size_kib: z
      .number()
      .int({ message: "max_request_size_kib must be a whole number of KiB, like 1024" })
      .min(16)
      .max(64 * 1024)
      .default(1024),
    read: readSchema.default({}),
    retry_on_failure: retryOnFailureSchema.default({}),
  })
  .strict();

export type LokiExporterConfig = z.infer<typeof lokiExporterConfigSchema>;
export type LokiReadConfig = z.infer<typeof readSchema>;

/** Unix time in ms that `since` (a duration back from `now`, or an RFC 3339 time) names. */
export function sinceEpochMs(since: string, now: number): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(since.trim());
  if (m) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
    return now - Number(m[1]) * unit;
  }
  return Date.parse(since);
}

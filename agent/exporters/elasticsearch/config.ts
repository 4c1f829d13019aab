import { z } from "../../common/zod.js";
import { durationDefault, retryOnFailureSchema } from "../../common/config-schema.js";
import { httpAuthFields, httpClientFields } from "../http/config.js";

/**
 * `exporters.elasticsearch`: one document per audit record (its canonical text in a
 * non-indexed field, plus searchable fields) written with `_bulk` `create` and
 * `_id` = leaf hash, into a data stream or an index; signed manifests with their
 * checkpoints in an index of their own. docs/exporter-elasticsearch.md is the reference.
 */

/**
 * Elasticsearch index and data stream names, kept to a safe subset of what Elasticsearch
 * allows: lower case letters, digits, '.', '_', '-' and '+', starting with a letter or
 * digit (so never a hidden or system name), at most 255 characters.
 */
export const INDEX_NAME = /^[a-z0-9][a-z0-9._+-]{0,254}$/;

const indexName = (what: string) =>
  z.string().regex(INDEX_NAME, {
    message: `${what} must be an Elasticsearch index name: lower case letters, digits, '.', '_', '-' or '+', starting with a letter or digit (for example audit-logs)`,
  });

/**
 * `auth`: the shared basic / bearer_token forms plus Elasticsearch API keys
 * (`Authorization: ApiKey <base64 id:key>`), one of them at most.
 */
export const esAuthSchema = z
  .object({
    ...httpAuthFields,
    /** The `encoded` value of Elasticsearch's create-API-key response: base64 of `id:api_key`. */
    api_key: z
      .string()
      .min(1)
      .superRefine((v, ctx) => {
        if (isEncodedApiKey(v)) return;
        ctx.addIssue({
          code: "custom",
          message: v.includes(":")
            ? 'auth.api_key must be the base64 "encoded" value of the API key (base64 of "id:api_key", as POST /_security/api_key returns it), not "id:api_key" itself'
            : 'auth.api_key must be the base64 "encoded" value of the API key: base64 of "id:api_key", as POST /_security/api_key returns it in "encoded"',
        });
      })
      .optional(),
  })
  .strict()
  .refine((a) => [a.basic, a.bearer_token, a.api_key].filter((x) => x !== undefined).length <= 1, {
    message: "use one of basic, bearer_token or api_key, not several",
  });

function isEncodedApiKey(v: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(v)) return false;
  const decoded = Buffer.from(v, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon > 0 && colon < decoded.length - 1;
}

const templateSchema = z
  .object({
    /** Install (create or update) both index templates when the exporter starts. */
    install: z.boolean().default(true),
    /** Template name for the records; default: the `index` name. */
    name: indexName("template.name").optional(),
    /** Template name for the manifests; default: the `manifests_index` name. */
    manifests_name: indexName("template.manifests_name").optional(),
    /** Above the built-in templates (100), so `logs-*-*` and the like never take over. */
    priority: z
      .number()
      .int({ message: "template.priority must be a whole number, like 200" })
      .min(0)
      .default(200),
    /**
     * Extra index settings for the records template, e.g. `index.lifecycle.name: audit-policy`,
     * `index.number_of_replicas: 1`.
     */
    settings: z
      .record(z.string(), z.union([z.string(), z.number().finite(), z.boolean()]))
      .default({}),
    /**
     * Extra index settings for the manifests template. Kept apart: a lifecycle policy that
     * rolls over or deletes records must not touch the manifests that seal them.
     */
    manifests_settings: z
      .record(z.string(), z.union([z.string(), z.number().finite(), z.boolean()]))
      .default({}),
  })
  .strict();

const readSchema = z
  .object({
    /**
     * Hits per search page, and buckets per page of the chain listing. search_after pages
     * past index.max_result_window, but one page's `size` is still capped by it (10000 by
     * default); the reader holds about two pages of documents at a time.
     */
    page_size: z
      .number()
      .int({ message: "read.page_size must be a whole number, like 1000" })
      .min(1, { message: "read.page_size must be at least 1" })
      .max(10_000, {
        message:
          "read.page_size must be at most 10000 (one search page holds at most index.max_result_window hits, 10000 by default)",
      })
      .default(1000),
    /** Keep-alive of the point in time, renewed by every page. */
    keep_alive: durationDefault("1m"),
    /** Read through a point in time (POST /<index>/_pit) where the cluster supports it. */
    point_in_time: z.boolean().default(true),
  })
  .strict();

export const elasticsearchExporterConfigSchema = z
  .object({
    ...httpClientFields,
    endpoint: z
      .string()
      .url({ message: "endpoint must be the cluster's URL, such as http://elasticsearch:9200" })
      .refine((u) => !/\/_bulk\b/.test(u), {
        message:
          "endpoint is the cluster's base URL (http://elasticsearch:9200), without /_bulk: the exporter adds the API paths",
      }),
    auth: esAuthSchema.optional(),
    /** The data stream or index the record documents go to. */
    index: indexName("index").default("audit-logs"),
    /** `data_stream` (append-only, rolls over) or `index` (a plain index or a write alias). */
    mode: z
      .enum(["data_stream", "index"], { message: 'mode must be "data_stream" or "index"' })
      .default("data_stream"),
    /** The index the signed manifests go to; default `<index>-manifests`. */
    manifests_index: indexName("manifests_index").optional(),
    template: templateSchema.default({}),
    /** Upper bound of one `_bulk` request's uncompressed body; a batch is split to fit. */
    max_request_size_kib: z
      .number()
      .int({ message: "max_request_size_kib must be a whole number of KiB, like 5120" })
      .min(64, { message: "max_request_size_kib must be at least 64" })
      .max(100 * 1024, {
        message:
          "max_request_size_kib must be at most 102400 (Elasticsearch's http.max_content_length is 100mb)",
      })
      .default(5120),
    read: readSchema.default({}),
    retry_on_failure: retryOnFailureSchema.default({}),
  })
  .strict()
  .transform((c) => ({ ...c, manifests_index: c.manifests_index ?? `${c.index}-manifests` }))
  .refine((c) => c.manifests_index !== c.index, {
    message: "manifests_index must differ from index: manifests go to an index of their own",
  })
  .refine((c) => !(c.mode === "data_stream" && c.index.startsWith(".ds-")), {
    message: 'a data stream name cannot start with ".ds-": choose another index name',
  });

export type ElasticsearchExporterConfig = z.output<typeof elasticsearchExporterConfigSchema>;
export type ElasticsearchReadConfig = ElasticsearchExporterConfig["read"];

import { z } from "../../common/zod.js";
import { durationDefault, retryOnFailureSchema } from "../../common/config-schema.js";

/**
 * `exporters.s3`: one object per sealed batch and one per signed manifest in an S3 bucket
 * (AWS S3 or a compatible store such as Ceph RGW or MinIO), written once and never
 * overwritten, optionally under Object Lock. docs/exporter-s3.md is the reference.
 */

const ENDPOINT_MESSAGE =
  "endpoint must be a URL such as http://127.0.0.1:7480 or https://s3.example.com";

/** S3's bucket naming rules (3–63 characters of a–z, 0–9, dots and hyphens). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export const objectLockSchema = z
  .object({
    mode: z.enum(["GOVERNANCE", "COMPLIANCE"], {
      message: "object_lock.mode must be GOVERNANCE or COMPLIANCE (upper case)",
    }),
    retain_days: z
      .number()
      .refine(Number.isInteger, { message: "retain_days must be a whole number of days, like 365" })
      .refine((d) => d >= 1 && d <= 36_500, {
        message: "retain_days must be 1 to 36500 (100 years)",
      }),
  })
  .strict();

/** ListObjectVersions / ListObjectsV2 answer at most 1000 keys a page. */
export const S3_MAX_PAGE_SIZE = 1000;

/** `read`: how `verify` and continuous verification read the bucket back. */
export const s3ReadSchema = z
  .object({
    /** Keys per listing page (MaxKeys); objects are then read one at a time (a few in flight). */
    page_size: z
      .number()
      .int({ message: "read.page_size must be a whole number, like 1000" })
      .min(1, { message: "read.page_size must be at least 1" })
      .max(S3_MAX_PAGE_SIZE, {
        message: `read.page_size must be at most ${S3_MAX_PAGE_SIZE} (S3 lists at most 1000 keys a page)`,
      })
      .default(S3_MAX_PAGE_SIZE),
  })
  .strict();

export const s3ExporterConfigSchema = z
  .object({
    bucket: z.string().regex(BUCKET, {
      message:
        "bucket must be an S3 bucket name: 3 to 63 characters of a-z, 0-9, dots and hyphens, starting and ending with a letter or digit",
    }),
    /** Key prefix; slashes at either end are ignored ("audit/" and "audit" are the same). */
    prefix: z
      .string()
      .default("")
      .transform((p) => p.replace(/^\/+|\/+$/g, ""))
      .refine(
        (p) =>
          p === "" || !p.split("/").some((part) => part === "" || part === "." || part === ".."),
        {
          message: 'prefix must be path segments like "audit/prod": no empty, "." or ".." segments',
        },
      ),
    /** Default: AWS_REGION / AWS_DEFAULT_REGION / the AWS profile, else us-east-1. */
    region: z.string().min(1).optional(),
    /** For S3-compatible stores; default: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS. */
    endpoint: z
      .string()
      .url({ message: ENDPOINT_MESSAGE })
      // Left to the check above when it is no URL at all, so that it is said once.
      .refine((u) => !URL.canParse(u) || /^https?:$/.test(new URL(u).protocol), {
        message: ENDPOINT_MESSAGE,
      })
      .optional(),
    /** Path-style URLs (http://host/bucket/key); default true when an endpoint is set. */
    force_path_style: z.boolean().optional(),
    access_key_id: z.string().min(1).optional(),
    secret_access_key: z.string().min(1).optional(),
    session_token: z.string().min(1).optional(),
    object_lock: objectLockSchema.optional(),
    compression: z
      .enum(["none", "gzip"], { message: 'compression must be "none" or "gzip"' })
      .default("none"),
    /** Per-request timeout. */
    timeout: durationDefault("30s"),
    retry_on_failure: retryOnFailureSchema.default({}),
    read: s3ReadSchema.default({}),
  })
  .strict()
  .refine((c) => (c.access_key_id === undefined) === (c.secret_access_key === undefined), {
    message:
      "set access_key_id and secret_access_key together, or neither (then the AWS default credential chain is used: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile, instance role)",
  })
  .refine((c) => c.session_token === undefined || c.access_key_id !== undefined, {
    message: "session_token needs access_key_id and secret_access_key",
  });

export type S3ExporterConfig = z.infer<typeof s3ExporterConfigSchema>;
export type ObjectLockConfig = z.infer<typeof objectLockSchema>;
export type S3ReadConfig = z.infer<typeof s3ReadSchema>;

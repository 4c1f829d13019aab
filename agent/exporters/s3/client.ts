import { createHash } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import { retryAfterMs } from "../http/client.js";
import { PermanentExportError, RetryableExportError } from "../api.js";
import type { S3ExporterConfig } from "./config.js";

/**
 * What the S3 sink and reader share: where the bucket is and how to reach it, the client
 * (the AWS SDK is imported only here, lazily, so an agent without an s3 exporter never
 * loads it), and the one place that turns SDK errors into retryable or permanent ones
 * with a message saying what to fix.
 */

export type S3Module = typeof import("@aws-sdk/client-s3");

export interface S3Connection {
  bucket: string;
  /** Without slashes at either end; "" for none. */
  prefix: string;
  /** Undefined: the SDK's default region chain (AWS profile). */
  region?: string;
  /** Undefined: AWS's own endpoints. */
  endpoint?: string;
  forcePathStyle: boolean;
  /** Undefined: the SDK's default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  timeoutMs: number;
  /** Whether writes carry Object Lock headers (for error hints). */
  objectLock: boolean;
}

type Env = Record<string, string | undefined>;

/** Endpoint and region as the AWS SDKs take them from the environment. */
function fromEnv(env: Env): { endpoint?: string; region?: string } {
  return {
    endpoint: env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined,
  };
}

/** Region fallback: S3-compatible stores mostly ignore it, but SigV4 needs one. */
function regionFor(region: string | undefined, endpoint: string | undefined): string | undefined {
  return region ?? (endpoint ? "us-east-1" : undefined);
}

export function connectionFromConfig(
  config: S3ExporterConfig,
  env: Env = process.env,
): S3Connection {
  const defaults = fromEnv(env);
  const endpoint = config.endpoint ?? defaults.endpoint;
  return {
    bucket: config.bucket,
    prefix: config.prefix,
    region: regionFor(config.region ?? defaults.region, endpoint),
    endpoint,
    forcePathStyle: config.force_path_style ?? endpoint !== undefined,
    credentials:
      config.access_key_id !== undefined && config.secret_access_key !== undefined
        ? {
            accessKeyId: config.access_key_id,
            secretAccessKey: config.secret_access_key,
            ...(config.session_token ? { sessionToken: config.session_token } : {}),
          }
        : undefined,
    timeoutMs: config.timeout,
    objectLock: config.object_lock !== undefined,
  };
}

/** `s3://BUCKET[/PREFIX]` with endpoint, region and credentials from the environment. */
export function connectionFromUrl(
  bucket: string,
  prefix: string,
  env: Env = process.env,
): S3Connection {
  const defaults = fromEnv(env);
  return {
    bucket,
    prefix,
    region: regionFor(defaults.region, defaults.endpoint),
    endpoint: defaults.endpoint,
    forcePathStyle: defaults.endpoint !== undefined,
    timeoutMs: 60_000,
    objectLock: false,
  };
}

export function describeConnection(conn: S3Connection): string {
  const base = conn.prefix ? `s3://${conn.bucket}/${conn.prefix}/` : `s3://${conn.bucket}/`;
  return conn.endpoint ? `${base} at ${conn.endpoint}` : base;
}

/**
 * A client for `conn`. `maxAttempts` 1 leaves retrying to the caller (the delivery
 * engine's retry_on_failure); the reader keeps the SDK's own retries.
 */
export async function createS3Client(
  conn: S3Connection,
  maxAttempts?: number,
): Promise<{ s3: S3Module; client: S3Client }> {
  // The SDK warns on stderr about Node 20's end of support; the agent supports Node ≥ 20.19
  // and says so itself, so the multi-line warning would only alarm operators.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const s3 = await import("@aws-sdk/client-s3");
  const client = new s3.S3Client({
    region: conn.region,
    endpoint: conn.endpoint,
    forcePathStyle: conn.forcePathStyle,
    credentials: conn.credentials,
    ...(maxAttempts !== undefined ? { maxAttempts } : {}),
    // Without throwOnRequestTimeout the SDK only logs a request that overruns requestTimeout.
    requestHandler: {
      requestTimeout: conn.timeoutMs,
      connectionTimeout: conn.timeoutMs,
      throwOnRequestTimeout: true,
    },
  });
  return { s3, client };
}

interface SdkError {
  name?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string | undefined> };
}

export function statusOf(err: unknown): number | undefined {
  return (err as SdkError | null)?.$metadata?.httpStatusCode;
}

function nameOf(err: unknown): string {
  const e = err as SdkError | null;
  return e?.Code ?? e?.name ?? "Error";
}

export function isNotFound(err: unknown): boolean {
  const name = nameOf(err);
  return statusOf(err) === 404 && name !== "NoSuchBucket";
}

/** A permission refusal (not a credentials problem, which is also a 403). */
export function isAccessDenied(err: unknown): boolean {
  return nameOf(err) === "AccessDenied";
}

export function isPreconditionFailed(err: unknown): boolean {
  return statusOf(err) === 412 || nameOf(err) === "PreconditionFailed";
}

const RETRYABLE_NAMES = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "RequestTimeout",
  "RequestTimeoutException",
  "RequestTimeTooSkewed",
  "InternalError",
  "ServiceUnavailable",
  "OperationAborted",
  "ConditionalRequestConflict",
  "TimeoutError",
]);

/**
 * The export error for a failed S3 call: throttling, 5xx, timeouts and network errors
 * are retried (after Retry-After when the store sends one); refusals that retrying
 * cannot fix stop the exporter with a message that says what to change.
 */
export function exportErrorFor(
  err: unknown,
  what: string,
  conn: S3Connection,
): RetryableExportError | PermanentExportError {
  const status = statusOf(err);
  const name = nameOf(err);
  const raw = (err as SdkError | null)?.message;
  const detail = raw && raw !== "UnknownError" && raw !== name ? `${name}: ${raw}` : name;
  const where = describeConnection(conn);
  const options = { cause: err };
  const bucket = `bucket "${conn.bucket}"`;

  if (status === undefined) {
    if (name === "CredentialsProviderError") {
      return new RetryableExportError(
        `${what}: no S3 credentials found (${raw}): set access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, an AWS profile or an instance role`,
        undefined,
        options,
      );
    }
    if (/region is missing/i.test(raw ?? "")) {
      return new PermanentExportError(
        `${what}: no AWS region: set region in the exporter config (or AWS_REGION)`,
        options,
      );
    }
    // No HTTP response at all: connection refused or reset, DNS, timeout.
    return new RetryableExportError(
      `${what}: ${detail} (is ${conn.endpoint ?? "S3"} reachable?)`,
      undefined,
      options,
    );
  }
  if (RETRYABLE_NAMES.has(name) || status === 408 || status === 429 || status >= 500) {
    const headers = (err as SdkError).$response?.headers ?? {};
    return new RetryableExportError(
      `${what}: HTTP ${status} ${detail}`,
      retryAfterMs(headers),
      options,
    );
  }
  switch (name) {
    case "NoSuchBucket":
      return new PermanentExportError(
        `${what}: ${bucket} does not exist (${where}): create it${conn.objectLock ? " with Object Lock enabled" : ""}, or correct bucket in the exporter config`,
        options,
      );
    case "InvalidAccessKeyId":
    case "SignatureDoesNotMatch":
      return new PermanentExportError(
        `${what}: the store rejected the credentials (${name}): check access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
        options,
      );
    case "AuthorizationHeaderMalformed":
    case "PermanentRedirect":
      return new PermanentExportError(
        `${what}: ${bucket} is not in region ${conn.region ?? "(default)"} (${detail}): set region to the bucket's region`,
        options,
      );
    case "InvalidRequest":
      return new PermanentExportError(
        `${what}: the store refused the request as invalid (${detail})${conn.objectLock ? `: a bucket created without Object Lock refuses Object Lock headers; write to a bucket created with Object Lock enabled, or remove object_lock from the exporter config` : ""}`,
        options,
      );
  }
  if (status === 403) {
    return new PermanentExportError(
      `${what}: access denied (${detail}): the credentials need s3:PutObject, s3:GetObject, s3:ListBucket and s3:GetBucketVersioning on ${bucket}${conn.objectLock ? " and s3:PutObjectRetention" : ""}; check the bucket policy and which credentials are in use`,
      options,
    );
  }
  if (status === 301) {
    return new PermanentExportError(
      `${what}: ${bucket} answered with a redirect (${detail}): set region to the bucket's region, or endpoint to the store's address`,
      options,
    );
  }
  return new PermanentExportError(`${what}: HTTP ${status} ${detail}`, options);
}

export function md5Base64(body: Buffer): string {
  return createHash("md5").update(body).digest("base64");
}

export function sha256Base64(body: Buffer): string {
  return createHash("sha256").update(body).digest("base64");
}

/** An ETag as S3 gives it for a single-part upload: the quoted MD5 in hex. */
export function plainEtag(body: Buffer): string {
  return `"${createHash("md5").update(body).digest("hex")}"`;
}

/** Reads a GetObject body completely. */
export async function bodyBytes(body: unknown): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  const b = body as { transformToByteArray?: () => Promise<Uint8Array> };
  if (typeof b.transformToByteArray !== "function") throw new Error("unexpected S3 body type");
  return Buffer.from(await b.transformToByteArray());
}

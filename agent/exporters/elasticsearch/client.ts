import { AgentError } from "../../common/errors.js";
import { HttpClient, type HttpResponse, retryAfterMs } from "../http/client.js";
import type { HttpClientConfig } from "../http/config.js";
import { PermanentExportError, RetryableExportError } from "../api.js";
import type { ElasticsearchExporterConfig } from "./config.js";

/**
 * The Elasticsearch side of the shared HTTP client: API-key auth on top of the shared
 * basic / bearer auth and TLS, Elasticsearch's error bodies read into messages that say
 * what to fix, and the status classification the sink and reader share.
 */

export type EsConnection = Pick<
  ElasticsearchExporterConfig,
  "endpoint" | "headers" | "auth" | "tls" | "timeout" | "compression"
>;

/** The shared client's config: an API key becomes an `Authorization: ApiKey …` header. */
export function httpConfigOf(conn: EsConnection): HttpClientConfig {
  const auth = conn.auth;
  const headers = { ...conn.headers };
  if (auth?.api_key) {
    for (const k of Object.keys(headers))
      if (k.toLowerCase() === "authorization") delete headers[k];
    headers.authorization = `ApiKey ${auth.api_key}`;
  }
  return {
    endpoint: conn.endpoint,
    headers,
    auth: auth?.basic
      ? { basic: auth.basic }
      : auth?.bearer_token
        ? { bearer_token: auth.bearer_token }
        : undefined,
    tls: conn.tls,
    timeout: conn.timeout,
    compression: conn.compression,
  };
}

export function createEsClient(conn: EsConnection): HttpClient {
  return new HttpClient(httpConfigOf(conn));
}

export interface EsErrorInfo {
  type?: string;
  reason?: string;
}

/** `{"error":{"type","reason","caused_by"…},"status"}` or `{"error":"text"}` → type and reason. */
export function esErrorOf(body: Buffer | string): EsErrorInfo {
  const text = typeof body === "string" ? body : body.toString("utf8");
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    return errorInfo(parsed.error);
  } catch {
    const t = text.trim().slice(0, 300);
    return t ? { reason: t } : {};
  }
}

/** Type and reason of an error object from a response or a bulk item, with its cause. */
export function errorInfo(error: unknown): EsErrorInfo {
  if (typeof error === "string") return { reason: error };
  if (typeof error !== "object" || error === null) return {};
  const e = error as { type?: unknown; reason?: unknown; caused_by?: unknown };
  const type = typeof e.type === "string" ? e.type : undefined;
  let reason = typeof e.reason === "string" ? e.reason : undefined;
  const cause = e.caused_by ? errorInfo(e.caused_by) : {};
  if (cause.reason || cause.type)
    reason = `${reason ?? ""}${reason ? "; " : ""}caused by ${cause.type ?? "error"}: ${cause.reason ?? ""}`;
  return { type, reason };
}

export function describeError(info: EsErrorInfo): string {
  return [info.type, info.reason].filter(Boolean).join(": ");
}

/** What to check when Elasticsearch answers 401, for the auth that is configured. */
export function credentialHint(conn: Pick<EsConnection, "auth">): string {
  const auth = conn.auth;
  if (auth?.api_key)
    return 'check auth.api_key: it must be the base64 "encoded" value of a key that exists, has not expired and was not invalidated';
  if (auth?.basic)
    return `check auth.basic: the username "${auth.basic.username}" or its password is wrong, or the user is disabled`;
  if (auth?.bearer_token) return "check auth.bearer_token: the token is wrong or has expired";
  return "the cluster requires authentication: set auth.api_key (recommended) or auth.basic";
}

/**
 * Throws the export error for a failed response. `what` names the operation, `privilege`
 * says what a 403 means for it (which privilege to grant, or what to configure instead).
 */
export function failForEs(
  res: HttpResponse,
  what: string,
  conn: Pick<EsConnection, "auth">,
  privilege: string,
): never {
  const info = esErrorOf(res.body);
  const detail = describeError(info);
  const base = `${what}: HTTP ${res.status}${detail ? ` ${detail}` : ""}`;
  if (res.status === 401)
    throw new PermanentExportError(
      `${base}: Elasticsearch rejected the credentials: ${credentialHint(conn)}`,
    );
  if (res.status === 403)
    throw new PermanentExportError(
      `${base}: the credentials were accepted but lack a privilege: ${privilege}`,
    );
  if (res.status === 408 || res.status === 429 || res.status >= 500)
    throw new RetryableExportError(base, retryAfterMs(res.headers));
  if (res.status === 413)
    throw new PermanentExportError(
      `${base}: the request is larger than the cluster accepts: lower max_request_size_kib, or raise http.max_content_length`,
    );
  throw new PermanentExportError(base);
}

/** The JSON body of a 2xx response; a body that is not JSON means the endpoint is not Elasticsearch. */
export function jsonOf<T>(res: HttpResponse, what: string, url: string): T {
  try {
    return JSON.parse(res.body.toString("utf8")) as T;
  } catch {
    throw new PermanentExportError(
      `${what}: HTTP ${res.status} from ${url} is not JSON (${res.body.toString("utf8").slice(0, 120).trim()}…): check that endpoint is the Elasticsearch URL`,
    );
  }
}

/** An error for the reader: export errors become "cannot read" errors with the same message. */
export function sourceError(description: string, err: unknown): AgentError {
  const message = err instanceof Error ? err.message : String(err);
  return new AgentError("SOURCE_UNREADABLE", `cannot read ${description}: ${message}`, {
    cause: err,
  });
}

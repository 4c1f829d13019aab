import { gzipSync } from "node:zlib";
import type { Dispatcher } from "undici";
import { PermanentExportError, RetryableExportError } from "../api.js";
import type { HttpClientConfig } from "./config.js";
import { tlsConnectOptions } from "../../common/tls-client.js";

/**
 * A small HTTP client for exporters and their readers: one undici connection pool per
 * exporter, auth and TLS from config, and one place that decides which failures are worth
 * retrying (network errors, 408, 429, 5xx; honouring Retry-After) and which are not.
 */

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface HttpRequest {
  method: "GET" | "POST" | "PUT" | "HEAD" | "DELETE";
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Compress the body with the configured compression (default true when there is a body). */
  compress?: boolean;
}

export class HttpClient {
  private dispatcher: Promise<Dispatcher> | null = null;
  private readonly base: URL;
  private readonly baseHeaders: Record<string, string>;

  constructor(private readonly config: HttpClientConfig) {
    this.base = new URL(config.endpoint);
    const auth: Record<string, string> = {};
    if (config.auth?.basic) {
      auth.authorization = `Basic ${Buffer.from(`${config.auth.basic.username}:${config.auth.basic.password}`).toString("base64")}`;
    } else if (config.auth?.bearer_token) {
      auth.authorization = `Bearer ${config.auth.bearer_token}`;
    }
    this.baseHeaders = { ...config.headers, ...auth };
  }

  /** The connection pool, created on first use: undici is loaded only by agents that export over HTTP. */
  private pool(): Promise<Dispatcher> {
    this.dispatcher ??= import("undici").then(({ Agent }) => {
      return new Agent({
        connect: tlsConnectOptions(this.config.tls),
        headersTimeout: this.config.timeout,
        bodyTimeout: this.config.timeout,
      });
    });
    return this.dispatcher;
  }

  /** The endpoint URL with `path` appended to the endpoint's own path. */
  url(path: string): string {
    const basePath = this.base.pathname.replace(/\/$/, "");
    return `${this.base.origin}${basePath}${path}`;
  }

  async send(req: HttpRequest): Promise<HttpResponse> {
    const headers: Record<string, string> = { ...this.baseHeaders, ...req.headers };
    let body = req.body;
    if (body !== undefined && this.config.compression === "gzip" && req.compress !== false) {
      body = gzipSync(body);
      headers["content-encoding"] = "gzip";
    }
    try {
      const dispatcher = await this.pool();
      const res = await dispatcher.request({
        origin: this.base.origin,
        path: this.url(req.path).slice(this.base.origin.length),
        method: req.method,
        headers,
        body,
      });
      const chunks: Buffer[] = [];
      for await (const chunk of res.body) chunks.push(chunk as Buffer);
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
    } catch (err) {
      throw new RetryableExportError(
        `${req.method} ${this.url(req.path)} failed: ${(err as Error).message}`,
        undefined,
        { cause: err },
      );
    }
  }

  /** Closes the pool, aborting any request still waiting on a backend: by now nobody waits for it. */
  async close(): Promise<void> {
    const pool = this.dispatcher;
    this.dispatcher = null;
    if (pool) await (await pool).destroy();
  }
}

/** Milliseconds from a Retry-After header (seconds or an HTTP date), if present. */
export function retryAfterMs(headers: HttpResponse["headers"]): number | undefined {
  const raw = headers["retry-after"];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Throws the right export error for a failed response; `what` names the operation. */
export function failFor(res: HttpResponse, what: string): never {
  const text = res.body.toString("utf8").slice(0, 500).trim();
  const message = `${what}: HTTP ${res.status}${text ? `: ${text}` : ""}`;
  if (res.status === 408 || res.status === 429 || res.status >= 500) {
    throw new RetryableExportError(message, retryAfterMs(res.headers));
  }
  throw new PermanentExportError(message);
}

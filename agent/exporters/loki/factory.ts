import { AgentError } from "../../common/errors.js";
import { implementExporter } from "../descriptor.js";
import type { AuditSource } from "../source.js";
import { HttpClient } from "../http/client.js";
import type { HttpClientConfig } from "../http/config.js";
import { type LokiExporterConfig, lokiExporterConfigSchema } from "./config.js";
import { lokiExporter } from "./descriptor.js";
import { LokiQuery, type LokiReaderOptions } from "./query.js";
import { LokiSource } from "./reader.js";
import { LokiSink } from "./sink.js";

export const lokiExporterFactory = implementExporter(lokiExporter, {
  create(settings, config) {
    return {
      sink: new LokiSink(
        new HttpClient(httpConfig(config)),
        config,
        settings.state,
        settings.logger.child({ exporter: settings.id }),
        undefined,
        new LokiQuery(readerOptions(config)),
      ),
      delivery: { retry: config.retry_on_failure },
    };
  },
  reader: (config) => new LokiSource(readerOptions(config)),
});

function readerOptions(config: LokiExporterConfig): LokiReaderOptions {
  return {
    http: httpConfig(config),
    tenantId: config.tenant_id,
    match: config.labels.static,
    read: config.read,
  };
}

export function httpConfig(config: LokiExporterConfig): HttpClientConfig {
  return {
    endpoint: config.endpoint,
    headers: config.headers,
    auth: config.auth,
    tls: config.tls,
    timeout: config.timeout,
    compression: config.compression,
  };
}

/**
 * `verify --source loki:URL`: URL is Loki's base URL, e.g. `http://loki:3100`, with optional
 * `user:password@` (basic auth) and query parameters `tenant` (X-Scope-OrgID), `chain`
 * (one chain id), `since` (how far back: "8760h" or an RFC 3339 time), `window` (query
 * range width, e.g. "24h") and `page_size` (the limit of each query, as read.page_size).
 * A bearer token comes from LOKI_BEARER_TOKEN.
 */
export function lokiSourceFromSpec(spec: string): AuditSource {
  let url: URL;
  try {
    url = new URL(spec);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http(s)");
  } catch {
    throw new AgentError(
      "VERIFY_BAD_SOURCE",
      `loki source "${spec}" is not a URL: write loki:http://HOST:3100 (optionally ?tenant=ID)`,
    );
  }
  // A copy: url.searchParams is live, and the URL's query is cleared below.
  const params = new URLSearchParams(url.searchParams);
  const known = new Set(["tenant", "chain", "since", "window", "page_size"]);
  for (const key of params.keys())
    if (!known.has(key))
      throw new AgentError(
        "VERIFY_BAD_SOURCE",
        `loki source: unknown parameter "${key}" (use tenant, chain, since, window or page_size)`,
      );
  const pageSize = params.get("page_size");
  if (pageSize !== null && !/^\d+$/.test(pageSize))
    throw new AgentError(
      "VERIFY_BAD_SOURCE",
      `loki source: page_size "${pageSize}" is not a whole number of entries (for example page_size=1000)`,
    );
  const username = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  const bearer = process.env.LOKI_BEARER_TOKEN;
  url.username = "";
  url.password = "";
  url.search = "";
  const parsed = lokiExporterConfigSchema.safeParse({
    endpoint: url.toString().replace(/\/$/, ""),
    tenant_id: params.get("tenant") ?? undefined,
    auth: username
      ? { basic: { username, password } }
      : bearer
        ? { bearer_token: bearer }
        : undefined,
    read: {
      chain_id: params.get("chain") ?? undefined,
      since: params.get("since") ?? undefined,
      query_window: params.get("window") ?? undefined,
      page_size: pageSize === null ? undefined : Number(pageSize),
    },
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AgentError(
      "VERIFY_BAD_SOURCE",
      `loki source "${spec}": ${issue ? `${issue.path.join(".")}: ${issue.message}` : "invalid"}`,
    );
  }
  const config = parsed.data;
  return new LokiSource({
    http: httpConfig(config),
    tenantId: config.tenant_id,
    match: {},
    read: config.read,
  });
}

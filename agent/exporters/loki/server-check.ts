import { parse as parseYaml } from "yaml";
import type { HttpClient } from "../http/client.js";
import type { LokiExporterConfig } from "./config.js";
import { PAGE_BYTES } from "./windows.js";

/**
 * What the Loki exporter checks of the server when it starts (docs/exporter-loki.md, Limits
 * and Loki settings to check): its version (/loki/api/v1/status/buildinfo) and, where Loki
 * shows it (/config, the running configuration), the limits that would later stop the
 * exporter or the reader. Best effort: a gateway may hide these endpoints, and nothing here
 * stops the exporter; each problem is a warning that says what to change.
 */
export interface LokiServerFacts {
  version: string | null;
  /** Warnings, each naming the Loki setting and what to set it to. */
  warnings: string[];
}

/** Largest record the agent accepts by default (extensions.wal.max_record_size_kib). */
const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024;

export async function checkLokiServer(
  client: HttpClient,
  config: LokiExporterConfig,
  headers: Record<string, string>,
): Promise<LokiServerFacts> {
  const get = async (path: string): Promise<string | null> => {
    try {
      const res = await client.send({ method: "GET", path, headers });
      return res.status === 200 ? res.body.toString("utf8") : null;
    } catch {
      return null;
    }
  };
  const [info, yamlText] = await Promise.all([
    get("/loki/api/v1/status/buildinfo"),
    get("/config"),
  ]);
  let version: string | null = null;
  try {
    const v = info === null ? undefined : (JSON.parse(info) as { version?: unknown }).version;
    version = typeof v === "string" ? v : null;
  } catch {
    version = null;
  }
  let running: unknown = null;
  try {
    running = yamlText === null ? null : parseYaml(yamlText);
  } catch {
    running = null;
  }
  return { version, warnings: running === null ? [] : warningsFor(running, config) };
}

/** The warnings for Loki's running configuration `c` (as /config shows it). */
export function warningsFor(c: unknown, config: LokiExporterConfig): string[] {
  const at = (...path: string[]): unknown =>
    path.reduce<unknown>(
      (o, k) =>
        typeof o === "object" && o !== null ? (o as Record<string, unknown>)[k] : undefined,
      c,
    );
  const out: string[] = [];
  const lineSize = bytesOf(at("limits_config", "max_line_size"));
  if (lineSize !== null && lineSize > 0 && lineSize < DEFAULT_MAX_RECORD_BYTES)
    out.push(
      `Loki's limits_config.max_line_size is ${lineSize} bytes: a longer audit record is refused (400) and stops this exporter. Raise it to at least extensions.wal.max_record_size_kib (1 MiB by default), or 0`,
    );
  if (config.structured_metadata && at("limits_config", "allow_structured_metadata") === false)
    out.push(
      "Loki's limits_config.allow_structured_metadata is false but this exporter sends structured metadata: every push will be refused (400). Allow it (schema v13), or set structured_metadata: false",
    );
  const burst = Number(at("limits_config", "ingestion_burst_size_mb"));
  if (
    Number.isFinite(burst) &&
    burst > 0 &&
    burst * 1024 * 1024 < config.max_request_size_kib * 1024
  )
    out.push(
      `Loki's limits_config.ingestion_burst_size_mb (${burst}) is smaller than this exporter's max_request_size_kib (${config.max_request_size_kib}): a push that large can never be accepted. Lower max_request_size_kib or raise the burst`,
    );
  const send = bytesOf(at("server", "grpc_server_max_send_msg_size"));
  if (send !== null && send > 0 && send < 2 * PAGE_BYTES)
    out.push(
      `Loki's server.grpc_server_max_send_msg_size is ${send} bytes: the verifier reads pages of up to ${PAGE_BYTES} bytes of lines, which need about twice that. Raise it to at least ${2 * PAGE_BYTES}`,
    );
  const rejectOld = at("limits_config", "reject_old_samples");
  const maxAge = secondsOf(at("limits_config", "reject_old_samples_max_age"));
  if (rejectOld !== false && maxAge !== null && maxAge < 24 * 3600)
    out.push(
      `Loki's limits_config.reject_old_samples_max_age is ${maxAge} s: a backlog older than that (an outage of Loki) is refused and stops this exporter. Keep it at a day or more (default 1 week)`,
    );
  return out;
}

/** A size as Loki's /config writes it (bytes, or "256KB", "4MiB"…), in bytes. */
function bytesOf(v: unknown): number | null {
  if (typeof v === "number") return v;
  if (typeof v !== "string") return null;
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(v.trim());
  if (!m) return null;
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[
    (m[2] as string).toUpperCase() as "" | "K" | "M" | "G" | "T"
  ];
  return Math.round(Number(m[1]) * unit);
}

/** A duration as Loki writes it ("1w", "168h", "30m0s"…), in seconds. */
function secondsOf(v: unknown): number | null {
  if (typeof v !== "string") return null;
  const units: Record<string, number> = {
    ms: 0.001,
    s: 1,
    m: 60,
    h: 3600,
    d: 86400,
    w: 604800,
    y: 31536000,
  };
  let total = 0;
  let matched = "";
  for (const [, n, u] of v.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/g)) {
    total += Number(n) * (units[u as string] as number);
    matched += `${n}${u}`;
  }
  return matched.length > 0 && matched === v.trim() ? total : null;
}

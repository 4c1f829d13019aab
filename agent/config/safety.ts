import { configFor } from "../common/component.js";
import type { RetryOnFailure } from "../common/config-schema.js";
import { otlpReceiverFactory } from "../receivers/otlp/factory.js";
import { splitEndpoint } from "../common/config-schema.js";
import type { AgentConfig } from "./load.js";
import { durableExporterTypes, oneOf } from "./registry.js";

/**
 * Settings that are valid but unsafe for audit data. `audit-agent validate` prints them as
 * warnings (and `run` logs them): each says what the risk is and what to set instead.
 */
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/;

interface ProtocolSettings {
  endpoint: string;
  tls?: { client_ca_file?: string };
  auth?: unknown;
}

export function unsafeSettings(config: AgentConfig): string[] {
  const warnings: string[] = [];
  for (const r of config.receivers) {
    const protocols: Record<string, ProtocolSettings | undefined> = configFor(
      r,
      otlpReceiverFactory,
    ).protocols;
    for (const [name, p] of Object.entries(protocols)) {
      if (!p) continue;
      const { host } = splitEndpoint(p.endpoint);
      if (config.source?.client_certificate && !p.tls?.client_ca_file) {
        warnings.push(
          `processors.source.client_certificate is on, but receivers.${r.id}.protocols.${name} verifies no client certificate (no tls.client_ca_file): records it receives carry no tls.client.subject or tls.client.hash.sha256 in their source`,
        );
      }
      if (LOOPBACK.test(host)) continue;
      if (!p.tls && !p.auth) {
        warnings.push(
          `receivers.${r.id}.protocols.${name}.endpoint ${p.endpoint} is reachable from other hosts with neither tls nor auth: anyone who can reach it can write audit records. Set tls (with client_ca_file for mTLS) and/or auth.bearer_token, or listen on 127.0.0.1 (a sidecar shares its pod's network)`,
        );
      } else if (!p.tls) {
        warnings.push(
          `receivers.${r.id}.protocols.${name} sends its bearer token in clear text over ${p.endpoint}: set tls too`,
        );
      } else if (!p.auth && !p.tls.client_ca_file) {
        warnings.push(
          `receivers.${r.id}.protocols.${name}.endpoint ${p.endpoint} is reachable from other hosts with tls but no client authentication: TLS hides the records, it does not say who may write them. Set tls.client_ca_file (mTLS) or auth.bearer_token`,
        );
      }
    }
  }
  for (const e of config.exporters) {
    const stores = e.factory.storesAuditRecords?.(e.config) ?? true;
    const retry = retryOf(e.config);
    if (stores && retry && (!retry.enabled || retry.max_elapsed_time > 0)) {
      warnings.push(
        `exporters.${e.id}.retry_on_failure ${retry.enabled ? `gives up after max_elapsed_time ${retry.max_elapsed_time / 1000}s` : "is disabled"}: the first lasting failure stops this exporter (its records wait in the WAL until a restart, and the WAL fills). For audit data leave enabled: true and max_elapsed_time: 0s`,
      );
    }
  }
  const durable = config.exporters.filter((e) => e.factory.capabilities.durable);
  if (durable.length === 0) {
    warnings.push(
      `no exporter keeps audit records in durable storage (${oneOf(durableExporterTypes())}): an otlp exporter only passes them on, so verification has nothing to read`,
    );
  }
  for (const [what, endpoint] of [
    ["service.telemetry.metrics.address", config.metricsAddress],
    ["extensions.health_check.endpoint", config.healthCheck?.endpoint],
    ["extensions.signing.endpoint", config.signing.endpoint],
  ] as const) {
    if (endpoint && !LOOPBACK.test(splitEndpoint(endpoint).host)) {
      warnings.push(
        `${what} ${endpoint} is reachable from other hosts: bind it to 127.0.0.1 unless a scraper or probe outside the pod needs it`,
      );
    }
  }
  return warnings;
}

/** An exporter config's retry_on_failure, when it has one (every durable exporter does). */
function retryOf(config: unknown): RetryOnFailure | undefined {
  const retry = (config as { retry_on_failure?: Partial<RetryOnFailure> } | null)?.retry_on_failure;
  return typeof retry?.enabled === "boolean" && typeof retry.max_elapsed_time === "number"
    ? (retry as RetryOnFailure)
    : undefined;
}

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import { unsafeSettings } from "../../agent/config/safety.js";
import { ROOT } from "../helpers/agent.js";

/** `audit-agent validate` warns about settings that are valid but unsafe for audit data. */
const base = readFileSync(join(ROOT, "config/default.yaml"), "utf8");
const warn = (yaml: string, env: Record<string, string> = {}) =>
  unsafeSettings(parseConfig(yaml, "x.yaml", env));

describe("unsafe settings", () => {
  it("finds nothing unsafe in the default config", () => {
    expect(warn(base)).toEqual([]);
  });

  it("warns about a receiver reachable from other hosts without tls or auth", () => {
    const w = warn(base, { AUDIT_AGENT_GRPC_ENDPOINT: "0.0.0.0:4317" });
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(
      /receivers\.otlp\.protocols\.grpc\.endpoint 0\.0\.0\.0:4317 is reachable from other hosts with neither tls nor auth/,
    );
  });

  it("warns that a bearer token without tls travels in clear text", () => {
    const yaml = base.replace(
      "        endpoint: ${env:AUDIT_AGENT_HTTP_ENDPOINT:-127.0.0.1:4318}",
      "        endpoint: 0.0.0.0:4318\n        auth:\n          bearer_token: abcdefghijklmnopqrstuvwxyz",
    );
    expect(warn(yaml).join()).toMatch(/protocols\.http sends its bearer token in clear text/);
  });

  it("warns about tls without client authentication on a receiver reachable from other hosts", () => {
    const tls = (extra: string) =>
      base.replace(
        "        endpoint: ${env:AUDIT_AGENT_HTTP_ENDPOINT:-127.0.0.1:4318}",
        `        endpoint: 0.0.0.0:4318\n        tls:\n          cert_file: /x/cert.pem\n          key_file: /x/key.pem\n${extra}`,
      );
    expect(warn(tls("")).join()).toMatch(
      /protocols\.http\.endpoint 0\.0\.0\.0:4318 is reachable from other hosts with tls but no client authentication/,
    );
    expect(warn(tls("          client_ca_file: /x/ca.pem\n"))).toEqual([]);
    expect(
      warn(tls("        auth:\n          bearer_token: abcdefghijklmnopqrstuvwxyz\n")),
    ).toEqual([]);
  });

  it("warns about retry settings that would stop delivering audit data", () => {
    const yaml = base.replace(
      "      max_megabytes: 64\n",
      "      max_megabytes: 64\n    retry_on_failure:\n      max_elapsed_time: 5m\n",
    );
    expect(warn(yaml).join()).toMatch(
      /exporters\.file\.retry_on_failure gives up after max_elapsed_time 300s/,
    );
    const off = base.replace(
      "      max_megabytes: 64\n",
      "      max_megabytes: 64\n    retry_on_failure:\n      enabled: false\n",
    );
    expect(warn(off).join()).toMatch(/exporters\.file\.retry_on_failure is disabled/);
  });

  it("warns when no exporter keeps audit records in durable storage", () => {
    const yaml = base
      .replace(
        "exporters:\n  file:\n",
        "exporters:\n  otlp_http/up:\n    endpoint: http://collector:4318\n    audit: true\n  file:\n",
      )
      .replace("exporters: [file]", "exporters: [otlp_http/up]");
    expect(warn(yaml).join()).toMatch(/no exporter keeps audit records in durable storage/);
  });

  it("warns about own endpoints reachable from other hosts", () => {
    expect(warn(base, { AUDIT_AGENT_METRICS_ENDPOINT: "0.0.0.0:8888" }).join()).toMatch(
      /service\.telemetry\.metrics\.address 0\.0\.0\.0:8888 is reachable/,
    );
  });

  it("warns that client_certificate stamps nothing on a receiver without mTLS", () => {
    const yaml = base
      .replace("processors:\n", "processors:\n  source:\n    client_certificate: true\n")
      .replace("processors: [audit_filter]", "processors: [audit_filter, source]");
    const w = warn(yaml);
    expect(w).toHaveLength(2);
    for (const protocol of ["grpc", "http"])
      expect(w.join("\n")).toContain(
        `processors.source.client_certificate is on, but receivers.otlp.protocols.${protocol} verifies no client certificate`,
      );
    expect(warn(yaml.replace("client_certificate: true", "client_address: true"))).toEqual([]);
  });
});

// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the YAML under test holds ${env:…} references
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import { configProblems } from "../helpers/config.js";

/**
 * The config schemas are written in zod's v3 API (agent/common/zod.ts): its messages are
 * replaced by the agent's, and it parses a `.default` through the schema. These pin what
 * that must give: the same parsed defaults, and problems that say what was found.
 */

const config = (extra = "", retry = "") => `receivers:
  otlp:
    protocols:
      http:
exporters:
  file:
    directory: ./out
${retry}service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
${extra}`;

const telemetryLevel = (level: string) => `  telemetry:\n    logs:\n      level: ${level}\n`;

describe("config messages and defaults under zod's v3 API", () => {
  it("parses duration and mapping defaults to the same values as written ones", () => {
    // retry_on_failure's: config.test.ts, "accepts the minimal config and fills every default".
    const c = parseConfig(config(), "x.yaml", {});
    expect(c.signing.batch).toEqual({ max_records: 1000, max_size_mib: 4, timeout: 1000 });
  });

  it("names the value found for an option that is not one of the allowed ones", () => {
    const allowed = 'expected one of "debug"|"info"|"warn"|"error"';
    expect(configProblems(config(telemetryLevel("loud")))).toEqual([
      `x.yaml:15:14: service.telemetry.logs.level: Invalid option: ${allowed}, got "loud"`,
    ]);
    expect(configProblems(config(telemetryLevel("5")))).toEqual([
      `x.yaml:15:14: service.telemetry.logs.level: Invalid option: ${allowed}, got 5`,
    ]);
  });

  it("refuses an infinite number (YAML .inf), which zod 3 would take", () => {
    const retry = "    retry_on_failure:\n      multiplier: .inf\n";
    expect(configProblems(config("", retry))).toEqual([
      "x.yaml:9:19: exporters.file.retry_on_failure.multiplier: expected number, got Infinity",
    ]);
  });

  it("gives an enum setting the text of a whole ${env:…} that YAML reads as a number", () => {
    const tls = `receivers:
  otlp:
    protocols:
      http:
        tls:
          cert_file: /nonexistent/c.pem
          key_file: /nonexistent/k.pem
          min_version: \${env:TLS_MIN}
`;
    const c = parseConfig(config().replace(/^receivers:\n(.*\n){3}/, tls), "x.yaml", {
      TLS_MIN: "1.3",
    });
    const http = (c.receivers[0]?.config as { protocols: { http: { tls: object } } }).protocols
      .http;
    expect(http.tls).toMatchObject({ min_version: "1.3" });
  });
});

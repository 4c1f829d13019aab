// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the YAML under test holds ${env:…} references
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AgentConfig,
  ConfigError,
  loadConfigFile,
  parseConfig,
} from "../../agent/config/load.js";
import type { FileExporterConfig } from "../../agent/exporters/file/config.js";
import { DEFAULT_CONDITIONS } from "../../agent/processing/audit-filter/config.js";
import { configProblems } from "../helpers/config.js";

const ROOT = resolve(import.meta.dirname, "../..");

/** A minimal valid config; line numbers matter to the location assertions below. */
const BASE = [
  "receivers:", //                    1
  "  otlp:", //                       2
  "    protocols:", //                3
  "      grpc:", //                   4
  "      http:", //                   5
  "exporters:", //                    6
  "  file:", //                       7
  "    directory: ./out", //          8
  "service:", //                      9
  "  pipelines:", //                  10
  "    logs:", //                     11
  "      receivers: [otlp]", //       12
  "      exporters: [file]", //       13
].join("\n");

/** Replaces one exact snippet (no `$` replacement patterns), failing if it is absent. */
function edit(text: string, from: string, to: string): string {
  expect(text, `the test's base config should contain ${JSON.stringify(from)}`).toContain(from);
  return text.split(from).join(to);
}

function parse(text: string, env: Record<string, string | undefined> = {}): AgentConfig {
  return parseConfig(text, "x.yaml", env);
}

function fileConfig(c: AgentConfig): FileExporterConfig {
  expect(c.exporters[0]?.factory.type).toBe("file");
  return c.exporters[0]?.config as FileExporterConfig;
}

/** Asserts exactly one problem and returns it. */
function oneProblem(text: string, env: Record<string, string | undefined> = {}): string {
  const problems = configProblems(text, env);
  expect(problems).toHaveLength(1);
  return problems[0] as string;
}

const withFilter = (filter: string) =>
  `${edit(BASE, "      exporters: [file]", "      processors: [audit_filter]\n      exporters: [file]")}\nprocessors:\n  audit_filter:\n${filter}`;
// Lines 15-16 are processors: and audit_filter:, so the filter body starts at line 17.

describe("parseConfig: invalid configs name the problem, the key path and the line", () => {
  it("reports a YAML syntax error with its line and column", () => {
    const p = oneProblem("receivers: [otlp\nexporters:\n  file:\n");
    expect(p).toMatch(/^x\.yaml:\d+:\d+: not valid YAML: /);
    expect(p).toContain("Flow sequence");
  });

  it("reports tabs used for indentation at their line", () => {
    const p = oneProblem("receivers:\n\totlp: {}\n");
    expect(p).toMatch(/^x\.yaml:2:1: not valid YAML: Tabs are not allowed/);
  });

  it("reports a duplicate key by name at the second occurrence", () => {
    expect(oneProblem(edit(BASE, "  file:\n", "  file:\n  file:\n"))).toBe(
      'x.yaml:8:3: duplicate key "file": a key may appear once in a mapping, so merge the two entries',
    );
    expect(oneProblem(`${BASE}\nreceivers:\n  otlp: {}\n`)).toMatch(
      /^x\.yaml:14:1: duplicate key "receivers": /,
    );
  });

  it("reports a top-level typo at the key's own line, with its name", () => {
    const p = oneProblem(`${BASE}\nexporter:\n  file: {}\n`);
    expect(p).toBe(
      'x.yaml:14:1: exporter: unknown key "exporter": check the spelling against docs/configuration.md',
    );
  });

  it("reports an unknown key inside a component by its full path", () => {
    const p = oneProblem(edit(BASE, "    directory: ./out", "    directroy: ./out"));
    expect(p).toBe(
      'x.yaml:8:5: exporters.file.directroy: unknown key "directroy": check the spelling against docs/configuration.md',
    );
  });

  it("reports each unknown key of one mapping separately", () => {
    const problems = configProblems(
      edit(BASE, "    directory: ./out", "    dir: a\n    rotate: b"),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^x\.yaml:8:5: exporters\.file\.dir: unknown key "dir"/),
      expect.stringMatching(/^x\.yaml:9:5: exporters\.file\.rotate: unknown key "rotate"/),
    ]);
  });

  it("reports a wrong type with what was expected and what was found", () => {
    const p = oneProblem(`${BASE}\nextensions:\n  wal:\n    max_size_mib: big\n`);
    expect(p).toBe('x.yaml:16:19: extensions.wal.max_size_mib: expected number, got "big"');
  });

  it("names types in YAML's words (mapping, list), not the schema library's", () => {
    expect(oneProblem(edit(BASE, "[otlp]", "otlp"))).toBe(
      'x.yaml:12:18: service.pipelines.logs.receivers: expected list, got "otlp"',
    );
    const noPipelines = "receivers:\n  otlp:\n    protocols:\n      grpc:\nservice: {}\n";
    expect(oneProblem(noPipelines)).toMatch(/service\.pipelines: required: expected mapping$/);
  });

  it("reports a port out of range", () => {
    const p = oneProblem(
      edit(BASE, "      grpc:", "      grpc:\n        endpoint: 127.0.0.1:99999"),
    );
    expect(p).toBe(
      'x.yaml:5:19: receivers.otlp.protocols.grpc.endpoint: bad port 99999 in endpoint "127.0.0.1:99999": ports are 0 to 65535',
    );
  });

  it("reports an endpoint without a port", () => {
    const p = oneProblem(edit(BASE, "      http:", "      http:\n        endpoint: localhost"));
    expect(p).toBe(
      'x.yaml:6:19: receivers.otlp.protocols.http.endpoint: endpoint "localhost" must be host:port, for example 127.0.0.1:4317',
    );
  });

  it("accepts bracketed IPv6 and host names in endpoints", () => {
    const text = edit(
      edit(BASE, "      grpc:", "      grpc:\n        endpoint: '[::1]:4317'"),
      "      http:",
      "      http:\n        endpoint: otel-agent.local:0",
    );
    const otlp = parse(text).receivers[0]?.config as {
      protocols: { grpc: { endpoint: string }; http: { endpoint: string } };
    };
    expect(otlp.protocols.grpc.endpoint).toBe("[::1]:4317");
    expect(otlp.protocols.http.endpoint).toBe("otel-agent.local:0");
  });

  it("reports a duration without a valid unit, and a bare number", () => {
    const problems = configProblems(
      edit(
        BASE,
        "    directory: ./out",
        "    directory: ./out\n    retry_on_failure:\n      initial_interval: 5 parsecs\n      max_interval: 5",
      ),
    );
    expect(problems).toEqual([
      'x.yaml:10:25: exporters.file.retry_on_failure.initial_interval: "5 parsecs" is not a duration: use a number with ms, s, m or h, like "5s"',
      'x.yaml:11:21: exporters.file.retry_on_failure.max_interval: duration 5 needs a unit: write "5s" or "5ms"',
    ]);
  });

  it("parses durations to milliseconds", () => {
    const text = edit(
      BASE,
      "    directory: ./out",
      "    directory: ./out\n    retry_on_failure:\n      initial_interval: 250ms\n      max_interval: 1.5m\n      max_elapsed_time: 2h",
    );
    const retry = fileConfig(parse(text)).retry_on_failure;
    expect(retry).toMatchObject({
      initial_interval: 250,
      max_interval: 90_000,
      max_elapsed_time: 7_200_000,
    });
  });

  it("reports an unknown component type with the types available", () => {
    const p = oneProblem(edit(BASE, "    directory: ./out", "    directory: ./out\n  lokii:"));
    expect(p).toMatch(/^x\.yaml:9:\d+: exporters\.lokii: unknown exporter type "lokii"/);
    expect(p).toContain("(available: file, loki, s3, elasticsearch, otlp_http, otlp_grpc, debug)");
  });

  it("reports a malformed component id", () => {
    const p = oneProblem(edit(BASE, "    directory: ./out", "    directory: ./out\n  File/x y:"));
    expect(p).toMatch(/^x\.yaml:9:\d+: exporters\.File\/x y: /);
    expect(p).toContain(
      '"File/x y" is not a component id: use type or type/name, for example file or file/archive',
    );
  });

  it("accepts type/name ids and uses them in the pipeline", () => {
    const text = edit(
      edit(BASE, "  file:\n", "  file/archive:\n"),
      "exporters: [file]",
      "exporters: [file/archive]",
    );
    const config = parse(text);
    expect(config.exporters.map((e) => e.id)).toEqual(["file/archive"]);
    expect(config.exporters[0]?.factory.type).toBe("file");
  });

  it("reports a pipeline reference to an undefined component at its list index", () => {
    const p = oneProblem(edit(BASE, "exporters: [file]", "exporters: [file, file/archive]"));
    expect(p).toBe(
      'x.yaml:13:25: service.pipelines.logs.exporters[1]: references exporter "file/archive", which is not defined under exporters',
    );
  });

  it("reports a pipeline with no receivers", () => {
    const p = oneProblem(edit(BASE, "receivers: [otlp]", "receivers: []"));
    expect(p).toBe(
      "x.yaml:12:18: service.pipelines.logs.receivers: a pipeline needs at least one receiver",
    );
  });

  it("reports a pipeline with no exporters, empty or missing", () => {
    expect(oneProblem(edit(BASE, "exporters: [file]", "exporters: []"))).toBe(
      "x.yaml:13:18: service.pipelines.logs.exporters: a pipeline needs at least one exporter",
    );
    expect(oneProblem(edit(BASE, "\n      exporters: [file]", ""))).toMatch(
      /^x\.yaml:12:\d+: service\.pipelines\.logs\.exporters: required: expected list$/,
    );
  });

  it("requires service.pipelines.logs", () => {
    const text = edit(
      BASE,
      "    logs:\n      receivers: [otlp]\n      exporters: [file]",
      "    logs/a:\n      receivers: [otlp]\n      exporters: [file]",
    );
    expect(configProblems(text)).toEqual([
      expect.stringMatching(
        /^x\.yaml:12:7: service\.pipelines\.logs\/a: only one logs pipeline is supported \(one chain per agent\): name it "logs"$/,
      ),
      expect.stringMatching(
        /^x\.yaml:11:\d+: service\.pipelines: a logs pipeline is required: service\.pipelines\.logs with receivers and exporters$/,
      ),
    ]);
  });

  it("rejects a traces pipeline and says where traces belong", () => {
    const p = oneProblem(
      `${BASE}\n    traces:\n      receivers: [otlp]\n      exporters: [file]\n`,
    );
    expect(p).toBe(
      'x.yaml:15:7: service.pipelines.traces: the audit agent handles logs only: remove the "traces" pipeline (send traces and metrics to a Collector)',
    );
  });

  it("rejects two audit_filters in one pipeline", () => {
    const text = `${edit(
      BASE,
      "      exporters: [file]",
      "      processors: [audit_filter, audit_filter/b]\n      exporters: [file]",
    )}\nprocessors:\n  audit_filter:\n  audit_filter/b:\n`;
    expect(oneProblem(text)).toBe(
      "x.yaml:13:19: service.pipelines.logs.processors: a pipeline takes one audit_filter: merge the conditions into one",
    );
  });

  it("rejects a component listed twice", () => {
    expect(oneProblem(edit(BASE, "receivers: [otlp]", "receivers: [otlp, otlp]"))).toBe(
      'x.yaml:12:25: service.pipelines.logs.receivers[1]: "otlp" is listed twice',
    );
  });

  it("rejects two wal extensions", () => {
    const p = oneProblem(`${BASE}\nextensions:\n  wal:\n  wal/b:\n`);
    expect(p).toMatch(
      /^x\.yaml:15:\d+: extensions: configure one wal extension: the agent keeps one write-ahead log$/,
    );
  });

  it("rejects a service.extensions entry that is not defined", () => {
    const p = oneProblem(`${BASE}\n  extensions: [wal]\n`);
    expect(p).toMatch(
      /service\.extensions\[0\]: references extension "wal", which is not defined under extensions$/,
    );
  });

  it("rejects an otlp receiver with no protocol enabled", () => {
    expect(
      oneProblem(edit(BASE, "    protocols:\n      grpc:\n      http:", "    protocols: {}")),
    ).toBe(
      "x.yaml:3:16: receivers.otlp.protocols: enable at least one protocol: grpc, http or both",
    );
    expect(oneProblem(edit(BASE, "    protocols:\n      grpc:\n      http:", "    {}"))).toMatch(
      /^x\.yaml:3:\d+: receivers\.otlp\.protocols: required: expected mapping$/,
    );
  });

  it("rejects a bad telemetry log level with the levels allowed", () => {
    const p = oneProblem(`${BASE}\n  telemetry:\n    logs:\n      level: loud\n`);
    expect(p).toMatch(/^x\.yaml:16:14: service\.telemetry\.logs\.level: /);
    expect(p).toContain('"debug"|"info"|"warn"|"error"');
  });

  it("rejects a bad chain_id and says what it may hold", () => {
    const p = oneProblem(`${BASE}\nextensions:\n  wal:\n    chain_id: "bad chain!"\n`);
    expect(p).toBe(
      "x.yaml:16:15: extensions.wal.chain_id: chain_id may hold letters, digits, '.', '_' and '-' (1 to 128, starting with a letter or digit)",
    );
  });

  it("rejects a document that is not a mapping", () => {
    expect(oneProblem("just a string\n")).toBe(
      "x.yaml: the config must be a YAML mapping with receivers, exporters and service",
    );
  });

  it("reports several problems together, in document order", () => {
    const text = `${edit(
      edit(BASE, "    directory: ./out", "    directroy: ./out"),
      "exporters: [file]",
      "exporters: [file, nope]",
    )}\nextensions:\n  wal:\n    max_size_mib: big\n`;
    expect(configProblems(text)).toEqual([
      expect.stringMatching(/^x\.yaml:8:5: exporters\.file\.directroy: unknown key "directroy"/),
      'x.yaml:16:19: extensions.wal.max_size_mib: expected number, got "big"',
      'x.yaml:13:25: service.pipelines.logs.exporters[1]: references exporter "nope", which is not defined under exporters',
    ]);
  });

  it("formats ConfigError.message as a list headed by the file", () => {
    try {
      parse(edit(BASE, "receivers: [otlp]", "receivers: []"));
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toBe(
        "invalid configuration in x.yaml:\n  - x.yaml:12:18: service.pipelines.logs.receivers: a pipeline needs at least one receiver",
      );
    }
  });
});

describe("parseConfig: audit_filter condition errors", () => {
  const P = "processors.audit_filter.conditions[0]";

  it("requires a subject", () => {
    expect(oneProblem(withFilter("    conditions:\n      - equals: true"))).toBe(
      `x.yaml:18:9: ${P}: a condition names exactly one of record_attribute, resource_attribute, scope_attribute, event_name, scope_name, severity_text, severity_number (found none)`,
    );
  });

  it("rejects two subjects, naming both", () => {
    const p = oneProblem(
      withFilter(
        "    conditions:\n      - record_attribute: a\n        event_name: x\n        exists: true",
      ),
    );
    expect(p).toMatch(new RegExp(`^x\\.yaml:18:9: ${P.replace(/[.[\]]/g, "\\$&")}: `));
    expect(p).toContain("(found record_attribute, event_name)");
  });

  it("requires a matcher on an attribute condition", () => {
    expect(oneProblem(withFilter("    conditions:\n      - record_attribute: audit"))).toBe(
      `x.yaml:18:9: ${P}: an attribute condition needs exactly one of equals, prefix or exists (found none)`,
    );
    expect(
      oneProblem(
        withFilter(
          "    conditions:\n      - resource_attribute: a\n        equals: x\n        prefix: y",
        ),
      ),
    ).toContain("needs exactly one of equals, prefix or exists (found equals, prefix)");
  });

  it("explains where prefix goes for event_name", () => {
    const p = oneProblem(
      withFilter("    conditions:\n      - event_name: audit.\n        prefix: audit."),
    );
    expect(p).toBe(
      `x.yaml:18:9: ${P}: prefix applies to attribute conditions only; write event_name: {equals: …} or {prefix: …}`,
    );
  });

  it("rejects a text matcher with both equals and prefix", () => {
    expect(
      oneProblem(withFilter("    conditions:\n      - event_name: {equals: a, prefix: b}")),
    ).toBe(`x.yaml:18:21: ${P}.event_name: set exactly one of equals or prefix`);
  });

  it("explains the forms of a text subject", () => {
    expect(oneProblem(withFilter("    conditions:\n      - scope_name: 123"))).toBe(
      `x.yaml:18:21: ${P}.scope_name: write the exact text, {equals: text or [texts]} or {prefix: text}`,
    );
  });

  it("explains the forms of a severity bound", () => {
    expect(oneProblem(withFilter("    conditions:\n      - severity_number: {min: LOUD}"))).toBe(
      `x.yaml:18:32: ${P}.severity_number.min: a severity is a whole number 0 to 24 or one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL`,
    );
    expect(oneProblem(withFilter("    conditions:\n      - severity_number: {max: 30}"))).toMatch(
      /severity_number\.max: Too big: expected number to be <=24$/,
    );
    expect(oneProblem(withFilter("    conditions:\n      - severity_number: {}"))).toBe(
      `x.yaml:18:26: ${P}.severity_number: set min, max or both`,
    );
  });

  it("explains what equals takes", () => {
    expect(
      oneProblem(
        withFilter("    conditions:\n      - record_attribute: a\n        equals: {x: 1}"),
      ),
    ).toBe(
      `x.yaml:19:17: ${P}.equals: equals takes a string, number or boolean, or a list of them`,
    );
  });

  it("rejects an empty conditions list and a bad match mode", () => {
    expect(oneProblem(withFilter("    conditions: []"))).toBe(
      "x.yaml:17:17: processors.audit_filter.conditions: list at least one condition, or leave conditions out for the default rule",
    );
    const p = oneProblem(withFilter("    match: some"));
    expect(p).toMatch(/^x\.yaml:17:12: processors\.audit_filter\.match: /);
    expect(p).toContain('"any"|"all"');
  });

  it("locates errors in later conditions by index", () => {
    const p = oneProblem(
      withFilter(
        "    conditions:\n      - event_name: a.b\n      - severity_text: x\n        exists: true",
      ),
    );
    expect(p).toMatch(
      /^x\.yaml:19:9: processors\.audit_filter\.conditions\[1\]: exists applies to attribute conditions only/,
    );
  });
});

describe("parseConfig: environment expansion", () => {
  const walWith = (body: string) => `${BASE}\nextensions:\n  wal:\n${body}\n`;
  const fileDir = (dir: string) => edit(BASE, "    directory: ./out", `    directory: ${dir}`);
  const dirOf = (c: AgentConfig) => fileConfig(c).directory;

  it("substitutes ${env:X} inside a string", () => {
    const c = parse(fileDir("/srv/${env:TENANT}/out"), { TENANT: "acme" });
    expect(dirOf(c)).toBe("/srv/acme/out");
    expect(c.warnings).toEqual([]);
  });

  it("uses ${env:X:-default} only when X is unset", () => {
    const text = fileDir("${env:OUT_DIR:-/var/audit}");
    expect(dirOf(parse(text, {}))).toBe("/var/audit");
    expect(dirOf(parse(text, { OUT_DIR: "/elsewhere" }))).toBe("/elsewhere");
    // As in the Collector, a variable set to "" is set: the default does not apply.
    const filter = withFilter(
      "    conditions:\n      - record_attribute: tenant\n        equals: ${env:TENANT:-acme}",
    );
    expect(parse(filter, { TENANT: "" }).auditFilter.config.conditions).toEqual([
      { record_attribute: "tenant", equals: "" },
    ]);
    // An empty default is a default: no warning.
    const emptyDefault = parse(fileDir("/srv/${env:SUFFIX:-}out"), {});
    expect(dirOf(emptyDefault)).toBe("/srv/out");
    expect(emptyDefault.warnings).toEqual([]);
  });

  it("types a whole-value reference as a number or boolean", () => {
    const text = edit(
      walWith("    max_size_mib: ${env:MIB}"),
      "    directory: ./out",
      "    directory: ./out\n    retry_on_failure:\n      enabled: ${env:RETRY}\n      multiplier: ${env:MULT:-2.5}",
    );
    const c = parse(text, { MIB: "12", RETRY: "false" });
    expect(c.wal.max_size_mib).toBe(12);
    expect(c.exporters[0]?.config).toMatchObject({
      retry_on_failure: { enabled: false, multiplier: 2.5 },
    });
  });

  it("reports a whole-value reference of the wrong type against the setting", () => {
    expect(oneProblem(walWith("    max_size_mib: ${env:MIB}"), { MIB: "lots" })).toBe(
      'x.yaml:16:19: extensions.wal.max_size_mib: expected number, got "lots"',
    );
  });

  it("gives a string setting the variable's text even when it reads as a number", () => {
    const c = parse(walWith("    chain_id: ${env:CHAIN_ID}"), { CHAIN_ID: "2024" });
    expect(c.wal.chain_id).toBe("2024");
    const text = withFilter("    conditions:\n      - event_name: ${env:EVENT}");
    expect(parse(text, { EVENT: "404" }).auditFilter.config.conditions).toEqual([
      { event_name: "404" },
    ]);
  });

  it("keeps a whole-value string exactly as set (no YAML comments or quotes)", () => {
    expect(dirOf(parse(fileDir("${env:DIR}"), { DIR: "/srv/audit #2" }))).toBe("/srv/audit #2");
    expect(dirOf(parse(fileDir("${env:DIR}"), { DIR: "'quoted'" }))).toBe("'quoted'");
  });

  it("reads $$ as a literal $", () => {
    expect(dirOf(parse(fileDir("/srv/$${env:NOT_EXPANDED}/a$$b"), { NOT_EXPANDED: "x" }))).toBe(
      "/srv/${env:NOT_EXPANDED}/a$b",
    );
    expect(dirOf(parse(fileDir("/srv/pa$word")))).toBe("/srv/pa$word");
  });

  it("warns about an unset variable without a default and uses an empty value", () => {
    const c = parse(fileDir("/srv/${env:NOPE}out"), {});
    expect(dirOf(c)).toBe("/srv/out");
    expect(c.warnings).toEqual([
      "exporters.file.directory: environment variable NOPE is not set; using an empty value",
    ]);
  });

  it("rejects the unsupported ${FOO} form and says what to write", () => {
    expect(oneProblem(fileDir("${FOO}"), { FOO: "x" })).toBe(
      'x.yaml:8:16: exporters.file.directory: unsupported reference "${FOO}": write ${env:NAME} or ${env:NAME:-default} (and $$ for a literal $)',
    );
    expect(oneProblem(fileDir("/a/${file:/etc/x}"))).toContain(
      'unsupported reference "${file:/etc/x}"',
    );
  });

  it("expands references in block lists and quoted flow lists", () => {
    const block = withFilter(
      "    conditions:\n      - record_attribute: tenant\n        equals:\n          - ${env:T1}\n          - fixed",
    );
    const flow = withFilter(
      '    conditions:\n      - record_attribute: tenant\n        equals: ["${env:T1}", fixed]',
    );
    for (const text of [block, flow])
      expect(parse(text, { T1: "acme" }).auditFilter.config.conditions).toEqual([
        { record_attribute: "tenant", equals: ["acme", "fixed"] },
      ]);
  });

  it("reports an unquoted reference in a flow list as a YAML error ({ is flow syntax)", () => {
    const text = withFilter(
      "    conditions:\n      - record_attribute: tenant\n        equals: [${env:T1}, fixed]",
    );
    expect(oneProblem(text, { T1: "acme" })).toMatch(/^x\.yaml:19:\d+: not valid YAML: /);
  });
});

describe("parseConfig: defaults", () => {
  it("accepts the minimal config and fills every default", () => {
    const minimal = edit(BASE, "    directory: ./out\n", "");
    const c = parse(minimal);
    expect(c.file).toBe("x.yaml");
    expect(c.warnings).toEqual([]);
    expect(c.logLevel).toBe("info");
    expect(c.receivers.map((r) => r.id)).toEqual(["otlp"]);
    expect(c.receivers[0]?.config).toEqual({
      protocols: {
        grpc: { endpoint: "127.0.0.1:4317", max_recv_msg_size_mib: 4 },
        http: {
          endpoint: "127.0.0.1:4318",
          max_request_body_size: 4 * 1024 * 1024,
          logs_url_path: "/v1/logs",
        },
      },
      retry_after_seconds: 1,
    });
    expect(c.exporters.map((e) => e.id)).toEqual(["file"]);
    expect(c.exporters[0]?.config).toEqual({
      directory: "./data/out",
      group_readable: false,
      rotation: { max_megabytes: 64 },
      retry_on_failure: {
        enabled: true,
        initial_interval: 1000,
        max_interval: 30_000,
        max_elapsed_time: 0,
        multiplier: 1.5,
        randomization_factor: 0.5,
      },
    });
    expect(c.wal).toEqual({
      directory: join(process.cwd(), "data", "wal"),
      max_size_mib: 256,
      max_record_size_kib: 1024,
      memory_mib: 40,
    });
    expect(c.auditFilter.id).toBe("audit_filter");
    expect(c.auditFilter.config).toEqual({ match: "any", conditions: DEFAULT_CONDITIONS });
  });

  it("enables only the protocols present", () => {
    const c = parse(edit(BASE, "      http:\n", ""));
    const otlp = c.receivers[0]?.config as { protocols: Record<string, unknown> };
    expect(otlp.protocols.grpc).toBeDefined();
    expect(otlp.protocols.http).toBeUndefined();
  });

  it("resolves a relative WAL directory against the working directory", () => {
    const c = parse(`${BASE}\nextensions:\n  wal:\n    directory: var/wal\n`);
    expect(c.wal.directory).toBe(resolve("var/wal"));
  });

  it("gives a filter without conditions the default conditions, with its own match", () => {
    const c = parse(withFilter("    match: all"));
    expect(c.auditFilter.config).toEqual({ match: "all", conditions: DEFAULT_CONDITIONS });
  });

  it("warns about components that are configured but not used", () => {
    const c = parse(`${BASE}\nprocessors:\n  audit_filter:\n    match: all\n`);
    expect(c.warnings).toEqual([
      "processors.audit_filter is configured but not used in service.pipelines.logs",
    ]);
    // An unused filter does not apply: the pipeline keeps the default rule.
    expect(c.auditFilter.config.conditions).toEqual(DEFAULT_CONDITIONS);
  });
});

describe("loadConfigFile", () => {
  it("reports a missing file clearly", () => {
    const file = join(tmpdir(), "no-such-dir-audit-agent", "missing.yaml");
    try {
      loadConfigFile(file, {});
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const e = err as ConfigError;
      expect(e.problems).toHaveLength(1);
      expect(e.problems[0]).toMatch(/^cannot read the file: ENOENT: no such file or directory/);
      expect(e.message).toContain(file);
    }
  });

  it("loads config/default.yaml with no warnings", () => {
    const c = loadConfigFile(join(ROOT, "config/default.yaml"), {});
    expect(c.warnings).toEqual([]);
    expect(c.receivers.map((r) => r.id)).toEqual(["otlp"]);
    expect(c.auditFilter.id).toBe("audit_filter");
    expect(c.auditFilter.config).toEqual({ match: "any", conditions: DEFAULT_CONDITIONS });
    expect(c.exporters.map((e) => e.id)).toEqual(["file"]);
    expect(c.wal.directory).toBe(resolve("data/wal"));
    expect(c.receivers[0]?.config).toMatchObject({
      protocols: { grpc: { endpoint: "127.0.0.1:4317" }, http: { endpoint: "127.0.0.1:4318" } },
    });
  });

  it("lets the environment override the default endpoints", () => {
    const c = loadConfigFile(join(ROOT, "config/default.yaml"), {
      AUDIT_AGENT_GRPC_ENDPOINT: "0.0.0.0:5317",
    });
    expect(c.receivers[0]?.config).toMatchObject({
      protocols: { grpc: { endpoint: "0.0.0.0:5317" }, http: { endpoint: "127.0.0.1:4318" } },
    });
  });
});

describe("the audit-agent CLI", () => {
  const cli = join(ROOT, "dist/agent/cli/main.js");
  let dir: string;

  beforeAll(() => {
    execFileSync(
      process.execPath,
      [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"],
      {
        cwd: ROOT,
        stdio: "pipe",
      },
    );
    dir = mkdtempSync(join(tmpdir(), "audit-agent-config-test-"));
  }, 120_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const run = (...args: string[]) =>
    spawnSync(process.execPath, [cli, ...args], {
      cwd: ROOT,
      encoding: "utf8",
      env: { PATH: process.env.PATH },
    });

  it("validate exits 2 and prints every problem for a bad config", () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(
      bad,
      `${edit(BASE, "    directory: ./out", "    directroy: ./out")}\nextensions:\n  wal:\n    max_size_mib: big\n`,
    );
    const r = run("validate", "--config", bad);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`invalid configuration in ${bad}:`);
    expect(r.stderr).toContain(`  - ${bad}:8:5: exporters.file.directroy: unknown key "directroy"`);
    expect(r.stderr).toContain(
      `  - ${bad}:16:19: extensions.wal.max_size_mib: expected number, got "big"`,
    );
  });

  it("validate exits 2 for a missing file", () => {
    const r = run("validate", "--config", join(dir, "missing.yaml"));
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("cannot read the file: ENOENT");
  });

  it("validate exits 0 for config/default.yaml and summarizes the pipeline", () => {
    const r = run("validate", "--config", "config/default.yaml");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(
      `config/default.yaml: valid (logs pipeline: otlp -> audit_filter -> file; WAL ${join(ROOT, "data/wal")})\n`,
    );
  });

  it("validate prints warnings on stderr and still exits 0", () => {
    const file = join(dir, "warn.yaml");
    writeFileSync(file, edit(BASE, "./out", "./out/${env:AUDIT_TEST_UNSET_VAR}"));
    const r = run("validate", "--config", file);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe(
      "warning: exporters.file.directory: environment variable AUDIT_TEST_UNSET_VAR is not set; using an empty value\n",
    );
  });

  it("--version prints the package.json version", () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      version: string;
    };
    const r = run("--version");
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it("--help lists run and validate", () => {
    const r = run("--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: audit-agent /);
    expect(r.stdout).toMatch(/^\s+run \[options\]\s+run the agent$/m);
    expect(r.stdout).toMatch(/^\s+validate \[options\]\s+check a config file and exit/m);
  });

  it("validate without --config is a usage error", () => {
    const r = run("validate");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("required option '-c, --config <file>' not specified");
  });
});

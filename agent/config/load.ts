import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import YAML, { LineCounter } from "yaml";
import { z } from "zod";
import { type WalConfig, walConfigSchema } from "../store/config.js";
import { type SigningConfig, signingConfigSchema } from "../sealing/config.js";
import type { VerificationConfig } from "../verify/config.js";
import type { HealthCheckConfig } from "../telemetry/health-config.js";
import { endpointSchema } from "../common/config-schema.js";
import { AgentError } from "../common/errors.js";
import {
  type AuditFilterConfig,
  auditFilterConfigSchema,
} from "../processing/audit-filter/config.js";
import type { AnyFactory } from "./registry.js";
import type { ExporterFactory } from "../exporters/api.js";
import type { ProcessorFactory } from "../processing/api.js";
import type { ReceiverFactory } from "../receivers/api.js";
import { factories as registeredFactories } from "./registry.js";
import type { LogLevel } from "../telemetry/logger.js";
import { type ExpandIssue, expandEnv, type TypedReference } from "./expand.js";

/**
 * Loads and validates an agent config in the Collector's shape. All problems are
 * collected and reported together, each as `file:line:col: key.path: what is wrong`.
 */

export class ConfigError extends AgentError {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(
      "CONFIG_INVALID",
      `invalid configuration in ${file}:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
  }
}

export interface ComponentConfig<F extends AnyFactory = AnyFactory> {
  id: string;
  factory: F;
  config: unknown;
}

export interface AgentConfig {
  file: string;
  receivers: ComponentConfig<ReceiverFactory>[];
  /** The pipeline's audit filter; the default rule when the pipeline names none. */
  auditFilter: { id: string; factory: ProcessorFactory; config: AuditFilterConfig };
  exporters: ComponentConfig<ExporterFactory>[];
  wal: WalConfig;
  signing: SigningConfig;
  /** Periodic self-verification, when extensions.verification is configured. */
  verification: VerificationConfig | null;
  logLevel: LogLevel;
  /** Prometheus endpoint for the agent's own metrics; null when service.telemetry.metrics.level is none. */
  metricsAddress: string | null;
  /** The health_check extension, when defined and listed in service.extensions (as in the Collector). */
  healthCheck: HealthCheckConfig | null;
  /** Non-fatal findings (unset env vars, unused components). */
  warnings: string[];
}

const KINDS = {
  receivers: "receiver",
  processors: "processor",
  exporters: "exporter",
  extensions: "extension",
} as const;
type Section = keyof typeof KINDS;

const ID = /^([a-z][a-z0-9_]*)(?:\/([^/\s]+))?$/;

const pipelineSchema = z
  .object({
    receivers: z.array(z.string()).min(1, "a pipeline needs at least one receiver"),
    processors: z.array(z.string()).default([]),
    exporters: z.array(z.string()).min(1, "a pipeline needs at least one exporter"),
  })
  .strict();

const componentMap = z.record(z.string(), z.unknown()).nullish();

const topSchema = z
  .object({
    receivers: componentMap,
    processors: componentMap,
    exporters: componentMap,
    extensions: componentMap,
    service: z
      .object({
        extensions: z.array(z.string()).default([]),
        pipelines: z.record(z.string(), z.unknown()),
        telemetry: z
          .object({
            metrics: z
              .object({
                address: endpointSchema.default("127.0.0.1:8888"),
                level: z.enum(["none", "basic", "normal", "detailed"]).default("normal"),
              })
              .strict()
              .default({ address: "127.0.0.1:8888", level: "normal" }),
            logs: z
              .object({ level: z.enum(["debug", "info", "warn", "error"]).default("info") })
              .strict()
              .default({ level: "info" }),
          })
          .strict()
          .default({
            logs: { level: "info" },
            metrics: { address: "127.0.0.1:8888", level: "normal" },
          }),
      })
      .strict(),
  })
  .strict();

type Path = (string | number)[];

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** Zod's type names in the words of YAML. */
const YAML_TYPE: Record<string, string> = { object: "mapping", record: "mapping", array: "list" };

function issueMessage(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type": {
      const expected = YAML_TYPE[issue.expected] ?? issue.expected;
      if (issue.input === undefined) return `required: expected ${expected}`;
      return `expected ${expected}, got ${describe(issue.input)}`;
    }
    default:
      return issue.message;
  }
}

export function loadConfigFile(
  file: string,
  env: Record<string, string | undefined> = process.env,
): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as Error).message}`]);
  }
  return parseConfig(text, file, env);
}

export function parseConfig(
  text: string,
  file: string,
  env: Record<string, string | undefined> = process.env,
  factories: readonly AnyFactory[] = registeredFactories,
): AgentConfig {
  const lineCounter = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        if (e.code === "DUPLICATE_KEY") {
          // The parser may point at the end of the entry before: move on to the key and name it.
          let at = e.pos[0];
          while (at < text.length && /[\s#]/.test(text[at] as string))
            at = text[at] === "#" ? text.indexOf("\n", at) >>> 0 : at + 1;
          const key = /^[^:\n]*/.exec(text.slice(at))?.[0].trim();
          const pos = lineCounter.linePos(at);
          return `${file}:${pos.line}:${pos.col}: duplicate key "${key}": a key may appear once in a mapping, so merge the two entries`;
        }
        const pos = e.linePos?.[0];
        return `${file}${pos ? `:${pos.line}:${pos.col}` : ""}: not valid YAML: ${e.message.split("\n")[0]}`;
      }),
    );
  }
  const problems: string[] = [];
  const warnings: string[] = [];
  const where = (path: Path): string => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as
        { range?: [number, number, number] } | undefined;
      if (node?.range) {
        const pos = lineCounter.linePos(node.range[0]);
        return `${file}:${pos.line}:${pos.col}`;
      }
    }
    return file;
  };
  /** Where a mapping key itself is written (for unknown keys), else where its mapping is. */
  const whereKey = (parent: Path, key: string): string => {
    const node = parent.length ? doc.getIn(parent, true) : doc.contents;
    if (YAML.isMap(node)) {
      for (const pair of node.items) {
        if (YAML.isScalar(pair.key) && pair.key.value === key && pair.key.range) {
          const pos = lineCounter.linePos(pair.key.range[0]);
          return `${file}:${pos.line}:${pos.col}`;
        }
      }
    }
    return where(parent);
  };
  const dotted = (path: Path) =>
    path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
  const problem = (path: Path, message: string) =>
    problems.push(`${where(path)}: ${path.length ? `${dotted(path)}: ` : ""}${message}`);

  const raw: unknown = doc.toJS() ?? {};
  const expandIssues: ExpandIssue[] = [];
  const typedRefs: TypedReference[] = [];
  const expanded = expandEnv(raw, env, expandIssues, [], typedRefs);
  for (const i of expandIssues) {
    if (i.fatal) problem(i.path, i.message);
    else warnings.push(`${dotted(i.path)}: ${i.message}`);
  }

  // A whole ${env:…} value is typed as YAML (port: ${env:PORT} is a number), but where a
  // setting takes a string it gets the variable's text, as in the Collector.
  const asText = (value: unknown, base: Path, issues: z.core.$ZodIssue[]): unknown => {
    let patched: unknown;
    for (const issue of issues) {
      const path = issue.path as Path;
      const wantsText =
        issue.code === "invalid_union" ||
        (issue.code === "invalid_type" && issue.expected === "string");
      const at = JSON.stringify([...base, ...path]);
      const ref = typedRefs.find((t) => JSON.stringify(t.path) === at);
      if (!wantsText || !ref || path.length === 0) continue;
      patched ??= structuredClone(value);
      let node = patched as Record<string | number, unknown>;
      for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
      node[path[path.length - 1] as string | number] = ref.text;
    }
    return patched;
  };

  const validate = <S extends z.ZodType>(
    schema: S,
    value: unknown,
    base: Path,
  ): z.output<S> | undefined => {
    let r = schema.safeParse(value, { reportInput: true });
    if (!r.success) {
      const retyped = asText(value, base, r.error.issues);
      if (retyped !== undefined) r = schema.safeParse(retyped, { reportInput: true });
    }
    if (r.success) return r.data;
    for (const issue of r.error.issues) {
      const path = [...base, ...(issue.path as Path)];
      if (issue.code === "unrecognized_keys") {
        // One problem per key, located at the key and named by its full path.
        for (const key of issue.keys)
          problems.push(
            `${whereKey(path, key)}: ${dotted([...path, key])}: unknown key "${key}": check the spelling against docs/configuration.md`,
          );
      } else problem(path, issueMessage(issue));
    }
    return undefined;
  };

  if (typeof expanded !== "object" || Array.isArray(expanded)) {
    throw new ConfigError(file, [
      `${file}: the config must be a YAML mapping with receivers, exporters and service`,
    ]);
  }
  const top = validate(topSchema, expanded, []);
  if (!top) throw new ConfigError(file, problems);

  // Resolve and validate every defined component.
  const defined: Record<Section, Map<string, ComponentConfig>> = {
    receivers: new Map(),
    processors: new Map(),
    exporters: new Map(),
    extensions: new Map(),
  };
  for (const section of Object.keys(KINDS) as Section[]) {
    const kind = KINDS[section];
    for (const [id, value] of Object.entries(top[section] ?? {})) {
      const m = ID.exec(id);
      if (!m) {
        problem(
          [section, id],
          `"${id}" is not a component id: use type or type/name, for example file or file/archive`,
        );
        continue;
      }
      const factory = factories.find((f) => f.kind === kind && f.type === m[1]);
      if (!factory) {
        const known = factories.filter((f) => f.kind === kind).map((f) => f.type);
        problem([section, id], `unknown ${kind} type "${m[1]}" (available: ${known.join(", ")})`);
        continue;
      }
      const config = validate(factory.configSchema, value ?? {}, [section, id]);
      if (config !== undefined) defined[section].set(id, { id, factory, config });
    }
  }

  // The pipeline: this agent keeps one chain, fed by one logs pipeline.
  let pipeline: z.output<typeof pipelineSchema> | undefined;
  for (const name of Object.keys(top.service.pipelines)) {
    if (name !== "logs") {
      problem(
        ["service", "pipelines", name],
        name.startsWith("logs/")
          ? `only one logs pipeline is supported (one chain per agent): name it "logs"`
          : `the audit agent handles logs only: remove the "${name}" pipeline (send traces and metrics to a Collector)`,
      );
    }
  }
  if (top.service.pipelines.logs === undefined) {
    problem(
      ["service", "pipelines"],
      "a logs pipeline is required: service.pipelines.logs with receivers and exporters",
    );
  } else {
    pipeline = validate(pipelineSchema, top.service.pipelines.logs, [
      "service",
      "pipelines",
      "logs",
    ]);
  }

  const refs = (section: Section, ids: string[], base: Path): ComponentConfig[] => {
    const seen = new Set<string>();
    const out: ComponentConfig[] = [];
    ids.forEach((id, i) => {
      if (seen.has(id)) problem([...base, i], `"${id}" is listed twice`);
      seen.add(id);
      const c = defined[section].get(id);
      if (c) out.push(c);
      else if (!(top[section] && id in (top[section] as object))) {
        problem(
          [...base, i],
          `references ${KINDS[section]} "${id}", which is not defined under ${section}`,
        );
      }
    });
    return out;
  };

  const p: Path = ["service", "pipelines", "logs"];
  const receivers = pipeline ? refs("receivers", pipeline.receivers, [...p, "receivers"]) : [];
  const processors = pipeline ? refs("processors", pipeline.processors, [...p, "processors"]) : [];
  const exporters = pipeline ? refs("exporters", pipeline.exporters, [...p, "exporters"]) : [];
  refs("extensions", top.service.extensions, ["service", "extensions"]);

  const filters = processors.filter((c) => c.factory.type === "audit_filter");
  if (filters.length > 1)
    problem(
      [...p, "processors"],
      "a pipeline takes one audit_filter: merge the conditions into one",
    );

  const wals = [...defined.extensions.values()].filter((c) => c.factory.type === "wal");
  if (wals.length > 1)
    problem(["extensions"], "configure one wal extension: the agent keeps one write-ahead log");
  if (
    pipeline &&
    exporters.length > 0 &&
    !exporters.some((e) => (e.factory as ExporterFactory).storesAuditRecords?.(e.config) ?? true)
  ) {
    problem(
      [...p, "exporters"],
      "no exporter stores audit records: add file, loki, s3 or elasticsearch (or set audit: true on an otlp exporter)",
    );
  }
  const verifications = [...defined.extensions.values()].filter(
    (c) => c.factory.type === "verification",
  );
  for (const v of verifications) {
    for (const [i, id] of ((v.config as VerificationConfig).exporters ?? []).entries()) {
      const exporter = exporters.find((e) => e.id === id);
      if (!exporter)
        problem(
          ["extensions", v.id, "exporters", i],
          `"${id}" is not an exporter of the logs pipeline`,
        );
      else if (!(exporter.factory as ExporterFactory).reader)
        problem(
          ["extensions", v.id, "exporters", i],
          `exporter "${id}" cannot be read back for verification`,
        );
    }
  }
  const signers = [...defined.extensions.values()].filter((c) => c.factory.type === "signing");
  if (signers.length > 1)
    problem(["extensions"], "configure one signing extension: one key signs the agent's chain");

  if (problems.length > 0) throw new ConfigError(file, problems);

  for (const section of Object.keys(KINDS) as Section[]) {
    if (section === "extensions") continue;
    const used = new Set([...receivers, ...processors, ...exporters].map((c) => c.id));
    for (const id of defined[section].keys()) {
      if (!used.has(id))
        warnings.push(`${section}.${id} is configured but not used in service.pipelines.logs`);
    }
  }

  const filter = filters[0];
  const auditFilterFactory = registeredFactories.find(
    (f) => f.kind === "processor" && f.type === "audit_filter",
  ) as ProcessorFactory;
  const wal = (wals[0]?.config as WalConfig | undefined) ?? walConfigSchema.parse({});
  const signing =
    (signers[0]?.config as SigningConfig | undefined) ?? signingConfigSchema.parse({});
  return {
    file,
    receivers: receivers as ComponentConfig<ReceiverFactory>[],
    auditFilter: filter
      ? {
          id: filter.id,
          factory: filter.factory as ProcessorFactory,
          config: filter.config as AuditFilterConfig,
        }
      : {
          id: "audit_filter",
          factory: auditFilterFactory,
          config: auditFilterConfigSchema.parse({}),
        },
    exporters: exporters as ComponentConfig<ExporterFactory>[],
    wal: { ...wal, directory: resolve(wal.directory) },
    verification: (verifications[0]?.config as VerificationConfig | undefined) ?? null,
    signing: {
      ...signing,
      key_file: resolve(signing.key_file),
      previous_key_file: signing.previous_key_file && resolve(signing.previous_key_file),
    },
    logLevel: top.service.telemetry.logs.level,
    metricsAddress:
      top.service.telemetry.metrics.level === "none" ? null : top.service.telemetry.metrics.address,
    healthCheck: (() => {
      const h = [...defined.extensions.values()].find(
        (c) => c.factory.type === "health_check" && top.service.extensions.includes(c.id),
      );
      return (h?.config as HealthCheckConfig | undefined) ?? null;
    })(),
    warnings,
  };
}

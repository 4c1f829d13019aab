import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import YAML, { LineCounter } from "yaml";
import { z } from "zod";
import { type WalConfig, walConfigSchema } from "../buffer/config.js";
import { AgentError } from "../common/errors.js";
import {
  type AuditFilterConfig,
  auditFilterConfigSchema,
} from "../processing/audit-filter/config.js";
import type {
  AnyFactory,
  ExporterFactory,
  ProcessorFactory,
  ReceiverFactory,
} from "../service/factory.js";
import { factories as registeredFactories } from "../service/registry.js";
import type { LogLevel } from "../telemetry/logger.js";
import { type ExpandIssue, expandEnv } from "./expand.js";

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
  logLevel: LogLevel;
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
            logs: z
              .object({ level: z.enum(["debug", "info", "warn", "error"]).default("info") })
              .strict()
              .default({ level: "info" }),
          })
          .strict()
          .default({ logs: { level: "info" } }),
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

function issueMessage(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "unrecognized_keys":
      return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}: check the spelling against docs/configuration.md`;
    case "invalid_type":
      if (issue.input === undefined) return `required: expected ${issue.expected}`;
      return `expected ${issue.expected}, got ${describe(issue.input)}`;
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
        | { range?: [number, number, number] }
        | undefined;
      if (node?.range) {
        const pos = lineCounter.linePos(node.range[0]);
        return `${file}:${pos.line}:${pos.col}`;
      }
    }
    return file;
  };
  const dotted = (path: Path) =>
    path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
  const problem = (path: Path, message: string) =>
    problems.push(`${where(path)}: ${path.length ? `${dotted(path)}: ` : ""}${message}`);

  const raw: unknown = doc.toJS() ?? {};
  const expandIssues: ExpandIssue[] = [];
  const expanded = expandEnv(raw, env, expandIssues);
  for (const i of expandIssues) {
    if (i.fatal) problem(i.path, i.message);
    else warnings.push(`${dotted(i.path)}: ${i.message}`);
  }

  const validate = <S extends z.ZodType>(
    schema: S,
    value: unknown,
    base: Path,
  ): z.output<S> | undefined => {
    const r = schema.safeParse(value, { reportInput: true });
    if (r.success) return r.data;
    for (const issue of r.error.issues)
      problem([...base, ...(issue.path as Path)], issueMessage(issue));
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
    logLevel: top.service.telemetry.logs.level,
    warnings,
  };
}

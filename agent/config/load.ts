import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { withMessage, z } from "../common/zod.js";
import { type WalConfig, walConfigSchema, walExtensionFactory } from "../store/config.js";
import {
  type SigningConfig,
  signingConfigSchema,
  signingExtensionFactory,
} from "../sealing/config.js";
import { type VerificationConfig, verificationExtensionFactory } from "../verify/config.js";
import { type HealthCheckConfig, healthCheckExtensionFactory } from "../telemetry/health-config.js";
import { configFor } from "../common/component.js";
import { auditFilterFactory as auditFilter } from "../processing/audit-filter/factory.js";
import type { SourceConfig } from "../processing/source/config.js";
import { sourceProcessorFactory } from "../processing/source/factory.js";
import { endpointSchema } from "../common/config-schema.js";
import { AgentError } from "../common/errors.js";
import {
  type AuditFilterConfig,
  auditFilterConfigSchema,
} from "../processing/audit-filter/config.js";
import type { AnyFactory } from "./registry.js";
import type { ExporterFactory } from "../exporters/api.js";
import type { ClassifierFactory, ProcessorFactory } from "../processing/api.js";
import type { ReceiverFactory } from "../receivers/api.js";
import { durableExporterTypes, oneOf, factories as registeredFactories } from "./registry.js";
import type { LogEncoding, LogLevel } from "../telemetry/logger.js";
import { COLLECTOR_DEFAULT_NAMING, type PrometheusNaming } from "../telemetry/prometheus.js";
import { expandVariables, parseYamlDocument } from "./yaml-source.js";
import { ConfigProblems, type Path } from "./parse-problems.js";
import { schemaValidator, type Validate } from "./parse-validate.js";

/**
 * Loads and validates an agent config in the Collector's shape. All problems are
 * collected and reported together, each as `file:line:col: key.path: what is wrong`
 * (parse-problems.ts). parseConfig runs the steps below it in turn.
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
  auditFilter: { id: string; factory: ClassifierFactory; config: AuditFilterConfig };
  /** The pipeline's source processor, when it lists one: what the envelopes' `source` holds. */
  source: SourceConfig | null;
  exporters: ComponentConfig<ExporterFactory>[];
  wal: WalConfig;
  signing: SigningConfig;
  /** Periodic self-verification, when extensions.verification is configured. */
  verification: VerificationConfig | null;
  logLevel: LogLevel;
  /** service.telemetry.logs.encoding; undefined: decided by whether stderr is a terminal. */
  logEncoding?: LogEncoding;
  /** Prometheus endpoint for the agent's own metrics; null when service.telemetry.metrics.level is none. */
  metricsAddress: string | null;
  /** How the Collector-named metrics are named there (the Prometheus reader's switches). */
  metricsNaming: PrometheusNaming;
  /** The health_check extension, when defined and listed in service.extensions (as in the Collector). */
  healthCheck: HealthCheckConfig | null;
  /** Non-fatal findings (unset env vars, unused components). */
  warnings: string[];
  /** The ids of the extensions above as the config spells them (for messages about them). */
  extensionIds: { wal: string; signing: string; verification: string | null };
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

const METRICS_ADDRESS = "127.0.0.1:8888";

/**
 * The Collector's Prometheus pull reader, `readers: [{ pull: { exporter: { prometheus: … } } }]`
 * under `service.telemetry.metrics`. Its naming switches default to true, as in the
 * Collector since v0.152 (from v0.119 to v0.151 a configured reader defaulted them to false).
 */
const prometheusReaderSchema = z
  .object({
    host: z.string().min(1).default("127.0.0.1"),
    port: z.number().int().min(0).max(65535).default(8888),
    without_type_suffix: z.boolean().default(true),
    without_units: z.boolean().default(true),
    without_scope_info: z
      .literal(
        true,
        withMessage(
          "the agent exports no scope information (otel_scope_* labels): leave without_scope_info out or set it to true",
        ),
      )
      .default(true),
  })
  .strict();

const metricsTelemetrySchema = z
  .object({
    /** The Collector's older spelling of the endpoint; the naming of its default endpoint. */
    address: endpointSchema.optional(),
    level: z.enum(["none", "basic", "normal", "detailed"]).default("normal"),
    readers: z
      .array(
        z
          .object({
            pull: z
              .object({ exporter: z.object({ prometheus: prometheusReaderSchema }).strict() })
              .strict(),
          })
          .strict(),
      )
      .length(1, "the agent serves one Prometheus endpoint: give exactly one pull reader")
      .optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.address !== undefined && m.readers !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["readers"],
        message:
          "give either address or readers, not both (readers[0].pull.exporter.prometheus has host and port)",
      });
    const reader = m.readers?.[0]?.pull.exporter.prometheus;
    if (reader && !endpointSchema.safeParse(hostPort(reader.host, reader.port)).success)
      ctx.addIssue({
        code: "custom",
        path: ["readers", 0, "pull", "exporter", "prometheus", "host"],
        message: `host "${reader.host}" must be a host name or IP address, for example 127.0.0.1`,
      });
  })
  .default({ level: "normal" });

function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Where the metrics are served and how the Collector's are named. */
function metricsEndpoint(
  m: z.output<typeof metricsTelemetrySchema>,
): Pick<AgentConfig, "metricsAddress" | "metricsNaming"> {
  const reader = m.readers?.[0]?.pull.exporter.prometheus;
  const address = reader ? hostPort(reader.host, reader.port) : (m.address ?? METRICS_ADDRESS);
  return {
    metricsAddress: m.level === "none" ? null : address,
    metricsNaming: reader
      ? { withoutTypeSuffix: reader.without_type_suffix, withoutUnits: reader.without_units }
      : COLLECTOR_DEFAULT_NAMING,
  };
}

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
            metrics: metricsTelemetrySchema,
            logs: z
              .object({
                level: z.enum(["debug", "info", "warn", "error"]).default("info"),
                /** The Collector's setting; unset: console on a terminal, json otherwise. */
                encoding: z
                  .enum(["json", "console"], {
                    message:
                      'encoding must be "json" (one JSON object a line) or "console" (readable text); leave it out for console on a terminal and json otherwise',
                  })
                  .optional(),
              })
              .strict()
              .default({ level: "info" }),
          })
          .strict()
          .default({ logs: { level: "info" }, metrics: { level: "normal" } }),
      })
      .strict(),
  })
  .strict();

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
  const { doc, lineCounter, problems } = parseYamlDocument(text, file);
  if (problems.length > 0) throw new ConfigError(file, problems);
  const report = new ConfigProblems(file, doc, lineCounter);
  const { expanded, typedRefs } = expandVariables(doc, env, report);
  const validate = schemaValidator(report, typedRefs);
  if (typeof expanded !== "object" || Array.isArray(expanded)) {
    throw new ConfigError(file, [
      `${file}: the config must be a YAML mapping with receivers, exporters and service`,
    ]);
  }
  const top = validate(topSchema, expanded, []);
  if (!top) throw new ConfigError(file, report.problems);

  const defined = resolveComponents(top, factories, validate, report);
  const pipeline = logsPipeline(top, validate, report);
  const used = pipelineComponents(top, defined, pipeline, report);
  const singles = checkComponents(defined, pipeline, used, report);
  if (report.problems.length > 0) throw new ConfigError(file, report.problems);

  warnUnused(defined, used, report.warnings);
  for (const p of used.processors) {
    const warning = (p.factory as ProcessorFactory).noOpWarning?.(p.id, p.config);
    if (warning) report.warnings.push(warning);
  }
  return assembleConfig(file, top, defined, used, singles, report.warnings);
}

type TopConfig = z.output<typeof topSchema>;
type PipelineConfig = z.output<typeof pipelineSchema>;
/** The components defined in each section that are valid, by id. */
type Defined = Record<Section, Map<string, ComponentConfig>>;

/** The components the logs pipeline lists, in its order. */
interface PipelineComponents {
  receivers: ComponentConfig[];
  processors: ComponentConfig[];
  exporters: ComponentConfig[];
}

/** The components of which the agent takes one (the first): none when not configured. */
interface SingleComponents {
  filters: ComponentConfig[];
  sources: ComponentConfig[];
  wals: ComponentConfig[];
  verifications: ComponentConfig[];
  signers: ComponentConfig[];
}

const LOGS_PIPELINE: Path = ["service", "pipelines", "logs"];

/** Resolves and validates every defined component: by its type's factory, against its schema. */
function resolveComponents(
  top: TopConfig,
  factories: readonly AnyFactory[],
  validate: Validate,
  report: ConfigProblems,
): Defined {
  const defined: Defined = {
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
        report.add(
          [section, id],
          `"${id}" is not a component id: use type or type/name, for example file or file/archive`,
        );
        continue;
      }
      const factory = factories.find((f) => f.kind === kind && f.type === m[1]);
      if (!factory) {
        const known = factories.filter((f) => f.kind === kind).map((f) => f.type);
        report.add(
          [section, id],
          `unknown ${kind} type "${m[1]}" (available: ${known.join(", ")})`,
        );
        continue;
      }
      const config = validate(factory.configSchema, value ?? {}, [section, id]);
      if (config !== undefined) defined[section].set(id, { id, factory, config });
    }
  }
  return defined;
}

/** The pipeline: this agent keeps one chain, fed by one logs pipeline. */
function logsPipeline(
  top: TopConfig,
  validate: Validate,
  report: ConfigProblems,
): PipelineConfig | undefined {
  for (const name of Object.keys(top.service.pipelines)) {
    if (name !== "logs") {
      report.add(
        ["service", "pipelines", name],
        name.startsWith("logs/")
          ? `only one logs pipeline is supported (one chain per agent): name it "logs"`
          : `the audit agent handles logs only: remove the "${name}" pipeline (send traces and metrics to a Collector)`,
      );
    }
  }
  if (top.service.pipelines.logs === undefined) {
    report.add(
      ["service", "pipelines"],
      "a logs pipeline is required: service.pipelines.logs with receivers and exporters",
    );
    return undefined;
  }
  return validate(pipelineSchema, top.service.pipelines.logs, LOGS_PIPELINE);
}

/**
 * The components the pipeline lists, each defined under its section; and the extensions
 * service.extensions lists. A component defined but invalid was reported already.
 */
function pipelineComponents(
  top: TopConfig,
  defined: Defined,
  pipeline: PipelineConfig | undefined,
  report: ConfigProblems,
): PipelineComponents {
  const refs = (section: Section, ids: string[], base: Path): ComponentConfig[] => {
    const seen = new Set<string>();
    const out: ComponentConfig[] = [];
    ids.forEach((id, i) => {
      if (seen.has(id)) report.add([...base, i], `"${id}" is listed twice`);
      seen.add(id);
      const c = defined[section].get(id);
      if (c) out.push(c);
      else if (!(top[section] && id in (top[section] as object))) {
        report.add(
          [...base, i],
          `references ${KINDS[section]} "${id}", which is not defined under ${section}`,
        );
      }
    });
    return out;
  };
  const p = LOGS_PIPELINE;
  const receivers = pipeline ? refs("receivers", pipeline.receivers, [...p, "receivers"]) : [];
  const processors = pipeline ? refs("processors", pipeline.processors, [...p, "processors"]) : [];
  const exporters = pipeline ? refs("exporters", pipeline.exporters, [...p, "exporters"]) : [];
  refs("extensions", top.service.extensions, ["service", "extensions"]);
  return { receivers, processors, exporters };
}

/**
 * The rules across components: one audit filter, one WAL, one signing key, an exporter that
 * stores audit records, and verification only of exporters that can be read back.
 */
function checkComponents(
  defined: Defined,
  pipeline: PipelineConfig | undefined,
  { processors, exporters }: PipelineComponents,
  report: ConfigProblems,
): SingleComponents {
  const p = LOGS_PIPELINE;
  const filters = processors.filter((c) => c.factory.type === "audit_filter");
  if (filters.length > 1)
    report.add(
      [...p, "processors"],
      "a pipeline takes one audit_filter: merge the conditions into one",
    );
  const sources = processors.filter((c) => c.factory.type === "source");
  if (sources.length > 1)
    report.add(
      [...p, "processors"],
      "a pipeline takes one source processor: merge their attributes into one",
    );

  const wals = [...defined.extensions.values()].filter((c) => c.factory.type === "wal");
  if (wals.length > 1)
    report.add(["extensions"], "configure one wal extension: the agent keeps one write-ahead log");
  if (
    pipeline &&
    exporters.length > 0 &&
    !exporters.some((e) => (e.factory as ExporterFactory).storesAuditRecords?.(e.config) ?? true)
  ) {
    report.add(
      [...p, "exporters"],
      `no exporter stores audit records: add ${oneOf(durableExporterTypes())} (or set audit: true on an otlp exporter)`,
    );
  }
  const verifications = [...defined.extensions.values()].filter(
    (c) => c.factory.type === "verification",
  );
  for (const v of verifications) {
    for (const [i, id] of (configFor(v, verificationExtensionFactory).exporters ?? []).entries()) {
      const exporter = exporters.find((e) => e.id === id);
      if (!exporter)
        report.add(
          ["extensions", v.id, "exporters", i],
          `"${id}" is not an exporter of the logs pipeline`,
        );
      else if (!(exporter.factory as ExporterFactory).reader)
        report.add(
          ["extensions", v.id, "exporters", i],
          `exporter "${id}" cannot be read back for verification`,
        );
    }
  }
  for (const h of [...defined.extensions.values()].filter((c) => c.factory.type === "health_check"))
    for (const [i, id] of (
      configFor(h, healthCheckExtensionFactory).required_exporters ?? []
    ).entries())
      if (!exporters.some((e) => e.id === id))
        report.add(
          ["extensions", h.id, "required_exporters", i],
          `"${id}" is not an exporter of the logs pipeline (exporters: ${exporters.map((e) => e.id).join(", ")})`,
        );
  const signers = [...defined.extensions.values()].filter((c) => c.factory.type === "signing");
  if (signers.length > 1)
    report.add(["extensions"], "configure one signing extension: one key signs the agent's chain");
  return { filters, sources, wals, verifications, signers };
}

/** Warns of receivers, processors and exporters defined but not in the pipeline. */
function warnUnused(defined: Defined, used: PipelineComponents, warnings: string[]): void {
  const usedIds = new Set(
    [...used.receivers, ...used.processors, ...used.exporters].map((c) => c.id),
  );
  for (const section of Object.keys(KINDS) as Section[]) {
    if (section === "extensions") continue;
    for (const id of defined[section].keys()) {
      if (!usedIds.has(id))
        warnings.push(`${section}.${id} is configured but not used in service.pipelines.logs`);
    }
  }
}

/** The AgentConfig of a valid config: defaults for what it leaves out, paths made absolute. */
function assembleConfig(
  file: string,
  top: TopConfig,
  defined: Defined,
  { receivers, exporters }: PipelineComponents,
  { filters, sources, wals, verifications, signers }: SingleComponents,
  warnings: string[],
): AgentConfig {
  const filter = filters[0];
  const wal: WalConfig = wals[0]
    ? configFor(wals[0], walExtensionFactory)
    : walConfigSchema.parse({});
  const signing = signers[0]
    ? configFor(signers[0], signingExtensionFactory)
    : signingConfigSchema.parse({});
  return {
    file,
    receivers: receivers as ComponentConfig<ReceiverFactory>[],
    auditFilter: filter
      ? { id: filter.id, factory: auditFilter, config: configFor(filter, auditFilter) }
      : { id: "audit_filter", factory: auditFilter, config: auditFilterConfigSchema.parse({}) },
    source: sources[0] ? configFor(sources[0], sourceProcessorFactory) : null,
    exporters: exporters as ComponentConfig<ExporterFactory>[],
    wal: { ...wal, directory: resolve(wal.directory) },
    verification: verifications[0]
      ? configFor(verifications[0], verificationExtensionFactory)
      : null,
    signing: {
      ...signing,
      key_file: resolve(signing.key_file),
      previous_key_file: signing.previous_key_file && resolve(signing.previous_key_file),
    },
    logLevel: top.service.telemetry.logs.level,
    logEncoding: top.service.telemetry.logs.encoding,
    ...metricsEndpoint(top.service.telemetry.metrics),
    healthCheck: (() => {
      const h = [...defined.extensions.values()].find(
        (c) => c.factory.type === "health_check" && top.service.extensions.includes(c.id),
      );
      return h ? configFor(h, healthCheckExtensionFactory) : null;
    })(),
    warnings,
    extensionIds: {
      wal: wals[0]?.id ?? "wal",
      signing: signers[0]?.id ?? "signing",
      verification: verifications[0]?.id ?? null,
    },
  };
}

import type { Schema, z } from "../common/zod.js";
import type {
  ExporterCapabilities,
  ExporterComponent,
  ExporterFactory,
  ExporterSettings,
} from "./api.js";
import type { AuditSource } from "./source.js";

/**
 * What the agent knows of an exporter plugin without loading its code: each plugin folder
 * has a descriptor.ts exporting one of these, and config/exporter-registry.ts lists them, one line
 * each. The registry, config validation, the safety warnings and `verify --source` are
 * all derived from the descriptors; a plugin's sink, reader and client are imported only
 * when an agent or the verifier first uses them.
 */
export interface ExporterDescriptor<S extends Schema = Schema> {
  readonly type: string;
  readonly configSchema: S;
  readonly capabilities: ExporterCapabilities;
  /** Whether a config receives audit records (default: always). */
  storesAuditRecords?(config: z.output<S>): boolean;
  /** `audit-agent verify --source SCHEME:…`, for readable exporters. */
  readonly source?: SourceScheme;
  /** Where a config's records go, and how `verify` reads them back (the start-up summary). */
  describe(config: z.output<S>): ExporterDestination;
  /** The plugin's implementation (see implementExporter). */
  load(): Promise<ExporterFactory<S>>;
}

/** Where an exporter writes, as `audit-agent run` tells it at start (service/startup-summary.ts). */
export interface ExporterDestination {
  /** What a person needs to find the records, e.g. { directory: "/var/lib/audit/out" }; no secrets. */
  readonly destination: Readonly<Record<string, string>>;
  /** The `verify --source` spec that reads back what this config writes (readable exporters). */
  readonly source?: string;
  /** Environment that spec needs to reach the backend (never a credential), e.g. AWS_ENDPOINT_URL_S3. */
  readonly sourceEnv?: Readonly<Record<string, string>>;
}

/** A URL without its user name and password, to be shown. */
export function withoutCredentials(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return url;
  }
}

/** A `verify --source` form, e.g. `loki:URL`. */
export interface SourceScheme {
  /** What comes before the first ':' of the spec. */
  readonly scheme: string;
  /** The form to show in help and errors, e.g. `loki:URL`. */
  readonly usage: string;
  /** A reader for the whole spec (scheme included). */
  open(spec: string): Promise<AuditSource>;
}

/** What a plugin's code adds to its descriptor. */
export interface ExporterImplementation<S extends Schema> {
  create(
    settings: ExporterSettings,
    config: z.output<S>,
  ): ExporterComponent | Promise<ExporterComponent>;
  reader?(config: z.output<S>): AuditSource | Promise<AuditSource>;
}

/** A plugin's factory: its descriptor's metadata with its code. */
export function implementExporter<S extends Schema>(
  descriptor: ExporterDescriptor<S>,
  implementation: ExporterImplementation<S>,
): ExporterFactory<S> {
  return {
    kind: "exporter",
    type: descriptor.type,
    configSchema: descriptor.configSchema,
    capabilities: descriptor.capabilities,
    ...(descriptor.storesAuditRecords ? { storesAuditRecords: descriptor.storesAuditRecords } : {}),
    ...implementation,
  };
}

/**
 * The factory the registry holds for a descriptor: it loads the plugin's code when an
 * agent first creates or reads one, so a running agent holds only the exporters it is
 * configured with.
 */
export function lazyExporterFactory<S extends Schema>(
  descriptor: ExporterDescriptor<S>,
): ExporterFactory<S> & { load(): Promise<ExporterFactory<S>> } {
  const { type, capabilities } = descriptor;
  return {
    kind: "exporter",
    type,
    configSchema: descriptor.configSchema,
    capabilities,
    load: () => descriptor.load(),
    create: async (settings, config) => (await descriptor.load()).create(settings, config),
    ...(descriptor.storesAuditRecords ? { storesAuditRecords: descriptor.storesAuditRecords } : {}),
    ...(capabilities.readable
      ? {
          async reader(config: z.output<S>) {
            const factory = await descriptor.load();
            if (!factory.reader) throw new Error(`exporter type ${type} cannot be read back`);
            return factory.reader(config);
          },
        }
      : {}),
  };
}

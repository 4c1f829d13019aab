import type { Schema, z } from "./zod.js";

/**
 * The component model, after the OpenTelemetry Collector's: each receiver, processor,
 * exporter and extension type is a factory holding its type name and its config schema
 * (validation and defaults in one), and creates components from a validated config.
 * Each stage declares its own factory kind next to what it consumes: receivers/api.ts,
 * processing/api.ts, exporters/api.ts. Adding a plugin means one folder with its factory
 * and one entry in config/registry.ts.
 */

/** Anything with a lifecycle the agent drives. */
export interface Lifecycle {
  start(): Promise<void>;
  /** Stops; work in progress that may take time ends by `deadline` (epoch ms) when given. */
  shutdown(deadline?: number): Promise<void>;
}

export interface FactoryBase<S extends Schema> {
  readonly type: string;
  readonly configSchema: S;
}

/** Extensions configure agent-wide services (the WAL, signing…); the agent reads their config. */
export interface ExtensionFactory<S extends Schema = Schema> extends FactoryBase<S> {
  readonly kind: "extension";
}

/**
 * The validated config of a component that `factory` made, typed by the factory's schema.
 * Configs are held as `unknown` next to their factory (a list mixes types); this is the
 * one checked way back to the type, instead of a cast at each use.
 */
export function configFor<S extends Schema>(
  component: { readonly factory: { readonly type: string }; readonly config: unknown },
  factory: FactoryBase<S>,
): z.output<S> {
  if (component.factory.type !== factory.type) {
    throw new Error(`a ${component.factory.type} component's config read as ${factory.type}'s`);
  }
  return component.config as z.output<S>;
}

/** The factory of an extension type: its name and config schema. */
export function extensionFactory<S extends Schema>(
  type: string,
  configSchema: S,
): ExtensionFactory<S> {
  return { kind: "extension", type, configSchema };
}

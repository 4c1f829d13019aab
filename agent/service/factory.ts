import type { z } from "zod";
import type { DeliveryOptions } from "../exporters/delivery.js";
import type { RecordSink } from "../exporters/sink.js";
import type { ExporterState } from "../buffer/wal.js";
import type { AuditPredicate } from "../processing/audit-filter/predicate.js";
import type { AuditSource } from "../verify/types.js";
import type { AgentCounters } from "../telemetry/counters.js";
import type { Logger } from "../telemetry/logger.js";
import type { LogsConsumer } from "./pipeline.js";

/**
 * The component model, after the OpenTelemetry Collector's: each receiver, processor,
 * exporter and extension type is a factory holding its type name and its config schema
 * (validation and defaults in one), and creates components from a validated config.
 * Adding a plugin means one folder with its factory and one entry in registry.ts.
 */

export interface ComponentSettings {
  /** The component id from the config: `type` or `type/name`. */
  id: string;
  logger: Logger;
  counters: AgentCounters;
}

/** Anything with a lifecycle the agent drives. */
export interface Lifecycle {
  start(): Promise<void>;
  shutdown(): Promise<void>;
}

interface FactoryBase<S extends z.ZodType> {
  readonly type: string;
  readonly configSchema: S;
}

export interface ReceiverFactory<S extends z.ZodType = z.ZodType> extends FactoryBase<S> {
  readonly kind: "receiver";
  create(
    settings: ComponentSettings,
    config: z.output<S>,
    consumer: LogsConsumer,
  ): Lifecycle & { addresses(): Record<string, string> };
}

/** Processors in this agent classify records: true keeps a record as audit. */
export interface ProcessorFactory<S extends z.ZodType = z.ZodType> extends FactoryBase<S> {
  readonly kind: "processor";
  create(settings: ComponentSettings, config: z.output<S>): AuditPredicate;
}

export interface ExporterComponent {
  /** Receives sealed audit batches through the durable delivery engine. */
  sink?: RecordSink;
  /** Receives non-audit records for pass-through (OTLP exporters). */
  forwarder?: NonAuditForwarder;
  delivery: DeliveryOptions;
  /** Releases what sink and forwarder share, after both are stopped. */
  close?: () => Promise<void>;
}

/** A pass-through destination for the non-audit part of each request. */
export interface NonAuditForwarder {
  readonly exporterId: string;
  readonly refusesWhenFull: boolean;
  isFull(): boolean;
  /** Queues an encoded ExportLogsServiceRequest; false when it had to be dropped. */
  offer(body: Uint8Array, records: number): boolean;
  start(): void;
  shutdown(deadline: number): Promise<void>;
}

export interface ExporterSettings extends ComponentSettings {
  /** Durable state private to this exporter (survives restarts). */
  state: ExporterState;
}

export interface ExporterFactory<S extends z.ZodType = z.ZodType> extends FactoryBase<S> {
  readonly kind: "exporter";
  /** A promise when the exporter's code is loaded on first use (see registry.ts). */
  create(
    settings: ExporterSettings,
    config: z.output<S>,
  ): ExporterComponent | Promise<ExporterComponent>;
  /** Whether this config receives audit records (default true); pass-through-only exporters do not. */
  storesAuditRecords?(config: z.output<S>): boolean;
  /** Reads back what this exporter wrote, for `verify --config` and continuous verification. */
  reader?(config: z.output<S>): AuditSource | Promise<AuditSource>;
}

/** Extensions configure agent-wide services (the WAL); the agent reads their config. */
export interface ExtensionFactory<S extends z.ZodType = z.ZodType> extends FactoryBase<S> {
  readonly kind: "extension";
}

export type AnyFactory = ReceiverFactory | ProcessorFactory | ExporterFactory | ExtensionFactory;

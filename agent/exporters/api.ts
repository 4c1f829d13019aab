import type { Schema, z } from "../common/zod.js";
import type { FactoryBase } from "../common/component.js";
import type { RetryOnFailure } from "../common/config-schema.js";
import { AgentError } from "../common/errors.js";
import type { NonAuditForwarder } from "../processing/api.js";
import type { ExporterState } from "../store/exporter-state.js";
import type { SealedEntry } from "../store/sealed-log.js";
import type { ComponentSettings } from "../telemetry/settings.js";
import type { AuditSource } from "./source.js";

export type { ExporterState, SealedEntry };

/**
 * The exporter plugin API. A plugin is one folder with a descriptor (descriptor.ts: type,
 * config schema, capabilities, its factory loaded on first use, and optionally a
 * `verify --source` scheme) and one line in config/exporter-registry.ts. Its sink writes sealed
 * batches, in order; the delivery engine (delivery.ts) owns cursors, retries and WAL
 * release. Its reader (source.ts) fetches what the sink wrote for the verifier.
 * docs/exporters.md describes the contract.
 */

/** One sealed record as a sink sees it: views over the stored bytes, never copies. */
export interface SealedRecord {
  readonly seq: number;
  /** The record's RFC 6962 leaf hash (32 bytes). */
  readonly leafHash: Buffer;
  leafHashHex(): string;
  /** The canonical text's UTF-8 bytes: exactly what a backend stores and a verifier hashes. */
  readonly canonical: Buffer;
  readonly canonicalLength: number;
  canonicalText(): string;
  /** Copies the canonical text into `target` at `at`; returns the bytes copied. */
  copyCanonical(target: Buffer, at: number): number;
}

/**
 * A sealed-log entry with its records: a signed batch, or a record-less key rotation
 * (records empty). Records are contiguous and ascending from firstSeq.
 */
export interface SealedBatch extends SealedEntry {
  readonly records: readonly SealedRecord[];
}

export interface RecordSink {
  /**
   * Prepares the backend for `chainId`. Returns the index of the last sealed batch the
   * backend already holds completely (found by inspecting it), or null when unknown;
   * delivery resumes after the larger of this and the persisted cursor, so a crash
   * between a write and the cursor update does not write a batch twice.
   */
  open(chainId: string): Promise<number | null>;
  /** Writes one sealed batch durably (records, then its manifest), or throws an ExportError. */
  write(batch: SealedBatch): Promise<void>;
  /**
   * Optional: writes consecutive batches at once, with the same guarantees as writing them
   * one by one, for sinks where a write has a fixed durability cost (an fsync, a request).
   * The delivery loop uses it when several sealed batches are waiting.
   */
  writeAll?(batches: readonly SealedBatch[]): Promise<void>;
  close(): Promise<void>;
}

/** A failure that may go away: the batch is retried with backoff. */
export class RetryableExportError extends AgentError {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super("EXPORT_RETRYABLE", message, options);
  }
}

/** A failure that will not go away by retrying: the exporter stops and reports it. */
export class PermanentExportError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("EXPORT_PERMANENT", message, options);
  }
}

/** Records as NDJSON: each canonical text byte-exact, then a newline. */
export function recordLines(records: readonly SealedRecord[]): Buffer {
  let size = 0;
  for (const r of records) size += r.canonicalLength + 1;
  const buf = Buffer.allocUnsafe(size);
  let at = 0;
  for (const r of records) {
    at += r.copyCanonical(buf, at);
    buf[at++] = 0x0a;
  }
  return buf;
}

/**
 * The stored form of a sealed-log entry, the same in every backend:
 * {"checkpoint":<note or null>,"manifest":<signed manifest text>} (no newline).
 */
export function manifestLine(manifest: string, checkpoint: string | null): string {
  return `{"checkpoint":${checkpoint === null ? "null" : JSON.stringify(checkpoint)},"manifest":${manifest}}`;
}

/** How the delivery engine treats one exporter (its Collector-style retry_on_failure). */
export interface DeliveryOptions {
  retry: RetryOnFailure;
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

export interface ExporterSettings extends ComponentSettings {
  /** Durable state private to this exporter (survives restarts). */
  state: ExporterState;
}

/** What an exporter can do, declared in its descriptor (descriptor.ts). */
export interface ExporterCapabilities {
  /** It keeps audit records in storage of their own that outlives the agent (not a pass-through). */
  readonly durable: boolean;
  /** The verifier can read back what it wrote: the implementation has a reader. */
  readonly readable: boolean;
}

export interface ExporterFactory<S extends Schema = Schema> extends FactoryBase<S> {
  readonly kind: "exporter";
  /** From the plugin's descriptor (descriptor.ts). */
  readonly capabilities: ExporterCapabilities;
  /** A promise when the exporter's code is loaded on first use (see config/registry.ts). */
  create(
    settings: ExporterSettings,
    config: z.output<S>,
  ): ExporterComponent | Promise<ExporterComponent>;
  /**
   * Whether this config keeps audit records somewhere (default true): pass-through-only
   * exporters do not, nor debug, which only prints them; a pipeline needs one that does.
   */
  storesAuditRecords?(config: z.output<S>): boolean;
  /** Reads back what this exporter wrote, for `verify --config` and continuous verification. */
  reader?(config: z.output<S>): AuditSource | Promise<AuditSource>;
}

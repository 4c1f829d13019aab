import type { z } from "zod";
import type { FactoryBase } from "../common/component.js";
import { AgentError } from "../common/errors.js";
import type { TransportCounts } from "../telemetry/counters.js";
import type { ComponentSettings } from "../telemetry/settings.js";
import type { AuditPredicate } from "./audit-filter/predicate.js";

/**
 * A processor type. The one processor that acts here classifies records (audit_filter:
 * true keeps a record as audit). Others are Collector types accepted so that a pasted
 * Collector config loads, each saying why it does nothing here.
 */
export interface ProcessorFactory<S extends z.ZodType = z.ZodType> extends FactoryBase<S> {
  readonly kind: "processor";
  /** The audit classifier, for a processor that classifies. */
  create?(settings: ComponentSettings, config: z.output<S>): AuditPredicate;
  /**
   * For a Collector processor accepted as a no-op: the warning given once at start (and by
   * `validate`) when the pipeline lists it: why it does nothing, and what to set instead.
   */
  noOpWarning?(id: string, config: z.output<S>): string;
}

/** A processor that classifies records (audit_filter). */
export type ClassifierFactory<S extends z.ZodType = z.ZodType> = ProcessorFactory<S> &
  Required<Pick<ProcessorFactory<S>, "create">>;

/**
 * A pass-through destination for the non-audit part of each request (the OTLP
 * exporters implement it); the pipeline offers it what the audit filter did not keep.
 */
export interface NonAuditForwarder {
  readonly exporterId: string;
  readonly refusesWhenFull: boolean;
  isFull(): boolean;
  /**
   * Queues an encoded ExportLogsServiceRequest; false when it had to be dropped. A drop,
   * now or after retries, is counted as refused by `from`, the transport it came in on.
   */
  offer(body: Uint8Array, records: number, from: TransportCounts): boolean;
  start(): void;
  shutdown(deadline: number): Promise<void>;
}

/** A forwarder that refuses when full is full: the whole request is refused, nothing stored. */
export class QueueFullError extends AgentError {
  constructor(exporterId: string) {
    super(
      "FORWARD_QUEUE_FULL",
      `the pass-through queue of exporter ${exporterId} is full: the upstream is behind; retry later`,
    );
  }
}

import type { z } from "zod";
import type { FactoryBase } from "../common/component.js";
import { AgentError } from "../common/errors.js";
import type { TransportCounts } from "../telemetry/counters.js";
import type { ComponentSettings } from "../telemetry/settings.js";
import type { AuditPredicate } from "./audit-filter/predicate.js";

/** Processors in this agent classify records: true keeps a record as audit. */
export interface ProcessorFactory<S extends z.ZodType = z.ZodType> extends FactoryBase<S> {
  readonly kind: "processor";
  create(settings: ComponentSettings, config: z.output<S>): AuditPredicate;
}

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

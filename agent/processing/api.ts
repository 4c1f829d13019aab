import type { Schema, z } from "../common/zod.js";
import type { FactoryBase } from "../common/component.js";
import { AgentError } from "../common/errors.js";
import type { TransportCounts } from "../telemetry/counters.js";
import type { ComponentSettings } from "../telemetry/settings.js";
import type { AuditPredicate } from "./audit-filter/predicate.js";

/**
/**
 * A processor type. Processors that act here make what the pipeline applies to each
 * request: the audit filter a predicate that keeps a record as audit (P = AuditPredicate),
 * the source processor what stamps the envelopes' `source` (P = SourceStamp). Others are
 * Collector types accepted so that a pasted Collector config loads, each saying why it does
 * nothing here.
 */
export interface ProcessorFactory<
  S extends Schema = Schema,
  P = AuditPredicate,
> extends FactoryBase<S> {
  readonly kind: "processor";
  /** What the processor applies to each request; absent for an accepted no-op. */
  create?(settings: ComponentSettings, config: z.output<S>): P;
  /**
   * For a Collector processor accepted as a no-op: the warning given once at start (and by
   * `validate`) when the pipeline lists it: why it does nothing, and what to set instead.
   */
  noOpWarning?(id: string, config: z.output<S>): string;
}

/**
 * What the receiver knows of the client that sent a request, as the transport saw it: read
 * only when the pipeline stamps a `source` (docs/integrity-format.md §2.4).
 */
export interface ClientPeer {
  /** The IP address of the connection's other end; null when it is not known. */
  address(): string | null;
  /**
   * The client certificate the TLS handshake verified against the receiver's client CA
   * (mTLS), as DER bytes; null without TLS, without a client CA, or without a certificate.
   */
  verifiedCertificate(): Uint8Array | null;
}

/** A processor that classifies records (audit_filter). */
export type ClassifierFactory<S extends Schema = Schema> = ProcessorFactory<S> &
  Required<Pick<ProcessorFactory<S>, "create">>;

/** A processor that acts on every request with what it creates (e.g. the source stamp). */
export type ActingFactory<S extends Schema, P> = ProcessorFactory<S, P> &
  Required<Pick<ProcessorFactory<S, P>, "create">>;

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

import { type ChainLog, WalFullError } from "../store/chain-log.js";
import { contextSuffix, recordJson } from "../otlp/canonical-record.js";
import { AgentError } from "../common/errors.js";
import { type AuditPredicate, modelRecordView } from "../otlp/record-view.js";
import type { RefusedRecords } from "../otlp/json-codec.js";
import type { ExportLogsServiceRequest, LogRecord, ResourceLogs } from "../otlp/model.js";
import { checkProtobufNesting, ProtobufCanonicalizer } from "../otlp/protobuf-canonical.js";
import { decodeLogsRequest, otlpTypes } from "../otlp/protobuf-codec.js";
import { type ClientPeer, type NonAuditForwarder, QueueFullError } from "./api.js";
import type { SourceStamp } from "./source/stamp.js";
import type { TransportCounts } from "../telemetry/counters.js";

/**
 * The logs pipeline as receivers see it: classify each record, turn audit records into
 * their canonical text, and hand them to the chain log. Resolves only once they are durable.
 */
export interface ConsumeResult {
  /** Audit records chained and durable. */
  accepted: number;
  /** Non-audit records dropped by the audit filter (not an error for the client). */
  filtered: number;
  /** Records refused individually (reported to the client as partial success). */
  rejected: number;
  rejectMessage: string;
}

export interface LogsConsumer {
  /**
   * `from`: the receiver transport that counts the request's records. `refused`: records the
   * decoder already left out of `request` (a value that cannot be stored exactly); they are
   * reported with the result's rejected records. `peer`: the client as the receiver saw it,
   * for the envelopes' `source` (the source processor).
   */
  consume(
    request: ExportLogsServiceRequest,
    receivedUnixNano: string,
    from: TransportCounts,
    refused?: RefusedRecords | null,
    peer?: ClientPeer | null,
  ): Promise<ConsumeResult>;
  /** The same for an OTLP/protobuf request body; throws OTLP_BAD_PROTOBUF when malformed. */
  consumeProtobuf(
    body: Uint8Array,
    receivedUnixNano: string,
    from: TransportCounts,
    peer?: ClientPeer | null,
  ): Promise<ConsumeResult>;
}

export interface PipelineLimits {
  /** Largest canonical `record` text accepted, in bytes. */
  maxRecordBytes: number;
}

export class LogsPipeline implements LogsConsumer {
  private readonly canonicalizer: ProtobufCanonicalizer;

  constructor(
    private readonly isAudit: AuditPredicate,
    private readonly log: ChainLog,
    private readonly limits: PipelineLimits,
    private readonly forwarders: readonly NonAuditForwarder[] = [],
    /** Told of each request's records the audit filter left out (the agent logs them, rate-limited). */
    private readonly onFiltered: ((records: number) => void) | null = null,
    /** Stamps each request's `source` (integrity-format §2.4); null: version-1 lines. */
    private readonly source: SourceStamp | null = null,
  ) {
    this.canonicalizer = new ProtobufCanonicalizer(isAudit, limits.maxRecordBytes);
  }

  async consumeProtobuf(
    body: Uint8Array,
    receivedUnixNano: string,
    from: TransportCounts,
    peer: ClientPeer | null = null,
  ): Promise<ConsumeResult> {
    // Forwarding non-audit records needs them decoded, so that case takes the general path;
    // the rules every transport applies to values are checked first, on the wire, as the
    // fast path checks them (docs/integrity-format.md §3.11).
    if (this.forwarders.length > 0) {
      checkProtobufNesting(body);
      return this.consume(decodeLogsRequest(body), receivedUnixNano, from, null, peer);
    }
    const { records, filtered, rejected, firstRejectedBytes } =
      this.canonicalizer.canonicalize(body);
    from.accept(0, filtered);
    if (filtered > 0) this.onFiltered?.(filtered);
    from.refuse("too_large", rejected);
    await this.store(records, receivedUnixNano, from, peer);
    const rejectMessage =
      rejected > 0
        ? `${rejected} audit record(s) refused: ${tooLarge(firstRejectedBytes, this.limits.maxRecordBytes)}`
        : "";
    return { accepted: records.length, filtered, rejected, rejectMessage };
  }

  /** Appends to the WAL (resolving once durable), counting refusals per record. */
  private async store(
    records: ReadonlyArray<string | Uint8Array>,
    receivedUnixNano: string,
    from: TransportCounts,
    peer: ClientPeer | null,
  ) {
    try {
      if (records.length === 0) return;
      // One text per request, made once: the WAL writes its bytes into every envelope.
      const source = this.source === null ? null : this.source.render(peer);
      await this.log.append(records, receivedUnixNano, source);
    } catch (err) {
      // The receiver maps these to retryable statuses; the refusal is counted here, per record.
      from.refuse(err instanceof WalFullError ? "buffer_full" : "unavailable", records.length);
      throw err;
    }
    from.accept(records.length, 0);
  }

  async consume(
    request: ExportLogsServiceRequest,
    receivedUnixNano: string,
    from: TransportCounts,
    refused: RefusedRecords | null = null,
    peer: ClientPeer | null = null,
  ): Promise<ConsumeResult> {
    const records: string[] = [];
    // Refuse before storing anything, so the client's retry cannot duplicate audit records.
    const full = this.forwarders.find((f) => f.refusesWhenFull && f.isFull());
    if (full) {
      let total = 0;
      for (const rl of request.resourceLogs)
        for (const sl of rl.scopeLogs) total += sl.logRecords.length;
      from.refuse("passthrough_queue_full", total);
      throw new QueueFullError(full.exporterId);
    }
    const forwarding = this.forwarders.length > 0;
    const passThrough: ResourceLogs[] = [];
    let filtered = 0;
    let rejected = 0;
    let firstRejection = "";
    const maxBytes = this.limits.maxRecordBytes;
    for (let r = 0; r < request.resourceLogs.length; r++) {
      const rl = request.resourceLogs[r] as ExportLogsServiceRequest["resourceLogs"][number];
      for (let s = 0; s < rl.scopeLogs.length; s++) {
        const sl = rl.scopeLogs[s] as (typeof rl.scopeLogs)[number];
        // Resource and scope JSON are shared by all of the scope's records: build once, lazily.
        let suffix: string | null = null;
        let nonAudit: LogRecord[] | null = null;
        for (let i = 0; i < sl.logRecords.length; i++) {
          const lr = sl.logRecords[i] as LogRecord;
          if (
            (lr.traceId.length !== 0 && lr.traceId.length !== 16) ||
            (lr.spanId.length !== 0 && lr.spanId.length !== 8)
          ) {
            throw new AgentError(
              "OTLP_BAD_PROTOBUF",
              `resourceLogs[${r}].scopeLogs[${s}].logRecords[${i}]: trace_id must be 16 bytes and span_id 8 bytes (got ${lr.traceId.length} and ${lr.spanId.length})`,
            );
          }
          if (!this.isAudit(modelRecordView(lr), sl.scope, rl.resource)) {
            filtered++;
            if (forwarding) {
              if (nonAudit === null) {
                nonAudit = [];
                passThrough.push({
                  resource: rl.resource,
                  schemaUrl: rl.schemaUrl,
                  scopeLogs: [{ scope: sl.scope, schemaUrl: sl.schemaUrl, logRecords: nonAudit }],
                });
              }
              nonAudit.push(lr);
            }
            continue;
          }
          if (suffix === null)
            suffix = contextSuffix(rl.resource, rl.schemaUrl, sl.scope, sl.schemaUrl);
          const text = recordJson(lr, suffix);
          if (text.length > maxBytes / 3 && Buffer.byteLength(text, "utf8") > maxBytes) {
            rejected++;
            if (firstRejection === "") {
              firstRejection = tooLarge(Buffer.byteLength(text, "utf8"), maxBytes);
            }
            continue;
          }
          records.push(text);
        }
      }
    }
    from.accept(0, filtered);
    if (filtered > 0) this.onFiltered?.(filtered);
    from.refuse("too_large", rejected);
    if (refused) from.refuse("unrepresentable_value", refused.count);
    await this.store(records, receivedUnixNano, from, peer);
    if (passThrough.length > 0) {
      const body = otlpTypes.RequestType.encode({ resourceLogs: passThrough } as unknown as Record<
        string,
        unknown
      >).finish();
      for (const f of this.forwarders) f.offer(body, filtered, from);
    }
    const reasons = [
      refused ? `${refused.count} log record(s) refused: ${refused.message}` : "",
      rejected > 0 ? `${rejected} audit record(s) refused: ${firstRejection}` : "",
    ];
    return {
      accepted: records.length,
      filtered,
      rejected: rejected + (refused?.count ?? 0),
      rejectMessage: reasons.filter((r) => r !== "").join("; "),
    };
  }
}

function tooLarge(bytes: number, maxBytes: number): string {
  return `audit record of ${bytes} bytes exceeds the limit of ${maxBytes} bytes (wal.max_record_size_kib)`;
}

/** Wall-clock receive time in unix nanoseconds, with microsecond resolution. */
export function receiveTimeUnixNano(): string {
  return `${Math.round((performance.timeOrigin + performance.now()) * 1000)}000`;
}

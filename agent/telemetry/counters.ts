/** The transports of the OTLP receiver, as the Collector's `transport` label spells them. */
export type Transport = "grpc" | "http";

/**
 * What one receiver counted on one transport: the Collector's receiverhelper counts its
 * otelcol_receiver_* metrics per `receiver` and `transport` the same way. Each count also
 * adds to the agent-wide totals.
 */
export class TransportCounts {
  /** Log records pushed into the pipeline: audit records chained plus non-audit ones filtered. */
  accepted = 0;
  /** Log records refused, by reason. */
  readonly refused = new Map<string, number>();

  constructor(
    readonly receiver: string,
    readonly transport: Transport,
    private readonly totals: AgentCounters,
  ) {}

  /** Audit records chained and durable, and non-audit records the audit filter took. */
  accept(chained: number, filtered: number): void {
    this.accepted += chained + filtered;
    this.totals.receiverAccepted += chained;
    this.totals.filtered += filtered;
  }

  refuse(reason: string, records: number): void {
    if (records <= 0) return;
    add(this.refused, reason, records);
    add(this.totals.receiverRefused, reason, records);
  }

  /** A request answered, with its outcome (status code or name). */
  request(outcome: string): void {
    add(this.totals.requests, `${this.transport}:${outcome}`, 1);
  }
}

function add(map: Map<string, number>, key: string, n: number): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

/**
 * The agent's own counters. Every record that enters is accounted for exactly once as
 * accepted (chained), filtered (not audit) or refused (with the reason), so a drop is
 * never silent. Names mirror the Collector's otelcol_* metrics where one exists.
 */
export class AgentCounters {
  /** Audit records chained and durable, from every receiver. */
  receiverAccepted = 0;
  /** Records refused, by reason, from every receiver. */
  readonly receiverRefused = new Map<string, number>();
  /** Non-audit records dropped (or passed through) by the audit filter. */
  filtered = 0;
  /** Requests answered, by receiver protocol and outcome ("http:429", "grpc:ok"). */
  readonly requests = new Map<string, number>();
  /** otelcol_exporter_sent_log_records, by exporter id. */
  readonly exporterSent = new Map<string, number>();
  /** otelcol_exporter_send_failed_log_records, by exporter id. */
  readonly exporterFailed = new Map<string, number>();
  /** Keys an exporter found taken by a foreign object and wrote beside, by exporter id. */
  readonly squattedKeys = new Map<string, number>();
  /** otelcol_receiver_accepted/refused_log_records, by receiver id and transport. */
  readonly transports = new Map<string, TransportCounts>();

  /** The counts of `receiver` on `transport` (created at zero, so the series shows 0). */
  transport(receiver: string, transport: Transport): TransportCounts {
    const key = `${receiver}\n${transport}`;
    let counts = this.transports.get(key);
    if (!counts) {
      counts = new TransportCounts(receiver, transport, this);
      this.transports.set(key, counts);
    }
    return counts;
  }

  sent(exporterId: string, records: number): void {
    add(this.exporterSent, exporterId, records);
  }

  squatted(exporterId: string): void {
    add(this.squattedKeys, exporterId, 1);
  }

  sendFailed(exporterId: string, records: number): void {
    add(this.exporterFailed, exporterId, records);
  }
}

/**
 * The agent's own counters. Every record that enters is accounted for exactly once as
 * accepted (chained), filtered (not audit) or refused (with the reason), so a drop is
 * never silent. Names mirror the Collector's otelcol_* metrics where one exists.
 */
export class AgentCounters {
  /** otelcol_receiver_accepted_log_records: audit records chained and durable. */
  receiverAccepted = 0;
  /** otelcol_receiver_refused_log_records, by reason. */
  readonly receiverRefused = new Map<string, number>();
  /** Non-audit records dropped by the audit filter. */
  filtered = 0;
  /** Requests answered, by receiver protocol and outcome. */
  readonly requests = new Map<string, number>();
  /** otelcol_exporter_sent_log_records, by exporter id. */
  readonly exporterSent = new Map<string, number>();
  /** otelcol_exporter_send_failed_log_records, by exporter id. */
  readonly exporterFailed = new Map<string, number>();
  /** Keys an exporter found taken by a foreign object and wrote beside, by exporter id. */
  readonly squattedKeys = new Map<string, number>();

  refused(reason: string, records: number): void {
    if (records > 0)
      this.receiverRefused.set(reason, (this.receiverRefused.get(reason) ?? 0) + records);
  }

  request(protocol: string, outcome: string): void {
    const key = `${protocol}:${outcome}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  sent(exporterId: string, records: number): void {
    this.exporterSent.set(exporterId, (this.exporterSent.get(exporterId) ?? 0) + records);
  }

  squatted(exporterId: string): void {
    this.squattedKeys.set(exporterId, (this.squattedKeys.get(exporterId) ?? 0) + 1);
  }

  sendFailed(exporterId: string, records: number): void {
    this.exporterFailed.set(exporterId, (this.exporterFailed.get(exporterId) ?? 0) + records);
  }

  snapshot(): Record<string, number | Record<string, number>> {
    return {
      receiverAccepted: this.receiverAccepted,
      receiverRefused: Object.fromEntries(this.receiverRefused),
      filtered: this.filtered,
      requests: Object.fromEntries(this.requests),
      exporterSent: Object.fromEntries(this.exporterSent),
      exporterFailed: Object.fromEntries(this.exporterFailed),
    };
  }
}

import type { InstrumentationScope, KeyValue, LogRecord, Resource } from "./model.js";

/**
 * What the audit filter reads of a log record. Receivers hand it either a decoded record
 * (modelRecordView) or a view straight over protobuf bytes that decodes only what a
 * condition asks for (otlp/protobuf-canonical.ts).
 */
export interface AuditRecordView {
  /** The first attribute with this key, or undefined when there is none. */
  attribute(key: string): KeyValue | undefined;
  readonly eventName: string;
  readonly severityNumber: number;
  readonly severityText: string;
}

/** The view of a decoded LogRecord. */
export function modelRecordView(record: LogRecord): AuditRecordView {
  return {
    attribute: (key) => findAttribute(record.attributes, key),
    eventName: record.eventName,
    severityNumber: record.severityNumber,
    severityText: record.severityText,
  };
}

/** A compiled audit filter: true when the record is an audit record. */
export type AuditPredicate = (
  record: AuditRecordView,
  scope: InstrumentationScope | null | undefined,
  resource: Resource | null | undefined,
) => boolean;

/** The first attribute with `key` in `list`, as OTLP allows duplicates. */
export function findAttribute(list: KeyValue[] | undefined, key: string): KeyValue | undefined {
  if (list === undefined) return undefined;
  for (let i = 0; i < list.length; i++) if ((list[i] as KeyValue).key === key) return list[i];
  return undefined;
}

/**
 * The decoded shape of an OTLP ExportLogsServiceRequest, as protobufjs produces it from
 * the wire and as the OTLP/JSON decoder builds it. Both decoders yield this one shape so
 * every later stage has a single input type.
 *
 * 64-bit integers arrive as protobufjs `Long` objects from protobuf and as normalized
 * decimal strings from JSON; `toDecimal` in chain/canonical-record.ts handles both.
 */
/**
 * How deeply AnyValues may nest, on every transport: a LogRecord's body and the value of a
 * top-level attribute (of a record, resource or scope) are level 1, and each AnyValue inside
 * an `arrayValue` or inside a `kvlistValue`'s KeyValue is one level below the value holding
 * it. A request holding a value below level MAX_ANY_VALUE_DEPTH is refused
 * (docs/integrity-format.md §3.11): decoding stays well within the stack for any body.
 */
export const MAX_ANY_VALUE_DEPTH = 64;

export interface LongBits {
  readonly low: number;
  readonly high: number;
  readonly unsigned: boolean;
  toString(): string;
}

export type Int64 = LongBits | string | number;

/** Name of the AnyValue oneof case that is set, or null/undefined when the value is empty. */
export type AnyValueCase =
  | "stringValue"
  | "boolValue"
  | "intValue"
  | "doubleValue"
  | "arrayValue"
  | "kvlistValue"
  | "bytesValue";

export interface AnyValue {
  value?: AnyValueCase | null;
  stringValue?: string;
  boolValue?: boolean;
  intValue?: Int64;
  doubleValue?: number;
  arrayValue?: { values: AnyValue[] } | null;
  kvlistValue?: { values: KeyValue[] } | null;
  bytesValue?: Uint8Array;
}

export interface KeyValue {
  key: string;
  value?: AnyValue | null;
}

export interface EntityRef {
  schemaUrl: string;
  type: string;
  idKeys: string[];
  descriptionKeys: string[];
}

export interface Resource {
  attributes: KeyValue[];
  droppedAttributesCount: number;
  entityRefs: EntityRef[];
}

export interface InstrumentationScope {
  name: string;
  version: string;
  attributes: KeyValue[];
  droppedAttributesCount: number;
}

export interface LogRecord {
  timeUnixNano: Int64;
  observedTimeUnixNano: Int64;
  severityNumber: number;
  severityText: string;
  body?: AnyValue | null;
  attributes: KeyValue[];
  droppedAttributesCount: number;
  flags: number;
  traceId: Uint8Array;
  spanId: Uint8Array;
  eventName: string;
}

export interface ScopeLogs {
  scope?: InstrumentationScope | null;
  logRecords: LogRecord[];
  schemaUrl: string;
}

export interface ResourceLogs {
  resource?: Resource | null;
  scopeLogs: ScopeLogs[];
  schemaUrl: string;
}

export interface ExportLogsServiceRequest {
  resourceLogs: ResourceLogs[];
}

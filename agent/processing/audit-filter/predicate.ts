import { toDecimal } from "../../chain/canonical-record.js";
import type {
  AnyValue,
  InstrumentationScope,
  KeyValue,
  LogRecord,
  Resource,
} from "../../receivers/otlp/model.js";
import type { AuditCondition, AuditFilterConfig } from "./config.js";

/**
 * What the audit filter reads of a log record. Receivers hand it either a decoded record
 * (modelRecordView) or a view straight over protobuf bytes that decodes only what a
 * condition asks for (receivers/otlp/protobuf-canonical.ts).
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

type Scalar = string | number | boolean;

const SEVERITY_FLOOR: Record<string, number> = {
  TRACE: 1,
  DEBUG: 5,
  INFO: 9,
  WARN: 13,
  ERROR: 17,
  FATAL: 21,
};

function findAttribute(list: KeyValue[] | undefined, key: string): KeyValue | undefined {
  if (list === undefined) return undefined;
  for (let i = 0; i < list.length; i++) if ((list[i] as KeyValue).key === key) return list[i];
  return undefined;
}

function valueEquals(v: AnyValue | null | undefined, expected: Scalar): boolean {
  if (v == null) return false;
  switch (typeof expected) {
    case "string":
      return v.value === "stringValue" && v.stringValue === expected;
    case "boolean":
      return v.value === "boolValue" && v.boolValue === expected;
    default:
      if (v.value === "doubleValue") return v.doubleValue === expected;
      return (
        v.value === "intValue" &&
        Number.isInteger(expected) &&
        toDecimal(v.intValue ?? 0) === String(expected)
      );
  }
}

function textTest(
  spec: string | { equals?: string | string[]; prefix?: string },
): (s: string) => boolean {
  if (typeof spec === "string") return (s) => s === spec;
  if (spec.prefix !== undefined) {
    const prefix = spec.prefix;
    return (s) => s.startsWith(prefix);
  }
  const options = Array.isArray(spec.equals) ? spec.equals : [spec.equals as string];
  return (s) => options.includes(s);
}

function attributeTest(c: AuditCondition): (kv: KeyValue | undefined) => boolean {
  if (c.exists) return (kv) => kv !== undefined;
  if (c.prefix !== undefined) {
    const prefix = c.prefix;
    return (kv) =>
      kv?.value?.value === "stringValue" && (kv.value.stringValue as string).startsWith(prefix);
  }
  const options: Scalar[] = Array.isArray(c.equals) ? c.equals : [c.equals as Scalar];
  return (kv) => kv !== undefined && options.some((o) => valueEquals(kv.value, o));
}

function severityBound(v: number | string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  return typeof v === "number" ? v : (SEVERITY_FLOOR[v] as number);
}

function compileCondition(c: AuditCondition): AuditPredicate {
  if (c.record_attribute !== undefined) {
    const key = c.record_attribute;
    const test = attributeTest(c);
    return (r) => test(r.attribute(key));
  }
  if (c.resource_attribute !== undefined) {
    const key = c.resource_attribute;
    const test = attributeTest(c);
    return (_r, _s, res) => test(findAttribute(res?.attributes, key));
  }
  if (c.scope_attribute !== undefined) {
    const key = c.scope_attribute;
    const test = attributeTest(c);
    return (_r, s) => test(findAttribute(s?.attributes, key));
  }
  if (c.event_name !== undefined) {
    const test = textTest(c.event_name);
    return (r) => test(r.eventName);
  }
  if (c.scope_name !== undefined) {
    const test = textTest(c.scope_name);
    return (_r, s) => test(s?.name ?? "");
  }
  if (c.severity_text !== undefined) {
    const test = textTest(c.severity_text);
    return (r) => test(r.severityText);
  }
  const range = c.severity_number as { min?: number | string; max?: number | string };
  const min = severityBound(range.min, 0);
  // A named max covers the whole level: max WARN includes WARN4 (16).
  const max =
    typeof range.max === "string" ? severityBound(range.max, 24) + 3 : severityBound(range.max, 24);
  return (r) => r.severityNumber >= min && r.severityNumber <= max;
}

export function compileAuditFilter(config: AuditFilterConfig): AuditPredicate {
  const tests = config.conditions.map(compileCondition);
  if (tests.length === 1) return tests[0] as AuditPredicate;
  if (config.match === "all") return (r, s, res) => tests.every((t) => t(r, s, res));
  return (r, s, res) => tests.some((t) => t(r, s, res));
}

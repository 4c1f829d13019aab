import { toDecimal } from "../../otlp/canonical-record.js";
import type { AnyValue, KeyValue } from "../../otlp/model.js";
import {
  type AuditPredicate,
  type AuditRecordView,
  findAttribute,
} from "../../otlp/record-view.js";
import type { AuditCondition, AuditFilterConfig } from "./config.js";

export type { AuditPredicate, AuditRecordView };

type Scalar = string | number | boolean;

const SEVERITY_FLOOR: Record<string, number> = {
  TRACE: 1,
  DEBUG: 5,
  INFO: 9,
  WARN: 13,
  ERROR: 17,
  FATAL: 21,
};

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

import { describe, expect, it } from "vitest";
import {
  type AuditFilterConfig,
  auditFilterConfigSchema,
  DEFAULT_CONDITIONS,
} from "../../agent/processing/audit-filter/config.js";
import { compileAuditFilter } from "../../agent/processing/audit-filter/predicate.js";
import { modelRecordView } from "../../agent/otlp/record-view.js";
import type {
  AnyValue,
  InstrumentationScope,
  KeyValue,
  LogRecord,
  Resource,
} from "../../agent/otlp/model.js";

// --- OTLP model builders (agent/receivers/otlp/model.ts) ---------------------------------

const str = (stringValue: string): AnyValue => ({ value: "stringValue", stringValue });
const bool = (boolValue: boolean): AnyValue => ({ value: "boolValue", boolValue });
const int = (intValue: string | number | AnyValue["intValue"]): AnyValue => ({
  value: "intValue",
  intValue,
});
const double = (doubleValue: number): AnyValue => ({ value: "doubleValue", doubleValue });
const list = (...values: AnyValue[]): AnyValue => ({ value: "arrayValue", arrayValue: { values } });
/** A protobufjs Long as the gRPC decoder yields it. */
const long = (low: number, high = 0) => ({
  low,
  high,
  unsigned: false,
  toString: () => String(high * 2 ** 32 + (low >>> 0)),
});

const attrs = (a: Record<string, AnyValue | null>): KeyValue[] =>
  Object.entries(a).map(([key, value]) => ({ key, value }));

function record(o: {
  attributes?: Record<string, AnyValue | null>;
  eventName?: string;
  severityNumber?: number;
  severityText?: string;
}): LogRecord {
  return {
    timeUnixNano: "0",
    observedTimeUnixNano: "0",
    severityNumber: o.severityNumber ?? 0,
    severityText: o.severityText ?? "",
    body: str("hello"),
    attributes: attrs(o.attributes ?? {}),
    droppedAttributesCount: 0,
    flags: 0,
    traceId: new Uint8Array(),
    spanId: new Uint8Array(),
    eventName: o.eventName ?? "",
  };
}

function scope(o: { name?: string; attributes?: Record<string, AnyValue> } = {}) {
  return {
    name: o.name ?? "",
    version: "",
    attributes: attrs(o.attributes ?? {}),
    droppedAttributesCount: 0,
  } satisfies InstrumentationScope;
}

function resource(a: Record<string, AnyValue> = {}): Resource {
  return { attributes: attrs(a), droppedAttributesCount: 0, entityRefs: [] };
}

/** Compiles a filter from YAML-shaped input through the real schema (defaults included). */
function filter(config: unknown) {
  const parsed: AuditFilterConfig = auditFilterConfigSchema.parse(config);
  const predicate = compileAuditFilter(parsed);
  return {
    rec: (r: LogRecord) => predicate(modelRecordView(r), scope(), resource()),
    withScope: (s: InstrumentationScope | null | undefined, r = record({})) =>
      predicate(modelRecordView(r), s, resource()),
    withResource: (res: Resource | null | undefined, r = record({})) =>
      predicate(modelRecordView(r), scope(), res),
  };
}
const one = (condition: unknown) => filter({ conditions: [condition] });

// ------------------------------------------------------------------------------------------

describe("the default rule", () => {
  const f = filter({});

  it("is DEFAULT_CONDITIONS with match any", () => {
    expect(auditFilterConfigSchema.parse({})).toEqual({
      match: "any",
      conditions: DEFAULT_CONDITIONS,
    });
    expect(DEFAULT_CONDITIONS).toEqual([
      { record_attribute: "audit", equals: [true, "true"] },
      { event_name: { prefix: "audit." } },
    ]);
  });

  it('keeps audit=true as a boolean or the string "true"', () => {
    expect(f.rec(record({ attributes: { audit: bool(true) } }))).toBe(true);
    expect(f.rec(record({ attributes: { audit: str("true") } }))).toBe(true);
  });

  it('drops audit=false, "yes", "TRUE", 1, an empty value and a missing attribute', () => {
    expect(f.rec(record({ attributes: { audit: bool(false) } }))).toBe(false);
    expect(f.rec(record({ attributes: { audit: str("false") } }))).toBe(false);
    expect(f.rec(record({ attributes: { audit: str("yes") } }))).toBe(false);
    expect(f.rec(record({ attributes: { audit: str("TRUE") } }))).toBe(false);
    expect(f.rec(record({ attributes: { audit: int(1) } }))).toBe(false);
    expect(f.rec(record({ attributes: { audit: null } }))).toBe(false);
    expect(f.rec(record({ attributes: { audit: list(bool(true)) } }))).toBe(false);
    expect(f.rec(record({}))).toBe(false);
  });

  it("keeps an event name starting with audit. and nothing else", () => {
    expect(f.rec(record({ eventName: "audit.login" }))).toBe(true);
    expect(f.rec(record({ eventName: "audit." }))).toBe(true);
    expect(f.rec(record({ eventName: "audit" }))).toBe(false);
    expect(f.rec(record({ eventName: "auditlog.x" }))).toBe(false);
    expect(f.rec(record({ eventName: "my.audit.login" }))).toBe(false);
    expect(f.rec(record({ eventName: "Audit.login" }))).toBe(false);
  });

  it("reads only record attributes for audit, not resource or scope attributes", () => {
    expect(f.withResource(resource({ audit: bool(true) }))).toBe(false);
    expect(f.withScope(scope({ attributes: { audit: bool(true) } }))).toBe(false);
  });
});

describe("match any / all", () => {
  const conditions = [
    { record_attribute: "audit", exists: true },
    { event_name: { prefix: "audit." } },
  ];
  const both = record({ attributes: { audit: str("x") }, eventName: "audit.x" });
  const onlyAttr = record({ attributes: { audit: str("x") } });
  const onlyEvent = record({ eventName: "audit.x" });

  it("any keeps a record matching at least one condition (the default)", () => {
    for (const f of [filter({ conditions }), filter({ match: "any", conditions })]) {
      expect(f.rec(both)).toBe(true);
      expect(f.rec(onlyAttr)).toBe(true);
      expect(f.rec(onlyEvent)).toBe(true);
      expect(f.rec(record({}))).toBe(false);
    }
  });

  it("all keeps a record only when every condition matches", () => {
    const f = filter({ match: "all", conditions });
    expect(f.rec(both)).toBe(true);
    expect(f.rec(onlyAttr)).toBe(false);
    expect(f.rec(onlyEvent)).toBe(false);
    expect(f.rec(record({}))).toBe(false);
  });

  it("all with one condition is that condition", () => {
    const f = filter({ match: "all", conditions: [conditions[1]] });
    expect(f.rec(onlyEvent)).toBe(true);
    expect(f.rec(onlyAttr)).toBe(false);
  });
});

describe("attribute conditions: equals", () => {
  it("matches a string only against a string value", () => {
    const f = one({ record_attribute: "tenant", equals: "acme" });
    expect(f.rec(record({ attributes: { tenant: str("acme") } }))).toBe(true);
    expect(f.rec(record({ attributes: { tenant: str("acme2") } }))).toBe(false);
    expect(f.rec(record({ attributes: { tenant: list(str("acme")) } }))).toBe(false);
    expect(f.rec(record({ attributes: { other: str("acme") } }))).toBe(false);
  });

  it("matches a boolean only against a bool value", () => {
    const f = one({ record_attribute: "flag", equals: false });
    expect(f.rec(record({ attributes: { flag: bool(false) } }))).toBe(true);
    expect(f.rec(record({ attributes: { flag: bool(true) } }))).toBe(false);
    expect(f.rec(record({ attributes: { flag: str("false") } }))).toBe(false);
  });

  it("matches an integer against int values in every decoded form, and doubles", () => {
    const f = one({ record_attribute: "code", equals: 403 });
    expect(f.rec(record({ attributes: { code: int(403) } }))).toBe(true);
    expect(f.rec(record({ attributes: { code: int("403") } }))).toBe(true);
    expect(f.rec(record({ attributes: { code: int(long(403)) } }))).toBe(true);
    expect(f.rec(record({ attributes: { code: double(403) } }))).toBe(true);
    expect(f.rec(record({ attributes: { code: int(404) } }))).toBe(false);
    expect(f.rec(record({ attributes: { code: str("403") } }))).toBe(false);
  });

  it("compares 64-bit integers exactly", () => {
    const f = one({ record_attribute: "id", equals: 2 ** 32 + 5 });
    expect(f.rec(record({ attributes: { id: int(long(5, 1)) } }))).toBe(true);
    expect(f.rec(record({ attributes: { id: int(long(5, 0)) } }))).toBe(false);
    expect(f.rec(record({ attributes: { id: int("4294967301") } }))).toBe(true);
  });

  it("matches a fraction against double values only", () => {
    const f = one({ record_attribute: "ratio", equals: 0.5 });
    expect(f.rec(record({ attributes: { ratio: double(0.5) } }))).toBe(true);
    expect(f.rec(record({ attributes: { ratio: double(0.25) } }))).toBe(false);
    expect(f.rec(record({ attributes: { ratio: int(0) } }))).toBe(false);
    expect(f.rec(record({ attributes: { ratio: str("0.5") } }))).toBe(false);
  });

  it("matches any value of a list of mixed types", () => {
    const f = one({ record_attribute: "audit", equals: [true, "true", 1] });
    expect(f.rec(record({ attributes: { audit: bool(true) } }))).toBe(true);
    expect(f.rec(record({ attributes: { audit: str("true") } }))).toBe(true);
    expect(f.rec(record({ attributes: { audit: int(1) } }))).toBe(true);
    expect(f.rec(record({ attributes: { audit: str("1") } }))).toBe(false);
    expect(f.rec(record({ attributes: { audit: bool(false) } }))).toBe(false);
  });

  it("uses the first attribute with the key", () => {
    const r = record({});
    r.attributes = [
      { key: "k", value: str("first") },
      { key: "k", value: str("second") },
    ];
    expect(one({ record_attribute: "k", equals: "first" }).rec(r)).toBe(true);
    expect(one({ record_attribute: "k", equals: "second" }).rec(r)).toBe(false);
  });
});

describe("attribute conditions: prefix and exists", () => {
  it("prefix matches string values that start with it", () => {
    const f = one({ record_attribute: "http.route", prefix: "/admin/" });
    expect(f.rec(record({ attributes: { "http.route": str("/admin/users") } }))).toBe(true);
    expect(f.rec(record({ attributes: { "http.route": str("/admin") } }))).toBe(false);
    expect(f.rec(record({ attributes: { "http.route": str("/api/admin/") } }))).toBe(false);
    expect(f.rec(record({ attributes: { "http.route": int(1) } }))).toBe(false);
    expect(f.rec(record({ attributes: { "http.route": null } }))).toBe(false);
    expect(f.rec(record({}))).toBe(false);
  });

  it("exists matches a present attribute whatever its value", () => {
    const f = one({ record_attribute: "user.id", exists: true });
    expect(f.rec(record({ attributes: { "user.id": str("") } }))).toBe(true);
    expect(f.rec(record({ attributes: { "user.id": bool(false) } }))).toBe(true);
    expect(f.rec(record({ attributes: { "user.id": null } }))).toBe(true);
    expect(f.rec(record({ attributes: { "user.idx": str("u") } }))).toBe(false);
  });
});

describe("resource and scope attributes", () => {
  it("resource_attribute reads the resource, not the record", () => {
    const f = one({ resource_attribute: "service.name", equals: "payments" });
    expect(f.withResource(resource({ "service.name": str("payments") }))).toBe(true);
    expect(f.withResource(resource({ "service.name": str("orders") }))).toBe(false);
    expect(f.rec(record({ attributes: { "service.name": str("payments") } }))).toBe(false);
    expect(f.withResource(null)).toBe(false);
    expect(f.withResource(undefined)).toBe(false);
  });

  it("resource_attribute takes prefix and exists", () => {
    expect(
      one({ resource_attribute: "deployment.environment", prefix: "prod" }).withResource(
        resource({ "deployment.environment": str("production") }),
      ),
    ).toBe(true);
    expect(
      one({ resource_attribute: "k8s.pod.name", exists: true }).withResource(
        resource({ "k8s.pod.name": str("p") }),
      ),
    ).toBe(true);
  });

  it("scope_attribute reads the instrumentation scope", () => {
    const f = one({ scope_attribute: "audit.scope", equals: true });
    expect(f.withScope(scope({ attributes: { "audit.scope": bool(true) } }))).toBe(true);
    expect(f.withScope(scope({ attributes: { "audit.scope": bool(false) } }))).toBe(false);
    expect(f.rec(record({ attributes: { "audit.scope": bool(true) } }))).toBe(false);
    expect(f.withScope(null)).toBe(false);
  });
});

describe("text subjects: event_name, scope_name, severity_text", () => {
  it("event_name as a plain string is an exact match", () => {
    const f = one({ event_name: "user.login" });
    expect(f.rec(record({ eventName: "user.login" }))).toBe(true);
    expect(f.rec(record({ eventName: "user.login.failed" }))).toBe(false);
    expect(f.rec(record({ eventName: "" }))).toBe(false);
  });

  it("event_name takes {prefix}", () => {
    const f = one({ event_name: { prefix: "security." } });
    expect(f.rec(record({ eventName: "security.alert" }))).toBe(true);
    expect(f.rec(record({ eventName: "security" }))).toBe(false);
  });

  it("event_name takes {equals} with one name or a list", () => {
    expect(one({ event_name: { equals: "a.b" } }).rec(record({ eventName: "a.b" }))).toBe(true);
    const f = one({ event_name: { equals: ["user.login", "user.logout"] } });
    expect(f.rec(record({ eventName: "user.login" }))).toBe(true);
    expect(f.rec(record({ eventName: "user.logout" }))).toBe(true);
    expect(f.rec(record({ eventName: "user.delete" }))).toBe(false);
  });

  it("scope_name matches the instrumentation scope's name", () => {
    const f = one({ scope_name: { prefix: "com.acme.audit" } });
    expect(f.withScope(scope({ name: "com.acme.audit.http" }))).toBe(true);
    expect(f.withScope(scope({ name: "com.acme.web" }))).toBe(false);
    expect(f.withScope(null)).toBe(false);
    expect(one({ scope_name: "audit-lib" }).withScope(scope({ name: "audit-lib" }))).toBe(true);
    expect(one({ scope_name: "audit-lib" }).withScope(scope({ name: "audit-lib2" }))).toBe(false);
  });

  it("severity_text matches the text exactly (case-sensitive) or by list or prefix", () => {
    expect(one({ severity_text: "AUDIT" }).rec(record({ severityText: "AUDIT" }))).toBe(true);
    expect(one({ severity_text: "AUDIT" }).rec(record({ severityText: "audit" }))).toBe(false);
    const f = one({ severity_text: { equals: ["NOTICE", "AUDIT"] } });
    expect(f.rec(record({ severityText: "NOTICE" }))).toBe(true);
    expect(f.rec(record({ severityText: "INFO" }))).toBe(false);
    expect(
      one({ severity_text: { prefix: "SEC" } }).rec(record({ severityText: "SECURITY" })),
    ).toBe(true);
  });
});

describe("severity_number", () => {
  const sev = (severityNumber: number) => record({ severityNumber });
  const matching = (condition: unknown) => {
    const f = one({ severity_number: condition });
    return Array.from({ length: 25 }, (_, n) => n).filter((n) => f.rec(sev(n)));
  };
  const range = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => from + i);

  it("numeric min and max are inclusive", () => {
    expect(matching({ min: 13 })).toEqual(range(13, 24));
    expect(matching({ max: 12 })).toEqual(range(0, 12));
    expect(matching({ min: 9, max: 16 })).toEqual(range(9, 16));
    expect(matching({ min: 17, max: 17 })).toEqual([17]);
  });

  it("a named min starts at the level's first number", () => {
    expect(matching({ min: "ERROR" })).toEqual(range(17, 24));
    expect(matching({ min: "WARN" })).toEqual(range(13, 24));
    expect(matching({ min: "TRACE" })).toEqual(range(1, 24));
    expect(matching({ min: "FATAL" })).toEqual(range(21, 24));
  });

  it("a named max covers the whole level (max WARN includes WARN4 = 16)", () => {
    expect(matching({ max: "WARN" })).toEqual(range(0, 16));
    expect(matching({ max: "DEBUG" })).toEqual(range(0, 8));
    expect(matching({ max: "FATAL" })).toEqual(range(0, 24));
  });

  it("a named range selects whole levels", () => {
    expect(matching({ min: "INFO", max: "WARN" })).toEqual(range(9, 16));
    expect(matching({ min: "ERROR", max: "ERROR" })).toEqual(range(17, 20));
  });

  it("max includes UNSPECIFIED (0), as severity_number <= N does in OTTL", () => {
    expect(one({ severity_number: { max: "INFO" } }).rec(sev(0))).toBe(true);
    expect(one({ severity_number: { min: "TRACE" } }).rec(sev(0))).toBe(false);
  });
});

describe("conditions on records with nothing set", () => {
  it("match nothing except a max-only severity range", () => {
    const empty = record({});
    const conditions = [
      { record_attribute: "a", exists: true },
      { resource_attribute: "a", exists: true },
      { scope_attribute: "a", exists: true },
      { event_name: { prefix: "a" } },
      { scope_name: { prefix: "a" } },
      { severity_text: { prefix: "a" } },
      { severity_number: { min: 1 } },
    ];
    for (const c of conditions) expect(one(c).rec(empty), JSON.stringify(c)).toBe(false);
  });
});

import type {
  AnyValue,
  EntityRef,
  InstrumentationScope,
  Int64,
  KeyValue,
  LogRecord,
  Resource,
} from "./model.js";

/**
 * Writes OTLP log data as RFC 8785 canonical JSON in the OTLP/JSON mapping, directly from
 * the decoded message: every object's keys are known in advance, so they are emitted in
 * sorted order without building intermediate objects or sorting at run time.
 *
 * Rules (normative text: docs/integrity-format.md §3):
 * - lowerCamelCase names; fields at their proto3 default (0, "", empty list, unset
 *   message) are omitted; an unset AnyValue is `{}`.
 * - 64-bit integers as decimal strings; 32-bit integers and enums as JSON numbers.
 * - trace/span ids as lowercase hex; other bytes as padded standard base64.
 * - doubles as ECMAScript numbers; NaN and ±Infinity as the strings "NaN", "Infinity",
 *   "-Infinity" (proto3 JSON), since RFC 8785 has no number for them.
 */

const TWO32 = 4294967296n;

/** Decimal text of a 64-bit integer in any of the shapes the decoders produce. */
export function toDecimal(v: Int64): string {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  const low = v.low >>> 0;
  if (v.high === 0) return String(low);
  if (v.unsigned) return (BigInt(v.high >>> 0) * TWO32 + BigInt(low)).toString();
  return (BigInt(v.high) * TWO32 + BigInt(low)).toString();
}

function isZero(v: Int64): boolean {
  if (typeof v === "string") return v === "0" || v === "";
  if (typeof v === "number") return v === 0;
  return v.low === 0 && v.high === 0;
}

const str = JSON.stringify as (s: string) => string;

function bytesToHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

function bytesToBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

function doubleJson(d: number): string {
  if (Number.isFinite(d)) return JSON.stringify(d);
  return Number.isNaN(d) ? '"NaN"' : d > 0 ? '"Infinity"' : '"-Infinity"';
}

export function anyValueJson(v: AnyValue): string {
  switch (v.value) {
    case "stringValue":
      return `{"stringValue":${str(v.stringValue as string)}}`;
    case "boolValue":
      return `{"boolValue":${v.boolValue === true}}`;
    case "intValue":
      return `{"intValue":"${toDecimal(v.intValue as Int64)}"}`;
    case "doubleValue":
      return `{"doubleValue":${doubleJson(v.doubleValue as number)}}`;
    case "bytesValue":
      return `{"bytesValue":"${bytesToBase64(v.bytesValue as Uint8Array)}"}`;
    case "arrayValue": {
      const values = v.arrayValue?.values ?? [];
      if (values.length === 0) return '{"arrayValue":{}}';
      let out = '{"arrayValue":{"values":[';
      for (let i = 0; i < values.length; i++) {
        if (i > 0) out += ",";
        out += anyValueJson(values[i] as AnyValue);
      }
      return `${out}]}}`;
    }
    case "kvlistValue": {
      const values = v.kvlistValue?.values ?? [];
      if (values.length === 0) return '{"kvlistValue":{}}';
      return `{"kvlistValue":{"values":${keyValuesJson(values)}}}`;
    }
    default:
      return "{}";
  }
}

export function keyValuesJson(list: KeyValue[]): string {
  let out = "[";
  for (let i = 0; i < list.length; i++) {
    const kv = list[i] as KeyValue;
    if (i > 0) out += ",";
    out += `{"key":${str(kv.key)}`;
    if (kv.value != null) out += `,"value":${anyValueJson(kv.value)}`;
    out += "}";
  }
  return `${out}]`;
}

/** Appends `,"name":value` or, for the first member, `"name":value`. */
function member(out: string, name: string, value: string): string {
  return out.length === 1 ? `${out}"${name}":${value}` : `${out},"${name}":${value}`;
}

function stringListJson(list: string[]): string {
  return `[${list.map(str).join(",")}]`;
}

function entityRefJson(e: EntityRef): string {
  let out = "{";
  if (e.descriptionKeys.length > 0)
    out = member(out, "descriptionKeys", stringListJson(e.descriptionKeys));
  if (e.idKeys.length > 0) out = member(out, "idKeys", stringListJson(e.idKeys));
  if (e.schemaUrl !== "") out = member(out, "schemaUrl", str(e.schemaUrl));
  if (e.type !== "") out = member(out, "type", str(e.type));
  return `${out}}`;
}

export function resourceJson(r: Resource): string {
  let out = "{";
  if (r.attributes.length > 0) out = member(out, "attributes", keyValuesJson(r.attributes));
  if (r.droppedAttributesCount !== 0)
    out = member(out, "droppedAttributesCount", String(r.droppedAttributesCount));
  if (r.entityRefs.length > 0)
    out = member(out, "entityRefs", `[${r.entityRefs.map(entityRefJson).join(",")}]`);
  return `${out}}`;
}

export function scopeJson(s: InstrumentationScope): string {
  let out = "{";
  if (s.attributes.length > 0) out = member(out, "attributes", keyValuesJson(s.attributes));
  if (s.droppedAttributesCount !== 0)
    out = member(out, "droppedAttributesCount", String(s.droppedAttributesCount));
  if (s.name !== "") out = member(out, "name", str(s.name));
  if (s.version !== "") out = member(out, "version", str(s.version));
  return `${out}}`;
}

export function logRecordJson(r: LogRecord): string {
  let out = "{";
  if (r.attributes.length > 0) out = member(out, "attributes", keyValuesJson(r.attributes));
  if (r.body != null) out = member(out, "body", anyValueJson(r.body));
  if (r.droppedAttributesCount !== 0)
    out = member(out, "droppedAttributesCount", String(r.droppedAttributesCount));
  if (r.eventName !== "") out = member(out, "eventName", str(r.eventName));
  if (r.flags !== 0) out = member(out, "flags", String(r.flags >>> 0));
  if (!isZero(r.observedTimeUnixNano))
    out = member(out, "observedTimeUnixNano", `"${toDecimal(r.observedTimeUnixNano)}"`);
  if (r.severityNumber !== 0) out = member(out, "severityNumber", String(r.severityNumber));
  if (r.severityText !== "") out = member(out, "severityText", str(r.severityText));
  if (r.spanId.length > 0) out = member(out, "spanId", `"${bytesToHex(r.spanId)}"`);
  if (!isZero(r.timeUnixNano)) out = member(out, "timeUnixNano", `"${toDecimal(r.timeUnixNano)}"`);
  if (r.traceId.length > 0) out = member(out, "traceId", `"${bytesToHex(r.traceId)}"`);
  return `${out}}`;
}

/**
 * The part of a record's canonical object that belongs to its ResourceLogs and ScopeLogs,
 * computed once per resource/scope and shared by all their records: the members that sort
 * after "logRecord" (`resource`, `resourceSchemaUrl`, `scope`, `scopeSchemaUrl`).
 */
export function contextSuffix(
  resource: Resource | null | undefined,
  resourceSchemaUrl: string,
  scope: InstrumentationScope | null | undefined,
  scopeSchemaUrl: string,
): string {
  let out = "";
  if (resource != null) out += `,"resource":${resourceJson(resource)}`;
  if (resourceSchemaUrl !== "") out += `,"resourceSchemaUrl":${str(resourceSchemaUrl)}`;
  if (scope != null) out += `,"scope":${scopeJson(scope)}`;
  if (scopeSchemaUrl !== "") out += `,"scopeSchemaUrl":${str(scopeSchemaUrl)}`;
  return `${out}}`;
}

/** The canonical `record` member value: `{"logRecord":…,"resource":…,…}`. */
export function recordJson(r: LogRecord, suffix: string): string {
  return `{"logRecord":${logRecordJson(r)}${suffix}`;
}

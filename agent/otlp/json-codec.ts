import { AgentError } from "../common/errors.js";
import type {
  AnyValue,
  EntityRef,
  ExportLogsServiceRequest,
  InstrumentationScope,
  KeyValue,
  LogRecord,
  Resource,
  ResourceLogs,
  ScopeLogs,
} from "./model.js";

/**
 * OTLP/JSON decoding (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).
 *
 * Strict about types: a value of the wrong type is an error naming its path, because a
 * record that silently lost a field would be chained and signed in its damaged form.
 * Lenient about spelling, like the Collector: lowerCamelCase or the proto's snake_case
 * keys, 64-bit integers as decimal strings or JSON numbers, enums as integers or names,
 * `null` as "not set". Unknown keys are ignored, as protojson's DiscardUnknown does.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const EMPTY = new Uint8Array(0);
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

class JsonShapeError extends Error {}

function fail(path: string, what: string, got: Json | undefined): never {
  const shown = got === undefined ? "nothing" : JSON.stringify(got)?.slice(0, 60);
  throw new JsonShapeError(`${path}: expected ${what}, got ${shown}`);
}

/** Reads `obj[camel]` or `obj[snake]`; null counts as absent. */
function field(obj: JsonObject, camel: string, snake: string): Json | undefined {
  const v = obj[camel] ?? obj[snake];
  return v === null ? undefined : v;
}

function asObject(v: Json | undefined, path: string): JsonObject {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(path, "an object", v);
  return v as JsonObject;
}

function asArray(v: Json | undefined, path: string): Json[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail(path, "an array", v);
  return v;
}

function asString(v: Json | undefined, path: string): string {
  if (v === undefined) return "";
  if (typeof v !== "string") fail(path, "a string", v);
  // RFC 8785 (and UTF-8 on the wire) cannot carry lone surrogates: refuse rather than alter.
  if (!v.isWellFormed()) fail(path, "a well-formed Unicode string", "<lone surrogate>");
  return v;
}

function asBool(v: Json | undefined, path: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== "boolean") fail(path, "true or false", v);
  return v;
}

function asDouble(v: Json | undefined, path: string): number {
  if (v === undefined) return 0;
  if (typeof v === "number") return v;
  if (v === "NaN") return Number.NaN;
  if (v === "Infinity") return Number.POSITIVE_INFINITY;
  if (v === "-Infinity") return Number.NEGATIVE_INFINITY;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return fail(path, "a number", v);
}

function parseInteger(v: Json | undefined, path: string, min: bigint, max: bigint): bigint {
  if (v === undefined) return 0n;
  let n: bigint;
  if (typeof v === "number") {
    if (!Number.isInteger(v)) fail(path, "an integer", v);
    // JSON.parse has already rounded anything beyond 2^53: refuse rather than store a different value.
    if (!Number.isSafeInteger(v))
      fail(
        path,
        "a decimal string for an integer this large (JSON numbers above 2^53 lose precision)",
        v,
      );
    n = BigInt(v);
  } else if (typeof v === "string" && /^-?\d+$/.test(v)) {
    n = BigInt(v);
  } else {
    return fail(path, "an integer (a JSON number or a decimal string)", v);
  }
  if (n < min || n > max) fail(path, `an integer between ${min} and ${max}`, v);
  return n;
}

/** 64-bit values are kept as normalized decimal strings ("007" becomes "7"). */
function asUint64(v: Json | undefined, path: string): string {
  return parseInteger(v, path, 0n, U64_MAX).toString();
}

function asInt64(v: Json | undefined, path: string): string {
  return parseInteger(v, path, I64_MIN, I64_MAX).toString();
}

function asUint32(v: Json | undefined, path: string): number {
  return Number(parseInteger(v, path, 0n, 0xffffffffn));
}

const SEVERITY_NAMES = [
  "UNSPECIFIED",
  "TRACE",
  "TRACE2",
  "TRACE3",
  "TRACE4",
  "DEBUG",
  "DEBUG2",
  "DEBUG3",
  "DEBUG4",
  "INFO",
  "INFO2",
  "INFO3",
  "INFO4",
  "WARN",
  "WARN2",
  "WARN3",
  "WARN4",
  "ERROR",
  "ERROR2",
  "ERROR3",
  "ERROR4",
  "FATAL",
  "FATAL2",
  "FATAL3",
  "FATAL4",
];

function asSeverity(v: Json | undefined, path: string): number {
  if (typeof v === "string" && v.startsWith("SEVERITY_NUMBER_")) {
    const n = SEVERITY_NAMES.indexOf(v.slice("SEVERITY_NUMBER_".length));
    if (n >= 0) return n;
  }
  if (typeof v === "string" && !/^-?\d+$/.test(v)) {
    fail(path, "a SeverityNumber (an integer or a SEVERITY_NUMBER_* name)", v);
  }
  return Number(parseInteger(v, path, -(2n ** 31n), 2n ** 31n - 1n));
}

/** Trace and span ids are hex in OTLP/JSON (not base64 as in plain proto3 JSON). */
function asHexId(v: Json | undefined, path: string, bytes: number): Uint8Array {
  if (v === undefined || v === "") return EMPTY;
  if (typeof v !== "string" || v.length !== bytes * 2 || !/^[0-9a-fA-F]+$/.test(v)) {
    fail(path, `${bytes * 2} hex digits`, v);
  }
  return Buffer.from(v, "hex");
}

function asBase64(v: Json | undefined, path: string): Uint8Array {
  if (v === undefined) return EMPTY;
  if (typeof v !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) fail(path, "base64 bytes", v);
  const encoding = v.includes("-") || v.includes("_") ? "base64url" : "base64";
  const bytes = Buffer.from(v, encoding);
  // Node decodes leniently (dropping stray trailing bits); only accept text that re-encodes to itself.
  if (bytes.toString(encoding).replace(/=+$/, "") !== v.replace(/=+$/, ""))
    fail(path, "base64 of a valid length", v);
  return bytes;
}

function anyValue(v: Json | undefined, path: string): AnyValue {
  const o = asObject(v, path);
  let out: AnyValue | null = null;
  const set = (value: AnyValue) => {
    if (out !== null) fail(path, "at most one of the AnyValue fields", o);
    out = value;
  };
  let x = field(o, "stringValue", "string_value");
  if (x !== undefined)
    set({ value: "stringValue", stringValue: asString(x, `${path}.stringValue`) });
  x = field(o, "boolValue", "bool_value");
  if (x !== undefined) set({ value: "boolValue", boolValue: asBool(x, `${path}.boolValue`) });
  x = field(o, "intValue", "int_value");
  if (x !== undefined) set({ value: "intValue", intValue: asInt64(x, `${path}.intValue`) });
  x = field(o, "doubleValue", "double_value");
  if (x !== undefined)
    set({ value: "doubleValue", doubleValue: asDouble(x, `${path}.doubleValue`) });
  x = field(o, "bytesValue", "bytes_value");
  if (x !== undefined) set({ value: "bytesValue", bytesValue: asBase64(x, `${path}.bytesValue`) });
  x = field(o, "arrayValue", "array_value");
  if (x !== undefined) {
    const p = `${path}.arrayValue`;
    const values = asArray(field(asObject(x, p), "values", "values"), `${p}.values`);
    set({
      value: "arrayValue",
      arrayValue: { values: values.map((e, i) => anyValue(e, `${p}.values[${i}]`)) },
    });
  }
  x = field(o, "kvlistValue", "kvlist_value");
  if (x !== undefined) {
    const p = `${path}.kvlistValue`;
    const values = asArray(field(asObject(x, p), "values", "values"), `${p}.values`);
    set({ value: "kvlistValue", kvlistValue: { values: keyValues(values, `${p}.values`) } });
  }
  return out ?? { value: null };
}

function keyValues(list: Json[], path: string): KeyValue[] {
  const out: KeyValue[] = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const p = `${path}[${i}]`;
    const o = asObject(list[i], p);
    const value = field(o, "value", "value");
    out[i] = {
      key: asString(field(o, "key", "key"), `${p}.key`),
      value: value === undefined ? null : anyValue(value, `${p}.value`),
    };
  }
  return out;
}

function attributes(o: JsonObject, path: string): KeyValue[] {
  return keyValues(
    asArray(field(o, "attributes", "attributes"), `${path}.attributes`),
    `${path}.attributes`,
  );
}

function entityRef(v: Json, path: string): EntityRef {
  const o = asObject(v, path);
  const strings = (camel: string, snake: string) =>
    asArray(field(o, camel, snake), `${path}.${camel}`).map((s, i) =>
      asString(s, `${path}.${camel}[${i}]`),
    );
  return {
    schemaUrl: asString(field(o, "schemaUrl", "schema_url"), `${path}.schemaUrl`),
    type: asString(field(o, "type", "type"), `${path}.type`),
    idKeys: strings("idKeys", "id_keys"),
    descriptionKeys: strings("descriptionKeys", "description_keys"),
  };
}

function resource(v: Json | undefined, path: string): Resource | null {
  if (v === undefined) return null;
  const o = asObject(v, path);
  return {
    attributes: attributes(o, path),
    droppedAttributesCount: asUint32(
      field(o, "droppedAttributesCount", "dropped_attributes_count"),
      `${path}.droppedAttributesCount`,
    ),
    entityRefs: asArray(field(o, "entityRefs", "entity_refs"), `${path}.entityRefs`).map((e, i) =>
      entityRef(e, `${path}.entityRefs[${i}]`),
    ),
  };
}

function scope(v: Json | undefined, path: string): InstrumentationScope | null {
  if (v === undefined) return null;
  const o = asObject(v, path);
  return {
    name: asString(field(o, "name", "name"), `${path}.name`),
    version: asString(field(o, "version", "version"), `${path}.version`),
    attributes: attributes(o, path),
    droppedAttributesCount: asUint32(
      field(o, "droppedAttributesCount", "dropped_attributes_count"),
      `${path}.droppedAttributesCount`,
    ),
  };
}

function logRecord(v: Json, path: string): LogRecord {
  const o = asObject(v, path);
  const body = field(o, "body", "body");
  return {
    timeUnixNano: asUint64(field(o, "timeUnixNano", "time_unix_nano"), `${path}.timeUnixNano`),
    observedTimeUnixNano: asUint64(
      field(o, "observedTimeUnixNano", "observed_time_unix_nano"),
      `${path}.observedTimeUnixNano`,
    ),
    severityNumber: asSeverity(
      field(o, "severityNumber", "severity_number"),
      `${path}.severityNumber`,
    ),
    severityText: asString(field(o, "severityText", "severity_text"), `${path}.severityText`),
    body: body === undefined ? null : anyValue(body, `${path}.body`),
    attributes: attributes(o, path),
    droppedAttributesCount: asUint32(
      field(o, "droppedAttributesCount", "dropped_attributes_count"),
      `${path}.droppedAttributesCount`,
    ),
    flags: asUint32(field(o, "flags", "flags"), `${path}.flags`),
    traceId: asHexId(field(o, "traceId", "trace_id"), `${path}.traceId`, 16),
    spanId: asHexId(field(o, "spanId", "span_id"), `${path}.spanId`, 8),
    eventName: asString(field(o, "eventName", "event_name"), `${path}.eventName`),
  };
}

function scopeLogs(v: Json, path: string): ScopeLogs {
  const o = asObject(v, path);
  const records = asArray(field(o, "logRecords", "log_records"), `${path}.logRecords`);
  return {
    scope: scope(field(o, "scope", "scope"), `${path}.scope`),
    logRecords: records.map((r, i) => logRecord(r, `${path}.logRecords[${i}]`)),
    schemaUrl: asString(field(o, "schemaUrl", "schema_url"), `${path}.schemaUrl`),
  };
}

function resourceLogs(v: Json, path: string): ResourceLogs {
  const o = asObject(v, path);
  const scopes = asArray(field(o, "scopeLogs", "scope_logs"), `${path}.scopeLogs`);
  return {
    resource: resource(field(o, "resource", "resource"), `${path}.resource`),
    scopeLogs: scopes.map((s, i) => scopeLogs(s, `${path}.scopeLogs[${i}]`)),
    schemaUrl: asString(field(o, "schemaUrl", "schema_url"), `${path}.schemaUrl`),
  };
}

/** Decodes an OTLP/JSON ExportLogsServiceRequest; throws AgentError OTLP_BAD_JSON. */
export function decodeLogsRequestJson(body: Uint8Array): ExportLogsServiceRequest {
  // A zero-byte body is an empty request, as it is in protobuf: it succeeds and stores nothing.
  if (body.byteLength === 0) return { resourceLogs: [] };
  let parsed: Json;
  try {
    parsed = JSON.parse(
      Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"),
    );
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new AgentError("OTLP_BAD_JSON", `request body is not valid JSON: ${why}`);
  }
  try {
    const o = asObject(parsed, "request");
    const list = asArray(field(o, "resourceLogs", "resource_logs"), "resourceLogs");
    return { resourceLogs: list.map((r, i) => resourceLogs(r, `resourceLogs[${i}]`)) };
  } catch (err) {
    if (err instanceof JsonShapeError) {
      throw new AgentError(
        "OTLP_BAD_JSON",
        `request is not a valid OTLP/JSON ExportLogsServiceRequest: ${err.message}`,
      );
    }
    throw err;
  }
}

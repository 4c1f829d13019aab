/**
 * RFC 8785 JSON Canonicalization Scheme, the general form: object members sorted by their
 * UTF-16 code units, no whitespace, strings and numbers serialized as ECMAScript's
 * JSON.stringify does. The agent's hot path writes canonical records with a specialized
 * serializer (canonical-record.ts); this one is the reference it is tested against, and
 * the one used for manifests and by verifiers.
 */
export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A lone (unpaired) surrogate: in a `u` regexp a pair is one code point and does not match. */
export const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** JSON.stringify of a string, refusing one RFC 8785 (I-JSON) cannot hold. */
function stringToken(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new TypeError("RFC 8785 cannot represent a lone surrogate");
  return JSON.stringify(s);
}

export function canonicalize(value: JsonValue): string {
  if (value === null || typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("RFC 8785 cannot represent NaN or Infinity");
    return JSON.stringify(value);
  }
  if (typeof value === "string") return stringToken(value);
  if (Array.isArray(value)) return `[${value.map(canonicalize).join(",")}]`;
  // Default sort compares UTF-16 code units, which is exactly what RFC 8785 §3.2.3 asks.
  const keys = Object.keys(value).sort();
  let out = "{";
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    if (i > 0) out += ",";
    out += `${stringToken(k)}:${canonicalize(value[k] as JsonValue)}`;
  }
  return `${out}}`;
}

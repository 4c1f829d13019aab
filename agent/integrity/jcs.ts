/**
 * RFC 8785 JSON Canonicalization Scheme, the general form: object members sorted by their
 * UTF-16 code units, no whitespace, strings and numbers serialized as ECMAScript's
 * JSON.stringify does. The agent's hot path writes canonical records with a specialized
 * serializer (canonical-record.ts); this one is the reference it is tested against, and
 * the one used for manifests and by verifiers.
 *
 * It walks the value with a stack of its own, not by recursion: a verifier serializes values
 * read from storage, which may be nested as deep as their text allows, and the answer must
 * not depend on how much of the call stack is left.
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

function scalarToken(value: unknown): string {
  if (value === null || typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("RFC 8785 cannot represent NaN or Infinity");
    return JSON.stringify(value);
  }
  if (typeof value === "string") return stringToken(value);
  throw new TypeError(`not a JSON value: ${typeof value}`);
}

/** An array or object being written: its members (sorted names for an object) and the next. */
interface Open {
  array: JsonValue[] | null;
  object: { [key: string]: JsonValue } | null;
  keys: string[];
  next: number;
}

export function canonicalize(value: JsonValue): string {
  let out = "";
  const open: Open[] = [];
  let v: JsonValue = value;
  for (;;) {
    if (v === null || typeof v !== "object") out += scalarToken(v);
    else if (Array.isArray(v)) {
      out += "[";
      open.push({ array: v, object: null, keys: [], next: 0 });
    } else {
      out += "{";
      // Default sort compares UTF-16 code units, which is exactly what RFC 8785 §3.2.3 asks.
      open.push({ array: null, object: v, keys: Object.keys(v).sort(), next: 0 });
    }
    // Find the next value to write, closing what is done.
    for (;;) {
      const top = open[open.length - 1];
      if (top === undefined) return out;
      const i = top.next++;
      if (top.array !== null && i < top.array.length) {
        if (i > 0) out += ",";
        v = top.array[i] as JsonValue;
        break;
      }
      if (top.object !== null && i < top.keys.length) {
        const k = top.keys[i] as string;
        out += `${i > 0 ? "," : ""}${stringToken(k)}:`;
        v = top.object[k] as JsonValue;
        break;
      }
      out += top.array !== null ? "]" : "}";
      open.pop();
    }
  }
}

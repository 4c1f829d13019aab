/**
 * What a JSON parser hides, found in the stored text itself, by one iterative scan (no
 * recursion: a line can be nested as deep as its length allows):
 *
 * - **Repeated member names.** JSON.parse keeps the last value of a repeated name and says
 *   nothing; a first-wins reader keeps the first. A line with a repeated name therefore
 *   means different things to different verifiers, and no line the agent writes has one
 *   (docs/integrity-format.md §4, §6.2): it is `malformed`.
 * - **Nesting deeper than any line the agent writes.** The verifier's canonical checks and
 *   RFC 8785 serialization walk values; such a line is refused before they see it, so it
 *   is reported the same way on every run, whatever the stack allows.
 *
 * The scan does not check that the text is JSON: it returns null for text it cannot read,
 * and the parser that runs next says what is wrong with it.
 */

/**
 * How deep the receivers let OTLP AnyValues nest, on every transport (MAX_ANY_VALUE_DEPTH in
 * agent/otlp/model.ts, which this layer cannot import): a body or a top-level attribute value
 * is level 1, a value inside an `arrayValue`, or in a KeyValue of a `kvlistValue`, one level
 * below the value holding it. test/integration/verify-hardening.test.ts checks that the
 * deepest record the agent stores is exactly MAX_LINE_DEPTH deep.
 */
export const MAX_VALUE_DEPTH = 64;

/**
 * The deepest nesting of objects and arrays in a line the agent writes, counting the line's
 * own object as 1. A top-level attribute value is at level 6 (envelope, `record`,
 * `logRecord`, `attributes`, the KeyValue, its value; the body is at 4); each level of
 * AnyValue nesting adds at most 4 (`{"kvlistValue":{"values":[{"key":…,"value":…}]}}`, an
 * `arrayValue` adds 3), and the deepest value may still open three more without a value
 * deeper (`{"kvlistValue":{"values":[{"key":"k"}]}}`, a KeyValue with no value):
 * 6 + 4 × 63 + 3 = 261. Manifest lines are 2 deep.
 */
export const MAX_LINE_DEPTH = 6 + 4 * (MAX_VALUE_DEPTH - 1) + 3;

/** Set by stringEnd: whether the string just scanned holds an escape. */
let lastStringEscaped = false;

/**
 * What makes the JSON text `text` unacceptable before it is parsed: a repeated member name
 * in any object, or nesting deeper than `maxDepth`; null when neither is found (the text
 * may still be invalid JSON).
 */
export function jsonStructureProblem(text: string, maxDepth = MAX_LINE_DEPTH): string | null {
  // Per open container, by depth (1 = outermost): whether it is an object, and the member
  // names seen in it. Names usually come sorted (canonical text), so a Set is made only
  // once a name is not above the one before it.
  const isObject: boolean[] = [];
  const names: string[][] = [];
  const nameSets: (Set<string> | null)[] = [];
  let depth = 0;
  let expectName = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const end = stringEnd(text, i);
      if (end < 0) return null; // unterminated: the parser reports it
      if (expectName && depth > 0) {
        const name = nameOf(text, i, end);
        if (name === null) return null;
        if (!addName(names[depth] as string[], nameSets, depth, name))
          return `repeated member name ${JSON.stringify(name)} at character ${i + 1}: JSON readers disagree on which value counts`;
        expectName = false;
      }
      i = end - 1;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth)
        return `nested deeper than ${maxDepth} levels (at character ${i + 1}); no line the agent writes is`;
      const object = c === 0x7b;
      isObject[depth] = object;
      if (object) {
        const list = names[depth];
        if (list) list.length = 0;
        else names[depth] = [];
        nameSets[depth] = null;
      }
      expectName = object;
    } else if (c === 0x7d || c === 0x5d) {
      if (--depth < 0) return null;
      expectName = false;
    } else if (c === 0x2c) {
      expectName = depth > 0 && isObject[depth] === true;
    } else if (c === 0x3a) {
      expectName = false;
    }
  }
  return null;
}

/** Adds `name` to the names of the object at `depth`; false when it is already there. */
function addName(
  list: string[],
  sets: (Set<string> | null)[],
  depth: number,
  name: string,
): boolean {
  let set = sets[depth] ?? null;
  if (set === null) {
    const last = list[list.length - 1];
    if (last === undefined || last < name) {
      list.push(name);
      return true;
    }
    set = new Set(list);
    sets[depth] = set;
  }
  if (set.has(name)) return false;
  set.add(name);
  list.push(name);
  return true;
}

/** The index just past the string token whose opening quote is at `i`, or -1. */
function stringEnd(s: string, i: number): number {
  let escaped = false;
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x22) {
      lastStringEscaped = escaped;
      return j + 1;
    }
    if (c === 0x5c) {
      escaped = true;
      j++;
    }
  }
  return -1;
}

/** The member name the string token s[i, end) spells, or null when it is not a JSON string. */
function nameOf(s: string, i: number, end: number): string | null {
  if (!lastStringEscaped) return s.slice(i + 1, end - 1);
  try {
    return JSON.parse(s.slice(i, end)) as string; // "\u0061" and "a" are the same name
  } catch {
    return null;
  }
}

/**
 * Whether a parsed JSON value nests objects and arrays deeper than `maxDepth` (the value
 * itself counting as 1), found without recursion: for values a backend hands over already
 * parsed, before anything walks them recursively.
 */
export function nestedDeeperThan(value: unknown, maxDepth = MAX_LINE_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [v, depth] = top;
    if (typeof v !== "object" || v === null) continue;
    if (depth > maxDepth) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v))
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}

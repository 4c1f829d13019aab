import type { Schema, z } from "../common/zod.js";
import type { TypedReference } from "./expand.js";
import type { ConfigProblems, Path } from "./parse-problems.js";

/**
 * Validation of parts of a config against their zod schemas for parseConfig (load.ts): the
 * issues are reported in the words of YAML, each at its place in the file.
 */

/** Validates `value`, the setting at `base`; on failure reports why and gives undefined. */
export type Validate = <S extends Schema>(
  schema: S,
  value: unknown,
  base: Path,
) => z.output<S> | undefined;

/**
 * A Validate reporting to `problems`. `typedRefs` are the whole ${env:…} values that were
 * typed as YAML, for the settings that take their text instead.
 */
export function schemaValidator(
  problems: ConfigProblems,
  typedRefs: readonly TypedReference[],
): Validate {
  return (schema, value, base) => {
    let r = schema.safeParse(value);
    if (!r.success) {
      const retyped = asText(value, base, r.error.issues, typedRefs);
      if (retyped !== undefined) r = schema.safeParse(retyped);
    }
    if (r.success) return r.data;
    for (const issue of r.error.issues) {
      const path = [...base, ...(issue.path as Path)];
      if (issue.code === "unrecognized_keys") {
        // One problem per key, located at the key and named by its full path.
        for (const key of issue.keys) problems.unknownKey(path, key);
      } else problems.add(path, issue.message);
    }
    return undefined;
  };
}

/**
 * A whole ${env:…} value is typed as YAML (port: ${env:PORT} is a number), but where a
 * setting takes a string it gets the variable's text, as in the Collector. Returns a copy of
 * `value` with the text put back where `issues` ask for a string, or undefined when none do.
 */
function asText(
  value: unknown,
  base: Path,
  issues: readonly z.ZodIssue[],
  typedRefs: readonly TypedReference[],
): unknown {
  let patched: unknown;
  for (const issue of issues) {
    const path = issue.path as Path;
    const wantsText =
      issue.code === "invalid_union" ||
      // zod 3 names an enum's values as the type it expected: 'a' | 'b', all text.
      (issue.code === "invalid_type" &&
        (issue.expected === "string" || issue.expected.startsWith("'")));
    const at = JSON.stringify([...base, ...path]);
    const ref = typedRefs.find((t) => JSON.stringify(t.path) === at);
    if (!wantsText || !ref || path.length === 0) continue;
    patched ??= structuredClone(value);
    let node = patched as Record<string | number, unknown>;
    for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
    node[path[path.length - 1] as string | number] = ref.text;
  }
  return patched;
}

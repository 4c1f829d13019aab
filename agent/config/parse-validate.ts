import type { z } from "zod";
import type { TypedReference } from "./expand.js";
import type { ConfigProblems, Path } from "./parse-problems.js";

/**
 * Validation of parts of a config against their zod schemas for parseConfig (load.ts): the
 * issues are reported in the words of YAML, each at its place in the file.
 */

/** Validates `value`, the setting at `base`; on failure reports why and gives undefined. */
export type Validate = <S extends z.ZodType>(
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
    let r = schema.safeParse(value, { reportInput: true });
    if (!r.success) {
      const retyped = asText(value, base, r.error.issues, typedRefs);
      if (retyped !== undefined) r = schema.safeParse(retyped, { reportInput: true });
    }
    if (r.success) return r.data;
    for (const issue of r.error.issues) {
      const path = [...base, ...(issue.path as Path)];
      if (issue.code === "unrecognized_keys") {
        // One problem per key, located at the key and named by its full path.
        for (const key of issue.keys) problems.unknownKey(path, key);
      } else problems.add(path, issueMessage(issue));
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
  issues: readonly z.core.$ZodIssue[],
  typedRefs: readonly TypedReference[],
): unknown {
  let patched: unknown;
  for (const issue of issues) {
    const path = issue.path as Path;
    const wantsText =
      issue.code === "invalid_union" ||
      (issue.code === "invalid_type" && issue.expected === "string");
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

/** Zod's type names in the words of YAML. */
const YAML_TYPE: Record<string, string> = { object: "mapping", record: "mapping", array: "list" };

function issueMessage(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type": {
      const expected = YAML_TYPE[issue.expected] ?? issue.expected;
      if (issue.input === undefined) return `required: expected ${expected}`;
      return `expected ${expected}, got ${describe(issue.input)}`;
    }
    default:
      return issue.message;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

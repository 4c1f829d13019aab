import YAML from "yaml";

/**
 * Collector-style environment expansion in string values: `${env:NAME}` and
 * `${env:NAME:-default}`; `$$` stands for a literal `$`. When a value is exactly one
 * reference and its text reads as a YAML number or boolean, it takes that type, so
 * `max_size_mib: ${env:MIB}` yields a number; a string setting still gets the text (load.ts).
 * An unset variable without a default becomes "" (as in the Collector) and is reported.
 */

const REFERENCE = /\$\$|\$\{([^}]*)\}/g;
const ENV_REF = /^env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

export interface ExpandIssue {
  path: (string | number)[];
  message: string;
  fatal: boolean;
}

/** A whole-value reference read as a number or boolean, with the variable's text. */
export interface TypedReference {
  path: (string | number)[];
  text: string;
}

export function expandEnv(
  value: unknown,
  env: Record<string, string | undefined>,
  issues: ExpandIssue[],
  path: (string | number)[] = [],
  typed: TypedReference[] = [],
): unknown {
  if (typeof value === "string") return expandString(value, env, issues, path, typed);
  if (Array.isArray(value))
    return value.map((v, i) => expandEnv(v, env, issues, [...path, i], typed));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = expandEnv(v, env, issues, [...path, k], typed);
    return out;
  }
  return value;
}

function expandString(
  s: string,
  env: Record<string, string | undefined>,
  issues: ExpandIssue[],
  path: (string | number)[],
  typedRefs: TypedReference[],
): unknown {
  if (!s.includes("$")) return s;
  let whole = false;
  const out = s.replace(REFERENCE, (match, inner: string | undefined, offset: number) => {
    if (match === "$$") return "$";
    const m = ENV_REF.exec(inner ?? "");
    if (!m) {
      issues.push({
        path,
        message: `unsupported reference "${match}": write \${env:NAME} or \${env:NAME:-default} (and $$ for a literal $)`,
        fatal: true,
      });
      return match;
    }
    whole = offset === 0 && match.length === s.length;
    const name = m[1] as string;
    const found = env[name];
    if (found !== undefined) return found;
    if (m[2] !== undefined) return m[2];
    issues.push({
      path,
      message: `environment variable ${name} is not set; using an empty value`,
      fatal: false,
    });
    return "";
  });
  if (whole) {
    try {
      // Numbers and booleans take their YAML type; any other text stays exactly as set
      // (reading it as YAML would cut "a #b" at the comment and strip quotes).
      const typed: unknown = YAML.parse(out);
      if (typeof typed === "number" || typeof typed === "boolean") {
        typedRefs.push({ path, text: out });
        return typed;
      }
    } catch {
      // Not a YAML scalar: keep the text.
    }
  }
  return out;
}

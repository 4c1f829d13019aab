import { z } from "zod/v3";

/**
 * The zod the agent's config schemas are written in: the v3 API of the installed zod
 * package. Loading zod 4's core keeps about 11 MiB more resident for the life of the
 * sidecar than the v3 API does (issue 16), for no feature the config needs. Every module of
 * agent/ imports z from here, never from "zod" itself, so that v4 is never loaded, and so
 * that the messages below are in place before anything is parsed.
 *
 * zod 3's own messages ("Required", "Expected string, received number") are replaced,
 * process-wide, by ones in the words of a YAML config that say what was found: a message a
 * schema sets itself (`.min(1, "…")`, `{ message }`, withMessage) still wins over these.
 *
 * Where zod 3 differs from 4 in what it takes: a `.default(x)` is parsed through the schema
 * (so x is written as the file would write it), and z.number() takes ±Infinity (YAML .inf),
 * so a number with no upper bound says `.finite()`.
 */

type Issue = z.ZodIssueOptionalMessage;

/** Zod's type names in the words of YAML. */
const YAML_TYPE: Record<string, string> = { object: "mapping", record: "mapping", array: "list" };

/** A found value as a message shows it: JSON, cut at 40 characters. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** A list of allowed values: "a"|"b". */
const oneOf = (values: readonly unknown[]): string => values.map((v) => describeValue(v)).join("|");

const optionMessage = (options: readonly unknown[], data: unknown): string =>
  `Invalid option: expected one of ${oneOf(options)}, got ${describeValue(data)}`;

function sizeMessage(issue: Issue & { code: "too_small" | "too_big" }): string {
  const big = issue.code === "too_big";
  const bound = big ? issue.maximum : issue.minimum;
  const adj = issue.exact ? "exactly " : issue.inclusive ? (big ? "<=" : ">=") : big ? "<" : ">";
  const unit = { string: "characters", array: "items", set: "items" }[issue.type as string];
  const expectation = unit ? `to have ${adj}${bound} ${unit}` : `to be ${adj}${bound}`;
  return `${big ? "Too big" : "Too small"}: expected ${issue.type} ${expectation}`;
}

function stringMessage(validation: z.StringValidation): string {
  if (typeof validation === "string")
    return validation === "url" ? "Invalid URL" : "Invalid string";
  if ("startsWith" in validation)
    return `Invalid string: must start with "${validation.startsWith}"`;
  if ("endsWith" in validation) return `Invalid string: must end with "${validation.endsWith}"`;
  return `Invalid string: must include "${validation.includes}"`;
}

function typeMessage(issue: Issue & { code: "invalid_type" }, data: unknown): string {
  // zod 3 names an enum's values as the expected type: 'a' | 'b'.
  const options = issue.expected.startsWith("'") ? issue.expected.slice(1, -1).split("' | '") : [];
  if (options.length && data !== undefined) return optionMessage(options, data);
  const expected = options.length
    ? `one of ${oneOf(options)}`
    : (YAML_TYPE[issue.expected] ?? issue.expected);
  if (data === undefined) return `required: expected ${expected}`;
  return `expected ${expected}, got ${describeValue(data)}`;
}

/** zod 3's issues in the agent's words (zod 4's, where a config test or doc quotes them). */
const configMessages: z.ZodErrorMap = (issue, ctx) => {
  switch (issue.code) {
    case "invalid_type":
      return { message: typeMessage(issue, ctx.data) };
    case "invalid_literal":
      return {
        message: `expected ${describeValue(issue.expected)}, got ${describeValue(ctx.data)}`,
      };
    case "invalid_enum_value":
      return { message: optionMessage(issue.options, issue.received) };
    case "too_small":
    case "too_big":
      return { message: sizeMessage(issue) };
    case "not_finite":
      return { message: `expected number, got ${describeValue(ctx.data)}` };
    case "not_multiple_of":
      return { message: `Invalid number: must be a multiple of ${issue.multipleOf}` };
    case "invalid_string":
      return { message: stringMessage(issue.validation) };
    case "unrecognized_keys":
      return { message: `unknown key${issue.keys.length > 1 ? "s" : ""} ${oneOf(issue.keys)}` };
    default:
      return { message: ctx.defaultError };
  }
};

z.setErrorMap(configMessages);

/**
 * Create params that give every issue the schema itself raises one message: zod 3's
 * `{ message }` covers only wrong types, not a union none of whose options match.
 */
export function withMessage(message: string): { errorMap: z.ZodErrorMap } {
  return { errorMap: () => ({ message }) };
}

/**
 * Any schema, for the generic component types: zod 3's bare z.ZodType has `any` for its
 * output and input, which would type every config read through it as `any`.
 */
export type Schema = z.ZodType<unknown, z.ZodTypeDef, unknown>;

export { z };

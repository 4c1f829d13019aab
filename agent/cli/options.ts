import { statSync } from "node:fs";
import { AgentError } from "../common/errors.js";

/**
 * Parsers of the CLI's numeric options. Each refuses what is not its form with
 * CLI_BAD_OPTION (exit 2) naming the option, where it came from and the form it takes:
 * `Number("abc")` is NaN and `Number("-3")` a negative grace period, and either used to be
 * taken silently. The error is thrown past commander, which would only print its own
 * uncoded message.
 */

/** Where a value came from, as the error names it: the option, or it and its variable. */
function source(option: string, env?: string): string {
  return env ? `${option} (or ${env})` : option;
}

function refuse(option: string, env: string | undefined, value: string, form: string): never {
  throw new AgentError(
    "CLI_BAD_OPTION",
    `${source(option, env)} "${value}" is invalid: give ${form}`,
  );
}

/** A whole number from `min` to `max` (decimal digits only: no sign, exponent or fraction). */
export function wholeNumber(
  option: string,
  { min = 0, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): (value: string) => number {
  const form =
    max === Number.MAX_SAFE_INTEGER
      ? `a whole number ≥ ${min}`
      : `a whole number from ${min} to ${max}`;
  return (value) => {
    const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) refuse(option, undefined, value, form);
    return n;
  };
}

/** A number of seconds ≥ 0, fractions allowed ("30", "2.5"), from the option or `env`. */
export function seconds(option: string, env?: string): (value: string) => number {
  return (value) => {
    const n = /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
    if (!Number.isFinite(n)) refuse(option, env, value, "a number of seconds ≥ 0, such as 30");
    return n;
  };
}

/**
 * `--dir` of the `wal` commands: refused (CLI_BAD_PATH) when it names something that is not
 * a directory. A missing directory is theirs to report: its anchor may say a WAL was there.
 */
export function walDirectory(dir: string): string {
  let isDirectory: boolean | undefined;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch {
    isDirectory = undefined;
  }
  if (isDirectory === false)
    throw new AgentError(
      "CLI_BAD_PATH",
      `--dir ${dir} is a file, not a directory: give the WAL directory (extensions.wal.directory)`,
    );
  return dir;
}

import { readFileSync } from "node:fs";
import { z } from "../common/zod.js";
import { durationDefault, endpointSchema } from "../common/config-schema.js";
import { AgentError } from "../common/errors.js";
import { type PublicKey, parseVerifierKey } from "../integrity/signing.js";
import { ConfigProblems } from "../config/parse-problems.js";
import { schemaValidator } from "../config/parse-validate.js";
import { expandVariables, parseYamlDocument } from "../config/yaml-source.js";
import type { LogLevel } from "../telemetry/logger.js";

/**
 * The witness's config file (docs/witness.md): one `witness:` mapping, validated like the
 * agent's config (${env:…} references, every problem reported as `file:line:col: key.path:
 * what is wrong`, unknown keys refused). Paths are relative to the working directory.
 */

/** A log the witness cosigns for: one origin, or every origin that starts with a prefix. */
export interface WitnessedLog {
  origin?: string;
  originPrefix?: string;
  /** The log's signing keys (C2SP verifier keys, Ed25519): any of them may sign its checkpoints. */
  keys: PublicKey[];
}

export interface WitnessConfig {
  file: string;
  keyFile: string;
  stateDir: string;
  listen: string;
  tls: { certFile: string; keyFile: string } | null;
  maxBodyBytes: number;
  /** Prefix of the add-checkpoint path ("" serves POST /add-checkpoint). */
  submissionPrefix: string;
  /** How long a refused fork or rollback keeps /healthz at 503, in ms. */
  alertWindowMs: number;
  logLevel: LogLevel;
  logs: WitnessedLog[];
  /** Non-fatal findings (unset env vars). */
  warnings: string[];
}

const DOCS = "docs/witness.md";

/** One line of text without control characters, as a checkpoint's origin line is. */
const originText = z
  .string()
  .min(1)
  .refine((s) => ![...s].some((c) => c < " " || c === "\u007f"), {
    message: "must be one line of text, without control characters",
  });

const verifierKey = z.string().transform((text, ctx) => {
  try {
    return parseVerifierKey(text);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

const logSchema = z
  .object({
    origin: originText.optional(),
    origin_prefix: originText.optional(),
    keys: z
      .array(verifierKey)
      .min(1, "list the log's verifier keys (the agent's signing .pub), at least one"),
  })
  .strict()
  .superRefine((log, ctx) => {
    if ((log.origin === undefined) === (log.origin_prefix === undefined))
      ctx.addIssue({
        code: "custom",
        path: ["origin"],
        message: "set exactly one of origin (an exact origin line) and origin_prefix",
      });
  });

const prefixSchema = z
  .string()
  .regex(/^(\/[^\s?#]*[^\s?#/])?$/, 'a path prefix such as "/witness" (no trailing "/"), or ""');

const witnessSchema = z
  .object({
    key_file: z.string().min(1),
    state_dir: z.string().min(1),
    listen: endpointSchema.default("127.0.0.1:8891"),
    tls: z
      .object({ cert_file: z.string().min(1), key_file: z.string().min(1) })
      .strict()
      .optional(),
    max_body_bytes: z
      .number()
      .int()
      .min(1024, "at least 1024 bytes")
      .max(16 * 1024 * 1024, "at most 16 MiB")
      .default(65536),
    submission_prefix: prefixSchema.default(""),
    alert_window: durationDefault("1h"),
    log_level: z.enum(["debug", "info", "warn", "error"]).default("info"),
    logs: z.array(logSchema).min(1, "list at least one log to witness"),
  })
  .strict();

const fileSchema = z.object({ witness: witnessSchema }).strict();

export function loadWitnessConfig(
  file: string,
  env: Record<string, string | undefined> = process.env,
): WitnessConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw invalid(file, [`${file}: cannot read the file: ${(err as Error).message}`]);
  }
  return parseWitnessConfig(text, file, env);
}

export function parseWitnessConfig(
  text: string,
  file: string,
  env: Record<string, string | undefined> = process.env,
): WitnessConfig {
  const { doc, lineCounter, problems } = parseYamlDocument(text, file);
  if (problems.length > 0) throw invalid(file, problems);
  const report = new ConfigProblems(file, doc, lineCounter, DOCS);
  const { expanded, typedRefs } = expandVariables(doc, env, report);
  const parsed = schemaValidator(report, typedRefs)(fileSchema, expanded, []);
  if (parsed) checkDistinct(parsed.witness.logs, report);
  if (!parsed || report.problems.length > 0) throw invalid(file, report.problems);
  const w = parsed.witness;
  return {
    file,
    keyFile: w.key_file,
    stateDir: w.state_dir,
    listen: w.listen,
    tls: w.tls ? { certFile: w.tls.cert_file, keyFile: w.tls.key_file } : null,
    maxBodyBytes: w.max_body_bytes,
    submissionPrefix: w.submission_prefix,
    alertWindowMs: w.alert_window,
    logLevel: w.log_level,
    logs: w.logs.map((l) => ({ origin: l.origin, originPrefix: l.origin_prefix, keys: l.keys })),
    warnings: report.warnings,
  };
}

/** No origin, and no origin prefix, is listed twice: which keys count would be unclear. */
function checkDistinct(
  logs: readonly { origin?: string; origin_prefix?: string }[],
  report: ConfigProblems,
): void {
  const seen = new Set<string>();
  logs.forEach((log, i) => {
    const [field, value] =
      log.origin !== undefined ? ["origin", log.origin] : ["origin_prefix", log.origin_prefix];
    const key = `${field}:${value}`;
    if (seen.has(key))
      report.add(
        ["witness", "logs", i, field],
        `${field} "${value}" is listed twice: merge the keys into one entry`,
      );
    seen.add(key);
  });
}

function invalid(file: string, problems: readonly string[]): AgentError {
  return new AgentError(
    "WITNESS_CONFIG_INVALID",
    `invalid witness configuration in ${file}:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
  );
}

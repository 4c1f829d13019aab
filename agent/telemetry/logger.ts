import { writeSync } from "node:fs";
import { printable } from "../common/printable.js";
import pino from "pino";

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
export type Logger = pino.Logger;
/** `service.telemetry.logs.encoding`, the Collector's setting: one JSON object a line, or text. */
export type LogEncoding = "json" | "console";

/**
 * Logs on stderr, like the Collector's: JSON lines for a log pipeline, or readable text
 * lines for a person at a terminal. Written synchronously: the agent logs per event (start,
 * failures, shutdown; refusals rate-limited), never per record, and a fatal message must
 * not be lost when the process exits right after it.
 */
export function createLogger(level: LogLevel = "info", encoding: LogEncoding = "json"): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: "audit-agent" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  if (encoding === "console") {
    const color = useColor(process.stderr, process.env);
    // pino serializes; the line is turned into text here (one JSON.parse per log event).
    return pino(options, { write: (line: string) => writeSync(2, consoleLine(line, color)) });
  }
  return pino(options, pino.destination({ dest: 2, sync: true }));
}

/**
 * The encoding when the config names none: text when stderr (where logs go) is a terminal,
 * JSON otherwise (a container, a pipe, a file). AUDIT_AGENT_TTY=1 or 0 overrides what the
 * terminal check finds (for tests, and for terminals that are not detected as such).
 */
export function logEncoding(
  configured: LogEncoding | undefined,
  stream: { isTTY?: boolean } = process.stderr,
  env: Record<string, string | undefined> = process.env,
): LogEncoding {
  if (configured) return configured;
  return isTerminal(stream, env) ? "console" : "json";
}

/** Whether `stream` is taken for a person's terminal (AUDIT_AGENT_TTY=1|0 overrides). */
export function isTerminal(
  stream: { isTTY?: boolean },
  env: Record<string, string | undefined> = process.env,
): boolean {
  const forced = env.AUDIT_AGENT_TTY;
  if (forced === "1" || forced === "0") return forced === "1";
  return stream.isTTY === true;
}

/** Colors only on a real terminal, and never with NO_COLOR set (https://no-color.org). */
function useColor(stream: { isTTY?: boolean }, env: Record<string, string | undefined>): boolean {
  return stream.isTTY === true && !env.NO_COLOR;
}

const LEVEL_STYLE: Record<string, [label: string, ansi: string]> = {
  debug: ["DEBUG", "\u001b[90m"],
  info: ["INFO ", "\u001b[36m"],
  warn: ["WARN ", "\u001b[33m"],
  error: ["ERROR", "\u001b[31m"],
  fatal: ["FATAL", "\u001b[31m"],
};

/**
 * One pino JSON line as text: `time LEVEL message  key=value …`. Values that are not
 * plain words are JSON (quoted strings, objects inline), so a line stays one line and can
 * still be read back; an error shows its message (its stack at debug level only). Whatever
 * a terminal would act on is escaped (common/printable.ts; tabs and newlines too, as a
 * console line is one line): a client cannot forge a line or send
 * escape sequences to the terminal through text the agent logs.
 */
export function consoleLine(json: string, color = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { time, level, msg, service: _service, pid: _pid, hostname: _host, ...fields } = entry;
  const [label, ansi] = LEVEL_STYLE[String(level)] ?? [String(level).toUpperCase(), ""];
  const shown = color && ansi ? `${ansi}${label}\u001b[0m` : label;
  const parts = Object.entries(fields).map(
    ([k, v]) => `${oneLine(k)}=${oneLine(fieldValue(k, v, level))}`,
  );
  const tail = parts.length > 0 ? `  ${parts.join(" ")}` : "";
  return `${oneLine(String(time))} ${shown} ${oneLine(String(msg ?? ""))}${tail}\n`;
}

const oneLine = (text: string) => printable(text, {});

function fieldValue(key: string, value: unknown, level: unknown): string {
  if (key === "err" && value && typeof value === "object" && "message" in value) {
    const err = value as { message: unknown; stack?: unknown };
    const text = level === "debug" && err.stack ? String(err.stack) : String(err.message);
    return JSON.stringify(text);
  }
  if (typeof value === "string" && /^[\w.:/@+-]+$/.test(value)) return value;
  return JSON.stringify(value) ?? String(value);
}

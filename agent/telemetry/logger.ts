import pino from "pino";

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
export type Logger = pino.Logger;

/**
 * Structured JSON logs on stderr, like the Collector's. Written synchronously: the agent
 * logs per event (start, failures, shutdown), never per record, and a fatal message must
 * not be lost when the process exits right after it.
 */
export function createLogger(level: LogLevel = "info"): Logger {
  return pino(
    {
      level,
      base: { service: "audit-agent" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: 2, sync: true }),
  );
}

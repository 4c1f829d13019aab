import type { ErrorCode } from "./error-codes.js";

export type { ErrorCode } from "./error-codes.js";

/**
 * Errors the agent raises on purpose carry a stable code (for logs, tests and docs) and a
 * message that says what to fix, in the manner of fastify's FST_ERR_* errors. Every code is
 * listed, with what it means and what to do, in ERROR_CODES (./error-codes.ts), from which
 * docs/errors.md is generated: a code not listed there does not compile.
 */
export class AgentError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = "AgentError";
  }
}

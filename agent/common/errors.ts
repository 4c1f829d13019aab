/**
 * Errors the agent raises on purpose carry a stable code (for logs, tests and docs) and a
 * message that says what to fix, in the manner of fastify's FST_ERR_* errors.
 */
export class AgentError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = "AgentError";
  }
}

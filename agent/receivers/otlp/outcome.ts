import type { ErrorCode } from "../../common/error-codes.js";
import { AgentError } from "../../common/errors.js";
import type { ThrottledEvents } from "../../telemetry/event-log.js";

/**
 * How a failed request is reported, decided once for both protocols so HTTP and gRPC
 * clients are told the same thing (OTLP spec, "Failures" and "Throttling").
 */
export interface Refusal {
  http: number;
  /** gRPC status code (numeric, from @grpc/grpc-js status). */
  grpc: number;
  message: string;
  /** Seconds before a retry may succeed; set only for retryable refusals. */
  retryAfter?: number;
  /** Counter label for refused records. */
  reason: string;
}

const GRPC_INVALID_ARGUMENT = 3;
const GRPC_RESOURCE_EXHAUSTED = 8;
const GRPC_INTERNAL = 13;
const GRPC_UNAVAILABLE = 14;

type RefusalReason = "rate_limited" | "buffer_full" | "malformed" | "unavailable";

/**
 * The refusal each error code gets, by its counter label; an error whose code is not here
 * (or that is no AgentError) is an internal error. Keys are checked against the catalogue,
 * so a misspelt code does not compile.
 */
const REFUSAL_BY_CODE: { readonly [C in ErrorCode]?: RefusalReason } = {
  RATE_LIMITED: "rate_limited",
  WAL_FULL: "buffer_full",
  OTLP_BAD_PROTOBUF: "malformed",
  OTLP_BAD_JSON: "malformed",
  WAL_WRITE_FAILED: "unavailable",
  WAL_RECORD_ALTERED: "unavailable",
  WAL_CLOSED: "unavailable",
  FORWARD_QUEUE_FULL: "unavailable",
};

export function refusalFor(err: unknown, retryAfterSeconds: number): Refusal {
  if (err instanceof AgentError) {
    switch (REFUSAL_BY_CODE[err.code]) {
      case "rate_limited":
        return {
          http: 429,
          grpc: GRPC_RESOURCE_EXHAUSTED,
          message: err.message,
          retryAfter: 1,
          reason: "rate_limited",
        };
      case "buffer_full":
        // RESOURCE_EXHAUSTED is retryable in OTLP only with RetryInfo, which the gRPC receiver adds.
        return {
          http: 429,
          grpc: GRPC_RESOURCE_EXHAUSTED,
          message: err.message,
          retryAfter: retryAfterSeconds,
          reason: "buffer_full",
        };
      case "malformed":
        return {
          http: 400,
          grpc: GRPC_INVALID_ARGUMENT,
          message: err.message,
          reason: "malformed",
        };
      case "unavailable":
        return {
          http: 503,
          grpc: GRPC_UNAVAILABLE,
          message: err.message,
          retryAfter: retryAfterSeconds,
          reason: "unavailable",
        };
    }
  }
  const why = err instanceof Error ? err.message : String(err);
  return { http: 500, grpc: GRPC_INTERNAL, message: `internal error: ${why}`, reason: "internal" };
}

/** The longest refusal message a log line repeats (it is what the client was told). */
const LOGGED_MESSAGE_CHARS = 200;

/**
 * Logs a refused request, rate-limited per protocol and reason (ThrottledEvents): the
 * reason, the status the client got, its address and the message it was told — never
 * the request's content.
 */
export function logRefusal(
  events: ThrottledEvents,
  protocol: "http" | "grpc",
  refusal: { reason: string; status: string | number; message: string },
  peer: string,
): void {
  const message =
    refusal.message.length > LOGGED_MESSAGE_CHARS
      ? `${refusal.message.slice(0, LOGGED_MESSAGE_CHARS)}…`
      : refusal.message;
  events.event(
    `${protocol}:${refusal.reason}`,
    "warn",
    `OTLP/${protocol === "http" ? "HTTP" : "gRPC"} request refused`,
    { protocol, reason: refusal.reason, status: refusal.status, peer, error: message },
  );
}

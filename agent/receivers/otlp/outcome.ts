import { BufferFullError } from "../../store/wal.js";
import { AgentError } from "../../common/errors.js";

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

export function refusalFor(err: unknown, retryAfterSeconds: number): Refusal {
  if (err instanceof AgentError && err.code === "RATE_LIMITED") {
    return {
      http: 429,
      grpc: GRPC_RESOURCE_EXHAUSTED,
      message: err.message,
      retryAfter: 1,
      reason: "rate_limited",
    };
  }
  if (err instanceof BufferFullError) {
    // RESOURCE_EXHAUSTED is retryable in OTLP only with RetryInfo, which the gRPC receiver adds.
    return {
      http: 429,
      grpc: GRPC_RESOURCE_EXHAUSTED,
      message: err.message,
      retryAfter: retryAfterSeconds,
      reason: "buffer_full",
    };
  }
  if (err instanceof AgentError) {
    switch (err.code) {
      case "OTLP_BAD_PROTOBUF":
      case "OTLP_BAD_JSON":
        return {
          http: 400,
          grpc: GRPC_INVALID_ARGUMENT,
          message: err.message,
          reason: "malformed",
        };
      case "WAL_WRITE_FAILED":
      case "WAL_CLOSED":
      case "FORWARD_QUEUE_FULL":
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

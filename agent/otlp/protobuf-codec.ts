import { isUtf8 } from "node:buffer";
import { join } from "node:path";
import protobuf from "protobufjs";
import { AgentError } from "../common/errors.js";
import { packageRoot } from "../common/package-root.js";
import { type ExportLogsServiceRequest, MAX_ANY_VALUE_DEPTH } from "./model.js";

/** The protobuf half of the OTLP codec: request decoding and response/status encoding. */

/**
 * Strict UTF-8 for protobuf strings, as proto3 requires (the Collector refuses invalid UTF-8
 * too). protobufjs would silently substitute U+FFFD, and a record must be chained as sent or
 * refused, never altered. Node's native isUtf8 keeps the check cheap.
 */
function strictString<R extends protobuf.Reader>(read: (this: R) => string) {
  return function (this: R): string {
    const start = this.pos;
    const length = this.uint32();
    const bytes = this.buf.subarray(this.pos, this.pos + length);
    this.pos = start;
    if (!isUtf8(bytes)) throw new Error(`invalid UTF-8 in a string field at offset ${start}`);
    return read.call(this);
  };
}
protobuf.Reader.prototype.string = strictString(protobuf.Reader.prototype.string);
protobuf.BufferReader.prototype.string = strictString(protobuf.BufferReader.prototype.string);

/**
 * A bool is a varint, true when it is not 0 — all of it: protobufjs looks at its low 32 bits
 * only, so 2^32 read false here and true on the fast path (protobuf-canonical.ts), and one
 * request would be stored differently depending on which path decoded it.
 */
function wholeVarintBool(this: protobuf.Reader): boolean {
  let nonzero = false;
  for (let i = 0; i < 10; i++) {
    if (this.pos >= this.len)
      throw new RangeError(`index out of range: ${this.pos} + 1 > ${this.len}`);
    const byte = this.buf[this.pos++] as number;
    if ((byte & 0x7f) !== 0) nonzero = true;
    if (byte < 0x80) return nonzero;
  }
  throw new Error("invalid varint encoding");
}
protobuf.Reader.prototype.bool = wholeVarintBool;
protobuf.BufferReader.prototype.bool = wholeVarintBool;

/**
 * protobufjs stops at 100 nested messages (protoc's default), fewer than an AnyValue at the
 * nesting limit of every transport takes (MAX_ANY_VALUE_DEPTH levels: three messages per
 * kvlistValue level, under four of envelope). Values deeper than that limit are refused
 * before protobufjs reads them (protobuf-canonical.ts ValueCheck, the JSON decoder), so
 * protobufjs gets the room an accepted value needs: decoding it on the pass-through path
 * and encoding a stored record for an OTLP exporter must not fail on it.
 */
const MESSAGE_DEPTH_LIMIT = 3 * MAX_ANY_VALUE_DEPTH + 16;
protobuf.util.recursionLimit = MESSAGE_DEPTH_LIMIT;
protobuf.Reader.recursionLimit = MESSAGE_DEPTH_LIMIT;

const root = protobuf.loadSync([
  join(packageRoot(), "proto", "otlp_logs.proto"),
  join(packageRoot(), "proto", "google_rpc_status.proto"),
]);

const RequestType = root.lookupType(
  "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest",
);
const ResponseType = root.lookupType(
  "opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse",
);
const StatusType = root.lookupType("google.rpc.Status");
const RetryInfoType = root.lookupType("google.rpc.RetryInfo");

export const RETRY_INFO_TYPE_URL = "type.googleapis.com/google.rpc.RetryInfo";

/** Decodes an ExportLogsServiceRequest; throws AgentError OTLP_BAD_PROTOBUF on malformed input. */
export function decodeLogsRequest(bytes: Uint8Array): ExportLogsServiceRequest {
  try {
    return RequestType.decode(bytes) as unknown as ExportLogsServiceRequest;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new AgentError(
      "OTLP_BAD_PROTOBUF",
      `request body is not a valid protobuf ExportLogsServiceRequest: ${why}`,
    );
  }
}

export interface PartialSuccess {
  rejectedLogRecords: number;
  errorMessage: string;
}

export function encodeLogsResponse(partial: PartialSuccess | null): Uint8Array {
  const message = partial
    ? {
        partialSuccess: {
          rejectedLogRecords: partial.rejectedLogRecords,
          errorMessage: partial.errorMessage,
        },
      }
    : {};
  return ResponseType.encode(ResponseType.fromObject(message)).finish();
}

/** A google.rpc.Status, optionally carrying a RetryInfo detail that tells clients when to retry. */
export function encodeStatus(
  code: number,
  message: string,
  retryAfterSeconds?: number,
): Uint8Array {
  const details = retryAfterSeconds === undefined ? [] : [encodeRetryInfoAny(retryAfterSeconds)];
  return StatusType.encode(StatusType.fromObject({ code, message, details })).finish();
}

export function encodeRetryInfoAny(seconds: number): { typeUrl: string; value: Uint8Array } {
  const value = RetryInfoType.encode(
    RetryInfoType.fromObject({ retryDelay: { seconds: Math.floor(seconds), nanos: 0 } }),
  ).finish();
  return { typeUrl: RETRY_INFO_TYPE_URL, value };
}

/** Exposed for tests and tools that need to build or read OTLP protobuf messages. */
export const otlpTypes = { RequestType, ResponseType, StatusType, RetryInfoType };

import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { splitEndpoint } from "../../common/config-schema.js";
import { otlpTypes, RETRY_INFO_TYPE_URL } from "../../otlp/protobuf-codec.js";
import { PermanentExportError, RetryableExportError } from "../api.js";
import type { OtlpGrpcExporterConfig } from "./config.js";
import type { OtlpTransport } from "./transport.js";

/** The otlp_grpc exporter's transport, in its own module so grpc-js loads only for it. */

/** OTLP's retryable gRPC codes (https://opentelemetry.io/docs/specs/otlp/#failures). */
const RETRYABLE = new Set([
  grpc.status.CANCELLED,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.ABORTED,
  grpc.status.OUT_OF_RANGE,
  grpc.status.UNAVAILABLE,
  grpc.status.DATA_LOSS,
]);

function retryDelayMs(err: grpc.ServiceError): number | undefined {
  const raw = err.metadata?.get("grpc-status-details-bin")[0];
  if (!Buffer.isBuffer(raw)) return undefined;
  try {
    const status = otlpTypes.StatusType.decode(raw) as unknown as {
      details: Array<{ typeUrl: string; value: Uint8Array }>;
    };
    const info = status.details.find((d) => d.typeUrl === RETRY_INFO_TYPE_URL);
    if (!info) return undefined;
    const delay = (
      otlpTypes.RetryInfoType.decode(info.value) as unknown as {
        retryDelay?: { seconds?: { toString(): string }; nanos?: number };
      }
    ).retryDelay;
    return Number(delay?.seconds?.toString() ?? 0) * 1000 + Math.round((delay?.nanos ?? 0) / 1e6);
  } catch {
    return undefined;
  }
}

export function grpcTransport(config: OtlpGrpcExporterConfig): OtlpTransport {
  const { host, port } = splitEndpoint(config.endpoint);
  const tls = config.tls;
  const credentials = tls.insecure
    ? grpc.credentials.createInsecure()
    : grpc.credentials.createSsl(
        tls.ca_file ? readFileSync(tls.ca_file) : null,
        tls.key_file ? readFileSync(tls.key_file) : null,
        tls.cert_file ? readFileSync(tls.cert_file) : null,
      );
  const client = new grpc.Client(
    `${host.includes(":") ? `[${host}]` : host}:${port}`,
    credentials,
    {
      "grpc.default_compression_algorithm": config.compression === "gzip" ? 2 : 0,
    },
  );
  return {
    encoding: "proto",
    send(body) {
      const metadata = new grpc.Metadata();
      for (const [k, v] of Object.entries(config.headers)) metadata.set(k, v);
      return new Promise<void>((resolve, reject) => {
        client.makeUnaryRequest(
          "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
          (b: Uint8Array | string) => Buffer.from(b as Uint8Array),
          (b: Buffer) => b,
          body,
          metadata,
          { deadline: Date.now() + config.timeout },
          (err) => {
            if (!err) return resolve();
            const what = `OTLP/gRPC export to ${config.endpoint}: ${grpc.status[err.code]}: ${err.details}`;
            const hint = retryDelayMs(err);
            // RESOURCE_EXHAUSTED is retryable only when the server says when (RetryInfo).
            if (
              RETRYABLE.has(err.code) ||
              (err.code === grpc.status.RESOURCE_EXHAUSTED && hint !== undefined)
            ) {
              reject(new RetryableExportError(what, hint));
            } else {
              reject(new PermanentExportError(what));
            }
          },
        );
      });
    },
    async close() {
      client.close();
    },
  };
}

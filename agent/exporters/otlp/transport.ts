import { failFor, HttpClient } from "../http/client.js";
import type { OtlpHttpExporterConfig } from "./config.js";

/** Sends one encoded ExportLogsServiceRequest upstream, or throws an export error. */
export interface OtlpTransport {
  readonly encoding: "proto" | "json";
  send(body: Uint8Array | string): Promise<void>;
  close(): Promise<void>;
}

export function httpTransport(config: OtlpHttpExporterConfig): OtlpTransport {
  const client = new HttpClient(config);
  const contentType = config.encoding === "json" ? "application/json" : "application/x-protobuf";
  return {
    encoding: config.encoding,
    async send(body) {
      const res = await client.send({
        method: "POST",
        path: config.logs_path,
        headers: { "content-type": contentType },
        body:
          typeof body === "string"
            ? body
            : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      });
      if (res.status !== 200) failFor(res, `OTLP/HTTP export to ${client.url(config.logs_path)}`);
    },
    close: () => client.close(),
  };
}

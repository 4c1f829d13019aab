import * as grpc from "@grpc/grpc-js";

/** The OTLP logs Export method, for raw gRPC calls with bytes the test chose. */
export const EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

export interface GrpcReply {
  err: grpc.ServiceError | null;
  value: Buffer | undefined;
}

/** One raw Export call carrying `payload` as the request message, as sent. */
export function grpcExport(client: grpc.Client, payload: Buffer): Promise<GrpcReply> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      EXPORT_METHOD,
      (b: Buffer) => b,
      (b: Buffer) => b,
      payload,
      new grpc.Metadata(),
      { deadline: Date.now() + 30_000 },
      (err, value) => resolve({ err, value }),
    );
  });
}

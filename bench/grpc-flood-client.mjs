// Unauthenticated gRPC calls that start a large message and never finish it (issue 14), for
// bench/grpc-flood.mjs and test/integration/grpc-flood.test.ts: raw HTTP/2 calls to the
// OTLP Export method without a token, each writing all of a `bytes`-long message but its
// last KiB, one connection per `perConnection` calls.
import { connect } from "node:http2";

/**
 * Starts `streams` such calls to `address` (host:port). Returns the counts of calls answered
 * (any grpc-status) and answered UNAUTHENTICATED so far, and `close()`, which ends them all.
 */
export function startFlood(address, { streams, bytes, perConnection = 1 }) {
  const sessions = [];
  const counts = { answered: 0, unauthenticated: 0 };
  for (let i = 0; i < streams; i++) {
    if (i % perConnection === 0) {
      const session = connect(`http://${address}`);
      session.on("error", () => undefined);
      sessions.push(session);
    }
    const stream = sessions[sessions.length - 1].request({
      ":method": "POST",
      ":path": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => undefined);
    const onHeaders = (h) => {
      if (h["grpc-status"] === undefined) return;
      counts.answered++;
      if (h["grpc-status"] === "16") counts.unauthenticated++;
    };
    stream.on("response", onHeaders);
    stream.on("trailers", onHeaders);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(bytes, 1);
    stream.write(prefix);
    stream.write(Buffer.alloc(bytes - 1024)); // all but the end: the message never completes
  }
  return {
    counts,
    close() {
      for (const s of sessions) s.destroy();
    },
  };
}

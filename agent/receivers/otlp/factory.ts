import type { Transport } from "../../telemetry/counters.js";
import type { ReceiverEndpoint, ReceiverFactory } from "../api.js";
import {
  type OtlpReceiverConfig,
  otlpReceiverConfigSchema,
  type ReceiverAuthConfig,
  type TlsServerConfig,
} from "./config.js";
import type { OtlpGrpcReceiver } from "./grpc-server.js";
import { OtlpHttpReceiver } from "./http-server.js";
import { TokenBucket } from "./security.js";
import { ThrottledEvents } from "../../telemetry/event-log.js";

export const otlpReceiverFactory: ReceiverFactory<typeof otlpReceiverConfigSchema> = {
  kind: "receiver",
  type: "otlp",
  configSchema: otlpReceiverConfigSchema,
  create(settings, config: OtlpReceiverConfig, consumer) {
    const logger = settings.logger.child({ receiver: settings.id });
    // One bucket for both protocols: the limit is the receiver's.
    const rate = config.rate_limit;
    const limiter = rate ? new TokenBucket(rate.requests_per_second, rate.burst) : null;
    const perSecond = rate?.requests_per_second ?? 0;
    // Refused requests are logged, rate-limited, for both protocols of the receiver.
    const events = new ThrottledEvents(logger);
    // Counted per transport, as the Collector labels its receiver metrics; created here so
    // each configured transport's series shows 0 before its first request.
    const counts = (transport: Transport) =>
      [
        config.retry_after_seconds,
        consumer,
        settings.counters.transport(settings.id, transport),
        logger,
        limiter,
        perSecond,
        events,
      ] as const;
    const grpcArgs = config.protocols.grpc ? counts("grpc") : null;
    // grpc-js is imported only when the gRPC protocol is configured.
    let grpc: OtlpGrpcReceiver | null = null;
    const http = config.protocols.http
      ? new OtlpHttpReceiver(config.protocols.http, ...counts("http"))
      : null;
    return {
      async start() {
        if (config.protocols.grpc && grpcArgs) {
          const { OtlpGrpcReceiver } = await import("./grpc-server.js");
          grpc = new OtlpGrpcReceiver(config.protocols.grpc, ...grpcArgs);
          await grpc.start();
        }
        try {
          await http?.start();
        } catch (err) {
          await grpc?.shutdown();
          throw err;
        }
      },
      async shutdown(deadline?: number) {
        const left = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
        await Promise.all([grpc?.shutdown(left), http?.shutdown(left)]);
        events.stop();
      },
      endpoints() {
        const out: ReceiverEndpoint[] = [];
        const { grpc: g, http: h } = config.protocols;
        if (grpc && g) out.push({ protocol: "grpc", address: grpc.address(), ...security(g) });
        if (http && h) {
          const scheme = h.tls ? "https" : "http";
          const url = `${scheme}://${http.address()}${h.logs_url_path}`;
          out.push({ protocol: "http", address: http.address(), url, ...security(h) });
        }
        return out;
      },
      addresses() {
        const out: Record<string, string> = {};
        if (grpc) out.grpc = grpc.address();
        if (http) out.http = http.address();
        return out;
      },
    };
  },
};

/** What a protocol's config says of its transport security and client authentication. */
function security(p: {
  tls?: TlsServerConfig;
  auth?: ReceiverAuthConfig;
}): Pick<ReceiverEndpoint, "tls" | "auth"> {
  return {
    tls: p.tls ? (p.tls.client_ca_file ? "mutual" : "on") : "off",
    auth: p.auth ? "bearer token" : "none",
  };
}

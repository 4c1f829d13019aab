import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { AgentError } from "../../common/errors.js";
import { splitEndpoint } from "../../common/config-schema.js";
import { type LogsConsumer, receiveTimeUnixNano } from "../../processing/pipeline.js";
import type { TransportCounts } from "../../telemetry/counters.js";
import type { Logger } from "../../telemetry/logger.js";
import { MiB, type OtlpGrpcConfig, type TlsServerConfig } from "./config.js";
import { logRefusal, refusalFor } from "./outcome.js";
import type { ThrottledEvents } from "../../telemetry/event-log.js";
import { encodeLogsResponse, encodeStatus } from "../../otlp/protobuf-codec.js";
import { BearerAuth, RateLimitedError, type TokenBucket } from "./security.js";
import { CallPeer } from "./peer.js";

/**
 * OTLP/gRPC logs receiver: opentelemetry.proto.collector.logs.v1.LogsService/Export.
 * Messages are passed through as raw bytes and decoded in the handler, so a malformed
 * payload is answered INVALID_ARGUMENT with a message rather than grpc-js's INTERNAL.
 * grpc-js itself handles gzip message compression and the receive size limit
 * (RESOURCE_EXHAUSTED without retry information: the client must send less).
 */

/** Concurrent calls per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
const MAX_CONCURRENT_STREAMS = 100;

const identity = (b: Buffer): Buffer => b;

const logsServiceDefinition: grpc.ServiceDefinition = {
  Export: {
    path: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    responseDeserialize: identity,
  },
};

export class OtlpGrpcReceiver {
  private server: grpc.Server | null = null;
  private boundPort = 0;
  private reloadTimer: NodeJS.Timeout | null = null;
  private readonly auth: BearerAuth | null;

  constructor(
    private readonly config: OtlpGrpcConfig,
    private readonly retryAfterSeconds: number,
    private readonly consumer: LogsConsumer,
    private readonly counts: TransportCounts,
    private readonly logger: Logger,
    private readonly limiter: TokenBucket | null = null,
    private readonly rateLimitPerSecond = 0,
    private readonly events: ThrottledEvents | null = null,
  ) {
    this.auth = config.auth ? new BearerAuth(config.auth) : null;
  }

  async start(): Promise<void> {
    const { host, port } = splitEndpoint(this.config.endpoint);
    this.server = await this.listen(host, port);
    this.logger.info({ endpoint: this.address() }, "OTLP/gRPC receiver listening");
    const tls = this.config.tls;
    if (tls) this.watchCertificates(host, tls);
  }

  private async listen(host: string, port: number): Promise<grpc.Server> {
    const maxBytes = Math.floor(this.config.max_recv_msg_size_mib * MiB);
    const server = new grpc.Server({
      "grpc.max_receive_message_length": maxBytes,
      "grpc.max_send_message_length": 4 * MiB,
      // Streams in flight per connection: each may hold up to a message being read.
      "grpc.max_concurrent_streams": MAX_CONCURRENT_STREAMS,
      // The first is the innermost: it sees the statuses the ones after it send.
      interceptors: [this.observeUnanswered, ...(this.auth ? [this.authenticateFirst] : [])],
    });
    server.addService(logsServiceDefinition, { Export: this.export });
    const target = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    this.boundPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(target, credentialsFor(this.config.tls), (err, bound) => {
        if (err) {
          const hint = /in use/i.test(err.message)
            ? " (another process uses this port; change receivers.otlp.protocols.grpc.endpoint)"
            : "";
          reject(
            new AgentError(
              "RECEIVER_LISTEN_FAILED",
              `OTLP/gRPC receiver cannot listen on ${this.config.endpoint}: ${err.message}${hint}`,
            ),
          );
        } else resolve(bound);
      });
    });
    return server;
  }

  /**
   * grpc-js cannot swap a live server's certificate, so when the files change the receiver
   * drains its server and listens again on the same port with the new ones. Clients see
   * one reconnect (UNAVAILABLE, which OTLP clients retry).
   */
  private watchCertificates(host: string, tls: TlsServerConfig): void {
    const read = () =>
      [tls.cert_file, tls.key_file, tls.client_ca_file]
        .map((f) => (f ? readFileSync(f).toString("base64") : ""))
        .join("|");
    let current = read();
    let reloading = false;
    this.reloadTimer = setInterval(() => {
      if (reloading || this.server === null) return;
      let next: string;
      try {
        next = read();
      } catch (err) {
        this.logger.error(
          { err: (err as Error).message },
          "cannot read TLS certificates; keeping the current ones",
        );
        return;
      }
      if (next === current) return;
      reloading = true;
      const old = this.server;
      new Promise<void>((resolve) => old.tryShutdown(() => resolve()))
        .then(() => this.listen(host, this.boundPort))
        .then(
          (server) => {
            this.server = server;
            current = next;
            this.logger.info(
              { cert: tls.cert_file },
              "OTLP/gRPC receiver reloaded its TLS certificates",
            );
          },
          (err) =>
            this.logger.error(
              { err: (err as Error).message },
              "OTLP/gRPC receiver could not listen again after a certificate change",
            ),
        )
        .finally(() => {
          reloading = false;
        });
    }, tls.reload_interval);
    this.reloadTimer.unref();
  }

  address(): string {
    const { host } = splitEndpoint(this.config.endpoint);
    return host.includes(":") ? `[${host}]:${this.boundPort}` : `${host}:${this.boundPort}`;
  }

  /** Stops accepting; waits for calls in progress, then closes remaining connections. */
  async shutdown(timeoutMs = 30_000): Promise<void> {
    if (this.reloadTimer) clearInterval(this.reloadTimer);
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, timeoutMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * The bearer token is checked on the call's metadata, before its message is read: grpc-js
   * reads a whole message (up to max_recv_msg_size_mib) before the handler runs, so
   * unauthenticated clients holding unfinished messages could pin that much memory each.
   * Refused here, the call ends at once and its message is never buffered.
   */
  private readonly authenticateFirst: grpc.ServerInterceptor = (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            const auth = this.auth as BearerAuth;
            if (auth.allows(metadata.get("authorization")[0]?.toString())) return mdNext(metadata);
            this.counts.request("UNAUTHENTICATED");
            this.logUnauthenticated(call.getPeer());
            call.sendStatus({ code: grpc.status.UNAUTHENTICATED, details: "unauthenticated" });
          },
        });
      },
    });

  private logUnauthenticated(peer: string): void {
    if (this.events)
      logRefusal(
        this.events,
        "grpc",
        { reason: "unauthenticated", status: "UNAUTHENTICATED", message: "unauthenticated" },
        peer,
      );
  }

  /**
   * grpc-js answers some calls itself, before the handler sees them: a message over
   * max_recv_msg_size_mib (read or inflated) gets RESOURCE_EXHAUSTED, one that does not
   * inflate INTERNAL, and neither status passes through an interceptor. What this one sees
   * is that the call ended with no message received and no status sent through it (the
   * handler's and the auth check's do): that is logged, as such a refusal or a client that
   * gave up before sending.
   */
  private readonly observeUnanswered: grpc.ServerInterceptor = (_method, call) => {
    let settled = false;
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMessage: (message, mdNext) => {
            settled = true;
            mdNext(message);
          },
          onCancel: () => {
            if (settled || !this.events) return;
            logRefusal(
              this.events,
              "grpc",
              {
                reason: "not_received",
                status: "RESOURCE_EXHAUSTED or INTERNAL",
                message: `the call ended before its message was read: larger than max_recv_msg_size_mib (${this.config.max_recv_msg_size_mib} MiB) as sent or inflated, compression that does not inflate, or the client cancelled`,
              },
              call.getPeer(),
            );
          },
        }),
      sendStatus: (status, next) => {
        settled = true;
        next(status);
      },
    });
  };

  private readonly export = (
    call: grpc.ServerUnaryCall<Buffer, Uint8Array>,
    callback: grpc.sendUnaryData<Uint8Array>,
  ): void => {
    if (this.auth && !this.auth.allows(call.metadata.get("authorization")[0]?.toString())) {
      this.counts.request("UNAUTHENTICATED");
      this.logUnauthenticated(call.getPeer());
      callback({ code: grpc.status.UNAUTHENTICATED, details: "unauthenticated" });
      return;
    }
    if (this.limiter && !this.limiter.take()) {
      this.fail(callback, new RateLimitedError(this.rateLimitPerSecond), call.getPeer());
      return;
    }
    const receivedAt = receiveTimeUnixNano();
    this.consumer.consumeProtobuf(call.request, receivedAt, this.counts, new CallPeer(call)).then(
      (result) => {
        this.counts.request(result.rejected > 0 ? "partial" : "ok");
        const partial =
          result.rejected > 0
            ? { rejectedLogRecords: result.rejected, errorMessage: result.rejectMessage }
            : null;
        callback(null, encodeLogsResponse(partial));
      },
      (err) => this.fail(callback, err, call.getPeer()),
    );
  };

  private fail(callback: grpc.sendUnaryData<Uint8Array>, err: unknown, peer: string): void {
    const refusal = refusalFor(err, this.retryAfterSeconds);
    const status = grpc.status[refusal.grpc] ?? String(refusal.grpc);
    if (this.events) logRefusal(this.events, "grpc", { ...refusal, status }, peer);
    if (refusal.grpc === grpc.status.INTERNAL)
      this.logger.error({ err }, "unexpected error handling an OTLP/gRPC request");
    this.counts.request(status);
    const metadata = new grpc.Metadata();
    // google.rpc.Status with RetryInfo: the OTLP signal that RESOURCE_EXHAUSTED may be retried.
    metadata.set(
      "grpc-status-details-bin",
      Buffer.from(encodeStatus(refusal.grpc, refusal.message, refusal.retryAfter)),
    );
    callback({ code: refusal.grpc, details: refusal.message, metadata });
  }
}

/**
 * TLS (mTLS with client_ca_file) for the gRPC receiver, read when the server listens
 * (grpc-js' file-watching certificate providers did not complete a handshake in our tests,
 * hence the re-listen in watchCertificates).
 */
function credentialsFor(tls: TlsServerConfig | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(
    tls.client_ca_file ? readFileSync(tls.client_ca_file) : null,
    [{ private_key: readFileSync(tls.key_file), cert_chain: readFileSync(tls.cert_file) }],
    tls.client_ca_file !== undefined,
  );
}

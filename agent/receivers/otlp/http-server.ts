import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer, type Server as TlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { AgentError } from "../../common/errors.js";
import { splitEndpoint } from "../../common/config-schema.js";
import { type LogsConsumer, receiveTimeUnixNano } from "../../processing/pipeline.js";
import type { TransportCounts } from "../../telemetry/counters.js";
import type { Logger } from "../../telemetry/logger.js";
import type { OtlpHttpConfig, TlsServerConfig } from "./config.js";
import { decodeLogsRequestJsonPartial } from "../../otlp/json-codec.js";
import { logRefusal, type Refusal, refusalFor } from "./outcome.js";
import type { ThrottledEvents } from "../../telemetry/event-log.js";
import { encodeLogsResponse, encodeStatus } from "../../otlp/protobuf-codec.js";
import { BearerAuth, RateLimitedError, type TokenBucket } from "./security.js";
import { bodyTooLarge, HttpRefusal, Slots } from "./body-limits.js";
import { ACCEPTED_ENCODINGS, decompressBody, isAcceptedEncoding } from "./decompress.js";
import { SocketPeer } from "./peer.js";

/** OTLP/HTTP logs receiver (https://opentelemetry.io/docs/specs/otlp/#otlphttp). */

type BodyFormat = "protobuf" | "json";

/** Compressed requests decoded and consumed at once (each may hold max_request_body_size). */
const DECODE_SLOTS = 4;

const CONTENT_TYPES: Record<string, BodyFormat> = {
  "application/x-protobuf": "protobuf",
  "application/json": "json",
};

export class OtlpHttpReceiver {
  private server: Server | TlsServer | null = null;
  private readonly auth: BearerAuth | null;
  private reloadTimer: NodeJS.Timeout | null = null;
  private inFlight = 0;
  private stopping = false;
  private idle: Array<() => void> = [];
  private readonly decoding = new Slots(DECODE_SLOTS);

  constructor(
    private readonly config: OtlpHttpConfig,
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
    const tls = this.config.tls;
    const listener = (req: IncomingMessage, res: ServerResponse) => {
      this.inFlight++;
      this.handle(req, res).finally(() => {
        if (--this.inFlight === 0) for (const w of this.idle.splice(0)) w();
      });
    };
    const server = tls
      ? createTlsServer({ ...tlsOptions(tls), requestTimeout: 60_000 }, listener)
      : createServer({ requestTimeout: 60_000 }, listener);
    if (tls) this.watchCertificates(server as TlsServer, tls);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) => {
        const hint =
          err.code === "EADDRINUSE"
            ? " (another process uses this port; change receivers.otlp.protocols.http.endpoint)"
            : "";
        reject(
          new AgentError(
            "RECEIVER_LISTEN_FAILED",
            `OTLP/HTTP receiver cannot listen on ${this.config.endpoint}: ${err.message}${hint}`,
          ),
        );
      });
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    this.logger.info({ endpoint: this.address() }, "OTLP/HTTP receiver listening");
  }

  /** host:port actually bound (the port is chosen by the OS when configured as 0). */
  address(): string {
    const a = this.server?.address() as AddressInfo | null;
    if (!a) return "";
    return a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  /** Re-reads the certificate files every reload_interval and swaps them in when they change. */
  private watchCertificates(server: TlsServer, tls: TlsServerConfig): void {
    let current = JSON.stringify(tlsOptions(tls));
    this.reloadTimer = setInterval(() => {
      try {
        const next = tlsOptions(tls);
        const text = JSON.stringify(next);
        if (text === current) return;
        server.setSecureContext(next);
        current = text;
        this.logger.info(
          { cert: tls.cert_file },
          "OTLP/HTTP receiver reloaded its TLS certificates",
        );
      } catch (err) {
        this.logger.error(
          { err: (err as Error).message },
          "cannot reload TLS certificates; keeping the current ones",
        );
      }
    }, tls.reload_interval);
    this.reloadTimer.unref();
  }

  /** Stops accepting; resolves when requests already being handled have been answered. */
  /** Stops taking requests; waits for those in flight, for `timeoutMs` at most. */
  async shutdown(timeoutMs = 30_000): Promise<void> {
    this.stopping = true;
    if (this.reloadTimer) clearInterval(this.reloadTimer);
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    if (this.inFlight > 0)
      await Promise.race([
        new Promise<void>((resolve) => this.idle.push(resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
      ]);
    server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let format: BodyFormat = "json";
    try {
      const path = (req.url ?? "/").split("?")[0];
      if (path !== this.config.logs_url_path) {
        throw new HttpRefusal(
          404,
          `no OTLP endpoint at ${path}: logs are accepted at POST ${this.config.logs_url_path}`,
          "not_found",
        );
      }
      if (req.method !== "POST") {
        res.setHeader("Allow", "POST");
        throw new HttpRefusal(
          405,
          `method ${req.method} is not allowed: send logs with POST`,
          "bad_method",
        );
      }
      if (this.auth && !this.auth.allows(req.headers.authorization)) {
        res.setHeader("WWW-Authenticate", 'Bearer realm="otlp"');
        throw new HttpRefusal(401, "unauthenticated", "unauthenticated");
      }
      if (this.limiter && !this.limiter.take()) throw new RateLimitedError(this.rateLimitPerSecond);
      const mediaType =
        (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
      const known = CONTENT_TYPES[mediaType];
      if (!known) {
        throw new HttpRefusal(
          415,
          `unsupported content type "${mediaType}": use application/x-protobuf or application/json`,
          "bad_content_type",
        );
      }
      format = known;
      const encoding = (req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
      const plain = encoding === "identity" || encoding === "";
      if (!plain && !isAcceptedEncoding(encoding)) {
        throw new HttpRefusal(
          415,
          `unsupported content encoding "${encoding}": use ${ACCEPTED_ENCODINGS.join(", ")} or none`,
          "bad_encoding",
        );
      }
      const limit = this.config.max_request_body_size;
      const body = await this.readBody(req, limit);
      const peer = new SocketPeer(req.socket);
      const consume = (decoded: Buffer) => {
        const receivedAt = receiveTimeUnixNano();
        return format === "protobuf"
          ? this.consumer.consumeProtobuf(decoded, receivedAt, this.counts, peer)
          : this.consumeJson(decoded, receivedAt, peer);
      };
      // A decompressed body is held until it is stored: a few at a time (Slots).
      const result =
        plain || !isAcceptedEncoding(encoding)
          ? await consume(body)
          : await this.decoding.run(async () =>
              consume(await decompressBody(body, encoding, limit)),
            );
      this.counts.request(result.rejected > 0 ? "partial" : "ok");
      const partial =
        result.rejected > 0
          ? { rejectedLogRecords: result.rejected, errorMessage: result.rejectMessage }
          : null;
      this.reply(
        res,
        200,
        format,
        format === "protobuf" ? encodeLogsResponse(partial) : successJson(partial),
      );
    } catch (err) {
      this.refuse(req, res, format, err);
    }
  }

  /**
   * A malformed JSON request is refused whole (400); records holding a value that cannot be
   * stored exactly are refused on their own and reported as partial success
   * (docs/integrity-format.md §3.11).
   */
  private consumeJson(body: Buffer, receivedAt: string, peer: SocketPeer) {
    const { request, refused } = decodeLogsRequestJsonPartial(body);
    return this.consumer.consume(request, receivedAt, this.counts, refused, peer);
  }

  private readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
    const declared = Number(req.headers["content-length"] ?? -1);
    if (declared > limit) {
      return Promise.reject(bodyTooLarge(`the body of ${declared} bytes`, limit));
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          req.removeAllListeners("data");
          req.resume();
          reject(bodyTooLarge("the body", limit));
          return;
        }
        chunks.push(chunk);
      });
      req.on("end", () =>
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)),
      );
      req.on("error", (err) =>
        reject(new HttpRefusal(400, `error reading the request body: ${err.message}`, "malformed")),
      );
    });
  }

  private refuse(
    req: IncomingMessage,
    res: ServerResponse,
    format: BodyFormat,
    err: unknown,
  ): void {
    let refusal: Refusal;
    if (err instanceof HttpRefusal) {
      refusal = { http: err.status, grpc: 0, message: err.message, reason: err.reason };
    } else {
      refusal = refusalFor(err, this.retryAfterSeconds);
      if (refusal.http === 500)
        this.logger.error({ err }, "unexpected error handling an OTLP/HTTP request");
    }
    this.counts.request(String(refusal.http));
    if (this.events)
      logRefusal(this.events, "http", { ...refusal, status: refusal.http }, peerOf(req));
    if (refusal.retryAfter !== undefined) res.setHeader("Retry-After", String(refusal.retryAfter));
    // A refused body may be partly unread; do not let it be parsed as the next request.
    if (refusal.http === 413 || !req.complete) res.setHeader("Connection", "close");
    const code = grpcCodeForHttp(refusal.http);
    const body =
      format === "protobuf"
        ? encodeStatus(code, refusal.message)
        : JSON.stringify({ code, message: refusal.message });
    this.reply(res, refusal.http, format, body);
  }

  private reply(
    res: ServerResponse,
    status: number,
    format: BodyFormat,
    body: Uint8Array | string,
  ): void {
    if (this.stopping) res.setHeader("Connection", "close");
    res.writeHead(status, {
      "Content-Type": format === "protobuf" ? "application/x-protobuf" : "application/json",
    });
    res.end(body);
  }
}

function successJson(partial: { rejectedLogRecords: number; errorMessage: string } | null): string {
  if (!partial) return "{}";
  return JSON.stringify({
    partialSuccess: {
      rejectedLogRecords: String(partial.rejectedLogRecords),
      errorMessage: partial.errorMessage,
    },
  });
}

/** google.rpc.Code carried in HTTP error bodies. */
function grpcCodeForHttp(status: number): number {
  switch (status) {
    case 400:
      return 3; // INVALID_ARGUMENT
    case 401:
      return 16; // UNAUTHENTICATED
    case 404:
      return 5; // NOT_FOUND
    case 405:
    case 415:
      return 12; // UNIMPLEMENTED
    case 413:
    case 429:
      return 8; // RESOURCE_EXHAUSTED
    case 503:
      return 14; // UNAVAILABLE
    default:
      return 13; // INTERNAL
  }
}

function tlsOptions(tls: TlsServerConfig) {
  const ca = tls.client_ca_file ? readFileSync(tls.client_ca_file) : undefined;
  return {
    cert: readFileSync(tls.cert_file),
    key: readFileSync(tls.key_file),
    ca,
    // mTLS: with a client CA, a client must present a certificate it signed.
    requestCert: ca !== undefined,
    rejectUnauthorized: ca !== undefined,
    minVersion: tls.min_version === "1.3" ? ("TLSv1.3" as const) : ("TLSv1.2" as const),
  };
}

/** The client's address:port, as a log line names it. */
function peerOf(req: IncomingMessage): string {
  const { remoteAddress: a, remotePort: port } = req.socket;
  if (!a) return "unknown";
  return a.includes(":") ? `[${a}]:${port}` : `${a}:${port}`;
}

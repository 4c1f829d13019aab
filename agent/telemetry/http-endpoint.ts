import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { AgentError, type ErrorCode } from "../common/errors.js";
import { splitEndpoint } from "../common/config-schema.js";

/** How an HttpEndpoint serves; the defaults are the agent's GET-only plain HTTP endpoints. */
export interface HttpEndpointOptions {
  /** Methods passed to the handler; others get 405. Default GET and HEAD. */
  methods?: readonly string[];
  /** Serve HTTPS with this certificate chain and key (PEM). */
  tls?: { cert: Buffer; key: Buffer } | null;
  /** The error code when it cannot listen. Default ENDPOINT_LISTEN_FAILED. */
  listenErrorCode?: ErrorCode;
  /** Node's requestTimeout and headersTimeout, when set. */
  requestTimeoutMs?: number;
}

/** A small HTTP server for the metrics, health and checkpoint endpoints (and the witness's). */
export class HttpEndpoint {
  private server: Server | null = null;

  constructor(
    private readonly name: string,
    private readonly endpoint: string,
    private readonly handle: (
      path: string,
      req: IncomingMessage,
      res: ServerResponse,
    ) => Promise<void> | void,
    private readonly options: HttpEndpointOptions = {},
  ) {}

  async start(): Promise<void> {
    const methods = this.options.methods ?? ["GET", "HEAD"];
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      if (!methods.includes(req.method ?? "")) {
        res.writeHead(405, { Allow: methods.filter((m) => m !== "HEAD").join(", ") }).end();
        return;
      }
      Promise.resolve(
        this.handle(new URL(req.url ?? "/", "http://localhost").pathname, req, res),
      ).catch((err) => {
        res.writeHead(500, { "Content-Type": "text/plain" }).end(`${(err as Error).message}\n`);
      });
    };
    const { tls, requestTimeoutMs } = this.options;
    const server = tls
      ? createTlsServer({ cert: tls.cert, key: tls.key }, handler)
      : createServer(handler);
    if (requestTimeoutMs) {
      server.requestTimeout = requestTimeoutMs;
      server.headersTimeout = requestTimeoutMs;
    }
    const { host, port } = splitEndpoint(this.endpoint);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err) =>
        reject(
          new AgentError(
            this.options.listenErrorCode ?? "ENDPOINT_LISTEN_FAILED",
            `${this.name} cannot listen on ${this.endpoint}: ${err.message}`,
          ),
        ),
      );
      server.listen(port, host, () => resolve());
    });
    this.server = server;
  }

  address(): string {
    const a = this.server?.address() as AddressInfo | null;
    return a ? `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}` : "";
  }

  /**
   * Stops listening and closes the connections: at once, or with `graceMs` after the idle
   * ones, so requests under way can finish within it.
   */
  async shutdown(graceMs = 0): Promise<void> {
    const server = this.server;
    if (!server) return;
    if (graceMs <= 0) server.closeAllConnections();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = graceMs > 0 ? setTimeout(() => server.closeAllConnections(), graceMs) : null;
    await closed;
    if (timer) clearTimeout(timer);
  }
}

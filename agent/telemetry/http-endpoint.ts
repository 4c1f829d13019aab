import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { AgentError } from "../common/errors.js";
import { splitEndpoint } from "../common/config-schema.js";

/** A small GET-only HTTP server for the metrics and health endpoints. */
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
  ) {}

  async start(): Promise<void> {
    const { host, port } = splitEndpoint(this.endpoint);
    const server = createServer((req, res) => {
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { Allow: "GET" }).end();
        return;
      }
      Promise.resolve(
        this.handle(new URL(req.url ?? "/", "http://localhost").pathname, req, res),
      ).catch((err) => {
        res.writeHead(500, { "Content-Type": "text/plain" }).end(`${(err as Error).message}\n`);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err) =>
        reject(
          new AgentError(
            "ENDPOINT_LISTEN_FAILED",
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

  async shutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

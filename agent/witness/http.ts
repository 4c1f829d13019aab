import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpEndpoint } from "../telemetry/http-endpoint.js";
import type { Registry } from "../telemetry/prometheus.js";
import type { WitnessHealth } from "./health.js";
import type { WitnessObserver } from "./observer.js";
import type { Refusal } from "./refusal.js";
import type { Witness } from "./witness.js";

/**
 * The witness's HTTP(S) server:
 *   POST <prefix>/add-checkpoint         C2SP tlog-witness: the cosignature line, or a refusal
 *   GET  /<sha256(origin)>/checkpoint    the latest cosigned checkpoint of a log (404: none)
 *   GET  /healthz                        200 "ok", or 503 with one alarm per line
 *   GET  /metrics                        Prometheus text
 */

export interface WitnessServerOptions {
  listen: string;
  tls: { cert: Buffer; key: Buffer } | null;
  maxBodyBytes: number;
  submissionPrefix: string;
}

export interface WitnessServerParts {
  witness: Witness;
  observer: WitnessObserver;
  health: WitnessHealth;
  registry: Registry;
}

const TEXT = "text/plain; charset=utf-8";
const MONITORING_PATH = /^\/([0-9a-f]{64})\/checkpoint$/;
/** How long shutdown waits for requests under way (a cosignature being saved) to finish. */
const SHUTDOWN_GRACE_MS = 5000;
/** Slow clients (headers or body) are cut off after this long. */
const REQUEST_TIMEOUT_MS = 30_000;

export class WitnessServer {
  private readonly endpoint: HttpEndpoint;

  constructor(
    private readonly options: WitnessServerOptions,
    private readonly parts: WitnessServerParts,
  ) {
    this.endpoint = new HttpEndpoint(
      "the witness",
      options.listen,
      (path, req, res) =>
        this.route(path, req, res).catch((err: unknown) => {
          parts.observer.requestFailed(err);
          if (!res.headersSent)
            send(res, 500, TEXT, "internal error: the checkpoint was not cosigned\n");
          else res.destroy();
        }),
      {
        methods: ["GET", "HEAD", "POST"],
        tls: options.tls,
        listenErrorCode: "WITNESS_LISTEN_FAILED",
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
      },
    );
  }

  start(): Promise<void> {
    return this.endpoint.start();
  }

  /** host:port it listens on. */
  address(): string {
    return this.endpoint.address();
  }

  /** Stops accepting, lets requests under way finish (up to a grace period), then closes. */
  shutdown(): Promise<void> {
    return this.endpoint.shutdown(SHUTDOWN_GRACE_MS);
  }

  private async route(path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (path === `${this.options.submissionPrefix}/add-checkpoint`) {
      if (req.method !== "POST") return methodNotAllowed(res, "POST");
      return this.addCheckpoint(req, res);
    }
    const monitored = MONITORING_PATH.exec(path);
    if (!monitored && path !== "/healthz" && path !== "/metrics")
      return send(res, 404, TEXT, "not found\n");
    if (req.method === "POST") return methodNotAllowed(res, "GET");
    if (monitored) {
      const note = this.parts.witness.latest(monitored[1] as string);
      if (note === null) return send(res, 404, TEXT, "no checkpoint of this log was cosigned\n");
      return send(res, 200, TEXT, note);
    }
    if (path === "/healthz") {
      const reasons = this.parts.health.reasons();
      if (reasons.length === 0) return send(res, 200, TEXT, "ok\n");
      return send(res, 503, TEXT, reasons.map((r) => `${r}\n`).join(""));
    }
    const { registry } = this.parts;
    return send(res, 200, registry.contentType, await registry.metrics());
  }

  private async addCheckpoint(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, this.options.maxBodyBytes);
    if (body === null) {
      const tooLarge: Refusal = {
        status: 413,
        reason: "malformed",
        message: `the body is larger than ${this.options.maxBodyBytes} bytes`,
      };
      this.parts.observer.refused("", tooLarge);
      res.setHeader("Connection", "close");
      return send(res, 413, TEXT, `${tooLarge.message}\n`);
    }
    const result = await this.parts.witness.addCheckpoint(body);
    if (result.status === 200) return send(res, 200, TEXT, result.cosignature);
    if (result.status === 409) return send(res, 409, "text/x.tlog.size", `${result.latestSize}\n`);
    return send(res, result.status, TEXT, `${result.message}\n`);
  }
}

/** The request body, or null when it is larger than `max` bytes (the rest is discarded). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = declared > max;
    if (tooLarge) resolve(null);
    req.on("data", (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > max) {
        tooLarge = true;
        chunks.length = 0;
        resolve(null);
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(tooLarge ? null : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    "Content-Type": contentType,
    "Content-Length": Buffer.byteLength(body),
  });
  res.end(body);
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader("Allow", allow);
  send(res, 405, TEXT, `method not allowed: use ${allow}\n`);
}

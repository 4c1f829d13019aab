import type { IncomingMessage, ServerResponse } from "node:http";
import { AgentError } from "../common/errors.js";
import { HttpEndpoint } from "../telemetry/http-endpoint.js";
import type { Logger } from "../telemetry/logger.js";
import type { SealedLog } from "../store/sealed-log.js";
import { proveConsistency, proveInclusion } from "../integrity/proofs.js";

/**
 * Serves the chain's latest signed checkpoint and RFC 6962 proofs, so monitors can keep
 * checkpoints outside the agent's reach and check new ones against them:
 *   GET /checkpoint                          the latest C2SP signed checkpoint note
 *   GET /proof/inclusion?seq=N[&size=M]      inclusion proof of record N (JSON)
 *   GET /proof/consistency?old=A[&new=B]     consistency proof between tree sizes (JSON)
 */
export class CheckpointServer {
  private readonly endpoint: HttpEndpoint;

  constructor(
    endpoint: string,
    private readonly sealed: SealedLog,
    private readonly logger: Logger,
  ) {
    this.endpoint = new HttpEndpoint("checkpoint endpoint", endpoint, (_path, req, res) =>
      this.handle(req, res).catch((err) => this.send(res, 500, { error: (err as Error).message })),
    );
  }

  async start(): Promise<void> {
    await this.endpoint.start();
    this.logger.info({ endpoint: this.address() }, "serving checkpoints and proofs");
  }

  address(): string {
    return this.endpoint.address();
  }

  shutdown(): Promise<void> {
    return this.endpoint.shutdown();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const int = (name: string): number | undefined => {
      const v = url.searchParams.get(name);
      if (v === null) return undefined;
      if (!/^\d+$/.test(v))
        throw new AgentError("PROOF_BAD_PARAM", `${name} must be a non-negative integer`);
      return Number(v);
    };
    try {
      switch (url.pathname) {
        case "/checkpoint": {
          const note = this.sealed.latestCheckpoint?.note;
          if (note === undefined)
            return this.send(res, 404, { error: "no batch has been sealed yet" });
          res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
          res.end(note);
          return;
        }
        case "/proof/inclusion": {
          const seq = int("seq");
          if (seq === undefined) return this.send(res, 400, { error: "seq is required" });
          return this.send(res, 200, await proveInclusion(this.sealed.tree, seq, int("size")));
        }
        case "/proof/consistency": {
          const old = int("old");
          if (old === undefined) return this.send(res, 400, { error: "old is required" });
          return this.send(res, 200, await proveConsistency(this.sealed.tree, old, int("new")));
        }
        default:
          return this.send(res, 404, {
            error: "paths: /checkpoint, /proof/inclusion?seq=N, /proof/consistency?old=A",
          });
      }
    } catch (err) {
      if (err instanceof AgentError) return this.send(res, 400, { error: err.message });
      throw err;
    }
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(`${JSON.stringify(body, null, 2)}\n`);
  }
}

import { readFileSync } from "node:fs";
import type { Dispatcher } from "undici";
import {
  type CosignerKey,
  cosignatureOf,
  parseCosignerKey,
  verifyCosignature,
} from "../integrity/cosignature.js";
import { parseNote } from "../integrity/note.js";
import type { WitnessConfig } from "./witness-config.js";
import { tlsConnectOptions } from "../common/tls-client.js";

/**
 * One witness, as the C2SP tlog-witness protocol sees it from a log: `POST
 * <url>/add-checkpoint` with the size the witness last cosigned, a consistency proof from
 * it, and the signed checkpoint; the answer is the witness's cosignature line, or a status
 * that says why not (https://c2sp.org/tlog-witness). Only cosignatures that verify with the
 * configured key are kept.
 */
export type SubmitOutcome =
  /** The witness cosigned: its signature lines, each checked. */
  | { kind: "cosigned"; lines: string[] }
  /** 409: the witness's latest cosigned size is not the one sent (learned from the body). */
  | { kind: "conflict"; size: number }
  /** Any other answer: 403 (signature), 404 (unknown log), 422 (inconsistent: a fork)… */
  | { kind: "refused"; status: number; detail: string }
  /** No answer: network, TLS, timeout. */
  | { kind: "unreachable"; detail: string };

/** What of an answer is read: a cosignature line is ~120 bytes, a 409 a number. */
const MAX_ANSWER_BYTES = 16 * 1024;

/** Reads a body up to `limit` bytes, then drops the rest (and the connection with it). */
async function readAtMost(
  body: AsyncIterable<Buffer> & { destroy(): void },
  limit: number,
): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    parts.push(chunk);
    size += chunk.length;
    if (size >= limit) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(parts).subarray(0, limit).toString("utf8");
}

export class WitnessClient {
  readonly key: CosignerKey;
  private dispatcher: Promise<Dispatcher> | null = null;
  private readonly endpoint: URL;

  constructor(readonly config: WitnessConfig) {
    this.key = parseCosignerKey(config.key);
    this.endpoint = new URL(`${config.url.replace(/\/+$/, "")}/add-checkpoint`);
  }

  get name(): string {
    return this.key.name;
  }

  /** Submits `note` (a signed checkpoint whose text is `text`) with a proof from `oldSize`. */
  async addCheckpoint(
    oldSize: number,
    proof: readonly Uint8Array[],
    note: string,
    text: string,
  ): Promise<SubmitOutcome> {
    const body = `old ${oldSize}\n${proof.map((h) => `${Buffer.from(h).toString("base64")}\n`).join("")}\n${note}`;
    let status: number;
    let answer: string;
    try {
      const { request } = await import("undici");
      // One deadline for the whole exchange, and an answer read only as far as a
      // cosignature needs: a witness that drips or floods its answer costs neither time
      // (shutdown waits for requests in flight) nor memory.
      const signal = AbortSignal.timeout(this.config.timeout);
      const res = await request(this.endpoint, {
        method: "POST",
        body,
        headers: this.headers(),
        dispatcher: await this.pool(),
        signal,
      });
      status = res.statusCode;
      answer = await readAtMost(res.body, MAX_ANSWER_BYTES);
    } catch (err) {
      return { kind: "unreachable", detail: (err as Error).message };
    }
    if (status === 409 && /^\d+\n?$/.test(answer))
      return { kind: "conflict", size: Number(answer) };
    if (status !== 200) return { kind: "refused", status, detail: answer.trim().slice(0, 200) };
    const lines = this.checkedCosignatures(answer, text);
    return lines.length > 0
      ? { kind: "cosigned", lines }
      : {
          kind: "refused",
          status,
          detail: "no cosignature by the configured witness key verifies",
        };
  }

  /**
   * This witness's valid cosignature of `text` in the answer, at most one, as a line
   * rebuilt from its decoded bytes: the canonical spelling verifiers require (a line with
   * spare base64 padding verifies too, but would make the stored checkpoint fail
   * verification everywhere).
   */
  private checkedCosignatures(answer: string, text: string): string[] {
    const lines = answer.split("\n").filter((l) => l.startsWith("\u2014 "));
    for (const line of lines) {
      try {
        // One line as a note of its own, to reuse the signed-note parser.
        const [sig] = parseNote(`x\n\n${line}\n`).signatures;
        const c = sig ? cosignatureOf(sig) : null;
        if (sig && c && verifyCosignature(c, this.key, text)) {
          const blob = Buffer.concat([Buffer.from(sig.keyId, "hex"), sig.signature]);
          return [`\u2014 ${sig.name} ${blob.toString("base64")}\n`];
        }
      } catch {
        // not a line of this witness
      }
    }
    return [];
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
    const file = this.config.bearer_token_file;
    if (file) headers.authorization = `Bearer ${readFileSync(file, "utf8").trim()}`;
    return headers;
  }

  private pool(): Promise<Dispatcher> {
    this.dispatcher ??= import("undici").then(({ Agent }) => {
      return new Agent({ connect: tlsConnectOptions(this.config.tls) });
    });
    return this.dispatcher;
  }

  /** Ends its connections at once: a witness never holds up a shutdown. */
  async close(): Promise<void> {
    if (this.dispatcher) await (await this.dispatcher).destroy();
  }
}

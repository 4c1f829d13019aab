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
      const res = await request(this.endpoint, {
        method: "POST",
        body,
        headers: this.headers(),
        dispatcher: await this.pool(),
        headersTimeout: this.config.timeout,
        bodyTimeout: this.config.timeout,
      });
      status = res.statusCode;
      answer = (await res.body.text()).slice(0, 4096);
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

  /** The response's signature lines that are this witness's valid cosignatures of `text`. */
  private checkedCosignatures(answer: string, text: string): string[] {
    const lines = answer.split("\n").filter((l) => l.startsWith("\u2014 "));
    return lines.flatMap((line) => {
      try {
        // One line as a note of its own, to reuse the signed-note parser.
        const [sig] = parseNote(`x\n\n${line}\n`).signatures;
        const c = sig ? cosignatureOf(sig) : null;
        return c && verifyCosignature(c, this.key, text) ? [`${line}\n`] : [];
      } catch {
        return [];
      }
    });
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

  async close(): Promise<void> {
    if (this.dispatcher) await (await this.dispatcher).close();
  }
}

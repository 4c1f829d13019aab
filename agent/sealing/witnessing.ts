import { proveConsistency } from "../integrity/proofs.js";
import { parseCheckpointText, parseNote } from "../integrity/note.js";
import type { SealedLog } from "../store/sealed-log.js";
import { LogThrottle } from "../telemetry/log-throttle.js";
import type { Logger } from "../telemetry/logger.js";
import { WitnessClient } from "./witness-client.js";
import type { WitnessConfig } from "./witness-config.js";

/**
 * Asks witnesses to cosign each new checkpoint (docs/witness.md). After a batch is sealed,
 * its checkpoint is submitted to every witness with a consistency proof from the size that
 * witness last cosigned; the cosignatures that come back within `waitMs` are added to the
 * checkpoint in the WAL before exporters ship the batch, so every backend holds them.
 * Nothing waits longer than that: a witness that is down costs `waitMs` per batch at most,
 * is retried with backoff, and is reported (metric, health) after `staleAfterMs`.
 * Acknowledgements never wait for witnesses.
 */
export interface WitnessingOptions {
  sealed: SealedLog;
  witnesses: readonly WitnessConfig[];
  quorum: number;
  waitMs: number;
  staleAfterMs: number;
  logger: Logger;
}

/** What the agent knows of one witness. */
export interface WitnessState {
  name: string;
  url: string;
  /** The tree size it last cosigned (from a cosignature or a 409), null before it said. */
  size: number | null;
  lastCosignedAt: number | null;
  cosignatures: number;
  failures: Record<string, number>;
  lastError: string | null;
  /** A refusal that needs a person: a fork (422), an unknown log (404), a bad signature (403). */
  refusal: string | null;
}

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;

class Witness {
  readonly state: WitnessState;
  busy = false;
  notBefore = 0;
  backoffMs = MIN_BACKOFF_MS;
  readonly logged = new LogThrottle(60_000);

  constructor(readonly client: WitnessClient) {
    this.state = {
      name: client.name,
      url: client.config.url,
      size: null,
      lastCosignedAt: null,
      cosignatures: 0,
      failures: {},
      lastError: null,
      refusal: null,
    };
  }

  failed(reason: string, detail: string): void {
    this.state.failures[reason] = (this.state.failures[reason] ?? 0) + 1;
    this.state.lastError = `${reason}: ${detail}`;
    this.notBefore = Date.now() + this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
  }
}

export class Witnessing {
  private readonly witnesses: Witness[];
  private loop: Promise<void> | null = null;
  private stopping = false;
  private signalStop: () => void = () => {};
  private readonly stopped = new Promise<void>((resolve) => {
    this.signalStop = resolve;
  });
  private readonly startedAt = Date.now();
  private readonly roundFailures = new LogThrottle(60_000);

  constructor(private readonly options: WitnessingOptions) {
    this.witnesses = options.witnesses.map((w) => new Witness(new WitnessClient(w)));
  }

  /** Holds new entries back from exporters until their checkpoint's round is over. */
  start(): void {
    this.options.sealed.exportable.hold();
    this.loop = this.run().catch((err: unknown) => {
      // Not expected (rounds catch their own failures): never hold batches back for it.
      this.options.logger.error({ err }, "witnessing stopped; batches are exported uncosigned");
      this.options.sealed.exportable.releaseAll();
    });
  }

  /**
   * Stops after the round under way (at most waitMs) and one last round for what sealing
   * sealed at shutdown, so the final checkpoint reaches the backends cosigned too; then
   * every entry is exportable.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.signalStop();
    await this.loop;
    const { sealed } = this.options;
    if (sealed.exportable.count < sealed.entryCount)
      await this.roundAfter(sealed.exportable.count - 1);
    sealed.exportable.releaseAll();
    await Promise.all(this.witnesses.map((w) => w.client.close()));
  }

  /** Each witness as the agent knows it (metrics, health). */
  get states(): readonly WitnessState[] {
    return this.witnesses.map((w) => w.state);
  }

  /** What an operator must hear: stale witnesses, refusals (health's degraded reasons). */
  problems(now = Date.now()): string[] {
    const problems: string[] = [];
    const size = this.latestSize();
    let fresh = 0;
    for (const { state } of this.witnesses) {
      if (state.refusal) problems.push(`witness ${state.name} refused: ${state.refusal}`);
      const since = state.lastCosignedAt ?? this.startedAt;
      const behind = size !== null && (state.size ?? -1) < size;
      if (behind && now - since > this.options.staleAfterMs)
        problems.push(
          `witness ${state.name} has not cosigned a checkpoint since ${state.lastCosignedAt ? new Date(state.lastCosignedAt).toISOString() : "the agent started"} (${state.lastError ?? "no answer yet"})`,
        );
      else fresh++;
    }
    if (fresh < this.options.quorum)
      problems.push(
        `fewer than ${this.options.quorum} witnesses cosign: new checkpoints are not witnessed`,
      );
    return problems;
  }

  private latestSize(): number | null {
    const note = this.options.sealed.latestCheckpoint?.note;
    return note ? parseCheckpointText(parseNote(note).text).size : null;
  }

  private async run(): Promise<void> {
    let seen = this.options.sealed.entryCount - 1;
    while (!this.stopping) {
      await Promise.race([this.options.sealed.waitForEntryAfter(seen), this.stopped]);
      if (this.stopping) break;
      seen = await this.roundAfter(seen);
    }
  }

  /**
   * One round for the newest checkpoint after entry `seen`, then everything up to the newest
   * entry is released; returns that entry. A round that fails (a WAL write refused) is
   * logged and its batches go out uncosigned: the next round tries again.
   */
  private async roundAfter(seen: number): Promise<number> {
    const { sealed, logger } = this.options;
    const count = sealed.entryCount;
    try {
      const newest = await this.newestCheckpoint(seen);
      if (newest) await this.witness(newest.index, newest.note);
    } catch (err) {
      if (this.roundFailures.failed())
        logger.error(
          { err, failures: this.roundFailures.count },
          "a witnessing round failed; its batches are exported without cosignatures (logged at most every 60 s)",
        );
    }
    sealed.exportable.release(count);
    return count - 1;
  }

  /**
   * The newest entry after `after` with a checkpoint: only it is worth a round, as a
   * witness's cosignature of it vouches for every smaller tree too (it checked consistency).
   */
  private async newestCheckpoint(after: number): Promise<{ index: number; note: string } | null> {
    for (let i = this.options.sealed.entryCount - 1; i > after; i--) {
      const entry = await this.options.sealed.readEntry(i);
      if (entry?.checkpoint) return { index: i, note: entry.checkpoint };
    }
    return null;
  }

  /** One round for entry `index`'s checkpoint: cosignatures within waitMs, stored with it. */
  private async witness(index: number, note: string): Promise<void> {
    const text = parseNote(note).text;
    const size = parseCheckpointText(text).size;
    // One line per witness key: the quorum counts witnesses, not lines.
    const lines = new Map<string, string>();
    const now = Date.now();
    const asked = this.witnesses.filter((w) => !w.busy && w.notBefore <= now);
    let quorumReached: () => void = () => {};
    const quorum = new Promise<void>((resolve) => {
      quorumReached = resolve;
    });
    const rounds = asked.map(async (w) => {
      const [line] = await this.submit(w, size, note, text);
      if (line !== undefined) lines.set(w.client.key.verifierKey, line);
      if (lines.size >= this.options.quorum) quorumReached();
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(rounds),
      quorum,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.waitMs);
      }),
    ]);
    clearTimeout(timer);
    if (lines.size > 0)
      await this.options.sealed.cosigned(index, note + [...lines.values()].join(""));
  }

  /** Submits to one witness, learning its size from a 409 once; its cosignature lines. */
  private async submit(w: Witness, size: number, note: string, text: string): Promise<string[]> {
    w.busy = true;
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const old = w.state.size ?? 0;
        if (old > size) {
          this.refused(
            w,
            "ahead",
            `it cosigned ${old} records of this log, more than the ${size} sealed here: the log was rolled back or forked`,
          );
          return [];
        }
        const proof =
          old === 0 || old === size
            ? []
            : (await proveConsistency(this.options.sealed.tree, old, size)).proof.map((h) =>
                Buffer.from(h, "hex"),
              );
        const outcome = await w.client.addCheckpoint(old, proof, note, text);
        if (outcome.kind === "cosigned") {
          Object.assign(w.state, {
            size,
            lastCosignedAt: Date.now(),
            lastError: null,
            refusal: null,
          });
          w.state.cosignatures++;
          w.backoffMs = MIN_BACKOFF_MS;
          w.logged.succeeded();
          return outcome.lines;
        }
        if (outcome.kind === "conflict") {
          w.state.size = outcome.size;
          continue;
        }
        if (outcome.kind === "unreachable") this.unreachable(w, outcome.detail);
        else this.refused(w, `http_${outcome.status}`, `HTTP ${outcome.status}: ${outcome.detail}`);
        return [];
      }
      this.unreachable(w, "its size changed twice during one submission");
      return [];
    } finally {
      w.busy = false;
    }
  }

  private unreachable(w: Witness, detail: string): void {
    w.failed("unreachable", detail);
    if (w.logged.failed())
      this.options.logger.warn(
        { witness: w.state.name, url: w.state.url, err: detail, failures: w.logged.count },
        "witness did not answer; retrying with backoff (logged at most every 60 s)",
      );
  }

  /** A refusal means the witness disagrees with this log (a fork, a rollback) or its config. */
  private refused(w: Witness, reason: string, detail: string): void {
    w.failed(reason, detail);
    w.state.refusal = detail;
    if (w.logged.failed())
      this.options.logger.error(
        { witness: w.state.name, url: w.state.url, reason, detail },
        "witness refused the checkpoint: a 422 means it holds a history this log is not consistent with (a fork or a rollback); 403/404 that it does not know this log or key",
      );
  }
}

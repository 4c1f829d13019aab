import type { Clock } from "../common/clock.js";
import { type CosignerKey, cosign, cosignerKeyOf } from "../integrity/cosignature.js";
import { type Checkpoint, parseCheckpointText, parseNote, verifyNote } from "../integrity/note.js";
import type { SigningKey } from "../integrity/signing.js";
import { checkExtends, EMPTY_TREE } from "./check.js";
import type { LogDirectory, LogMatch } from "./logs.js";
import { KeyedMutex } from "./mutex.js";
import type { WitnessObserver } from "./observer.js";
import { type Refusal, refusal } from "./refusal.js";
import { type AddCheckpointRequest, isRefusal, parseAddCheckpoint } from "./request.js";
import type { StateStore } from "./state.js";

/**
 * A C2SP tlog-witness (https://c2sp.org/tlog-witness): it cosigns a log's checkpoint when
 * the log's key signed it and it extends the last checkpoint the witness cosigned for that
 * log, and never otherwise. add-checkpoint runs, in the spec's order: the body (400), the
 * origin (404), the signatures (403), the checkpoint (400), then, one request per log at a
 * time, the consistency rules (check.ts: 400, 409, 422) and the durable save before the
 * cosignature is returned.
 */

export type AddCheckpointResult = { status: 200; cosignature: string } | Refusal;

export interface WitnessParts {
  key: SigningKey;
  logs: LogDirectory;
  state: StateStore;
  observer: WitnessObserver;
  clock: Clock;
}

export class Witness {
  private readonly mutex = new KeyedMutex();
  private readonly cosigner: CosignerKey;

  constructor(private readonly parts: WitnessParts) {
    this.cosigner = cosignerKeyOf(parts.key);
  }

  async addCheckpoint(body: Uint8Array): Promise<AddCheckpointResult> {
    const { observer } = this.parts;
    const request = parseAddCheckpoint(body);
    if (isRefusal(request)) return observer.refused("", request);
    const log = this.parts.logs.find(request.origin);
    if (!log)
      return observer.refused(
        "",
        refusal(404, "unknown_log", `unknown log origin "${request.origin.slice(0, 200)}"`),
      );
    const signed = signedCheckpoint(request.note, log);
    if (isRefusal(signed)) return observer.refused(log.label, signed);
    return this.mutex.run(log.origin, () => this.advance(request, signed));
  }

  /** The latest cosigned note of the log whose origin's SHA-256 is `hash` (hex), or null. */
  latest(hash: string): string | null {
    return this.parts.state.byOriginHash(hash)?.note ?? null;
  }

  /** Under the log's lock: check against what was cosigned, cosign, save, answer. */
  private async advance(
    request: AddCheckpointRequest,
    signed: { checkpoint: Checkpoint; text: string; logLines: string },
  ): Promise<AddCheckpointResult> {
    const { checkpoint, text } = signed;
    const { state, observer, clock } = this.parts;
    const cosigned = state.get(checkpoint.origin) ?? EMPTY_TREE;
    const problem = checkExtends(cosigned, request.oldSize, request.proof, checkpoint);
    if (problem)
      return observer.refused(checkpoint.origin, problem, {
        oldSize: request.oldSize,
        cosigned,
        checkpoint,
        note: request.note,
      });
    const time = Math.max(1, Math.floor(clock.now() / 1000));
    const line = cosign(text, this.parts.key, time);
    const saved = {
      origin: checkpoint.origin,
      size: checkpoint.size,
      rootHash: checkpoint.rootHash,
      time,
      note: `${text}\n${signed.logLines}${line}`,
    };
    try {
      await state.save(saved);
    } catch (err) {
      observer.stateFailed(checkpoint.origin, err);
      throw err;
    }
    observer.cosigned(saved);
    return { status: 200, cosignature: line };
  }
}

/**
 * The checkpoint of a note signed by the log: at least one valid signature by its keys and
 * no invalid one (403), signatures by other keys ignored; a malformed note or checkpoint is
 * a 400.
 */
function signedCheckpoint(
  note: string,
  log: LogMatch,
): { checkpoint: Checkpoint; text: string; logLines: string } | Refusal {
  let parsed;
  try {
    parsed = parseNote(note);
  } catch (err) {
    return refusal(400, "malformed", (err as Error).message);
  }
  const { valid, invalid } = verifyNote(parsed, log.keys);
  if (invalid.length > 0)
    return refusal(
      403,
      "bad_signature",
      `the signature of key ${invalid[0]?.name}+${invalid[0]?.keyId} does not verify`,
    );
  if (valid.length === 0)
    return refusal(403, "bad_signature", "no signature by a key this witness trusts for the log");
  // What is kept and served: the log's verified signatures, each in its canonical spelling.
  // Lines by unknown keys, and other spellings, are not the witness's to republish.
  const logLines = parsed.signatures
    .filter((sig) => valid.some((k) => k.name === sig.name && k.keyId === sig.keyId))
    .map(
      (sig) =>
        `\u2014 ${sig.name} ${Buffer.concat([Buffer.from(sig.keyId, "hex"), sig.signature]).toString("base64")}\n`,
    );
  try {
    return {
      checkpoint: parseCheckpointText(parsed.text),
      text: parsed.text,
      logLines: [...new Set(logLines)].join(""),
    };
  } catch (err) {
    return refusal(400, "malformed", (err as Error).message);
  }
}

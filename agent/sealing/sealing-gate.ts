import { type Clock, systemClock } from "../common/clock.js";
import type { WriteAdmission } from "../store/chain-log.js";
import type { SealedLog } from "../store/sealed-log.js";

/** Unsealed records beyond which the chain log holds its next group commit. */
const SEAL_LAG_RECORDS = 8192;
/** The longest one group commit waits for sealing: the gate slows ingest, never stops it. */
const SEAL_GATE_MAX_WAIT_MS = 500;

/**
 * Admission for the chain log's next group commit: none needed while sealing keeps up,
 * otherwise a wait until sealing is back within half the limit, SEAL_GATE_MAX_WAIT_MS at
 * most, or shutdown.
 *
 * Why: ingest and sealing share one event loop. With many concurrent senders, requests
 * took nearly every turn, sealing fell out of the chain log's in-memory tail, and then
 * every read it made waited a loaded turn: at 32 senders of 512 records, ingest ran at
 * 46k/s while sealing managed 6k/s and the exporters' backlog grew without bound. Holding
 * the next group commit until sealing catches up turns that into ack latency, which slows
 * the senders to the rate the whole chain sustains; WAL-full refusals stay the limit.
 */
export class SealingGate implements WriteAdmission {
  private stopped = false;
  private readonly limit: number;

  constructor(
    private readonly sealed: SealedLog,
    batchMaxRecords: number,
    /** Times the longest wait (systemClock by default). */
    private readonly clock: Clock = systemClock,
  ) {
    this.limit = Math.max(SEAL_LAG_RECORDS, 8 * batchMaxRecords);
  }

  admit(log: { readonly headSeq: number }): Promise<void> | null {
    if (this.stopped || log.headSeq - this.sealed.sealedThrough <= this.limit) return null;
    return new Promise((resolve) => {
      let settled = false;
      const done = () => {
        if (settled) return;
        settled = true;
        this.clock.clearTimeout(timer);
        resolve();
      };
      const timer = this.clock.setTimeout(done, SEAL_GATE_MAX_WAIT_MS).unref();
      const check = () => {
        if (settled) return;
        if (this.stopped || log.headSeq - this.sealed.sealedThrough <= this.limit / 2) done();
        else void this.sealed.waitForEntryAfter(this.sealed.entryCount - 1).then(check);
      };
      check();
    });
  }

  /** Lets every group commit through from now on (shutdown: sealing has stopped). */
  stop(): void {
    this.stopped = true;
    this.sealed.wake();
  }
}

import type { PublicKey } from "../integrity/signing.js";
import type { WitnessedLog } from "./config.js";

/**
 * Which configured log an origin belongs to: the entry with exactly that origin, else the one
 * with the longest origin_prefix it starts with. Every origin is its own log (own state), an
 * origin_prefix entry only shares its keys among them.
 */

export interface LogMatch {
  origin: string;
  keys: readonly PublicKey[];
  /**
   * How metrics and logs name the log before the checkpoint's signature is verified: the
   * configured origin, or the prefix followed by "*" (so unsigned requests cannot invent
   * label values).
   */
  label: string;
}

export class LogDirectory {
  private readonly exact = new Map<string, WitnessedLog>();
  private readonly prefixed: WitnessedLog[];

  constructor(logs: readonly WitnessedLog[]) {
    for (const log of logs) if (log.origin !== undefined) this.exact.set(log.origin, log);
    this.prefixed = logs
      .filter((l) => l.originPrefix !== undefined)
      .sort((a, b) => (b.originPrefix as string).length - (a.originPrefix as string).length);
  }

  find(origin: string): LogMatch | null {
    const exact = this.exact.get(origin);
    if (exact) return { origin, keys: exact.keys, label: origin };
    const prefixed = this.prefixed.find((l) => origin.startsWith(l.originPrefix as string));
    return prefixed ? { origin, keys: prefixed.keys, label: `${prefixed.originPrefix}*` } : null;
  }
}

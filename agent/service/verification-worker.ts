import { parentPort, workerData } from "node:worker_threads";
import { exporterDescriptors } from "../config/exporter-registry.js";
import { parseVerifierKey } from "../integrity/signing.js";
import type { VerificationRun } from "../verify/continuous.js";
import { verifySource } from "../verify/verify.js";

/**
 * A worker thread that verifies one exporter's backend for continuous verification, off
 * the ingest event loop and under the memory cap its creator set (verification-runner.ts).
 * It builds the exporter's reader from the descriptor and config it is given, verifies from
 * the state it is sent, and answers with the report and the advanced state.
 */
export interface WorkerInput {
  exporterType: string;
  /** The exporter's validated config (plain data). */
  config: unknown;
  /** Trusted verifier keys (C2SP verifier key strings). */
  trusted: string[];
  /** Earlier signed batches read again at random each run. */
  spotCheck: number;
}

async function main(): Promise<void> {
  const input = workerData as WorkerInput;
  const descriptor = exporterDescriptors.find((d) => d.type === input.exporterType);
  const factory = await descriptor?.load();
  if (!factory?.reader) throw new Error(`exporter type ${input.exporterType} cannot be read back`);
  const source = await factory.reader(input.config);
  const trusted = input.trusted.map((k) => parseVerifierKey(k));
  const port = parentPort;
  if (!port) return;
  port.once("message", (run: VerificationRun) => {
    let checked = 0;
    verifySource(source, trusted, run.known, {
      state: run.state,
      spotCheck: input.spotCheck,
      // The agent logs and reports findings; it needs the first of them, not a million.
      maxFindings: 1_000,
      onRecords: (_, n) => (checked = n),
    }).then(
      (report) => port.postMessage({ report, state: run.state, checked }),
      (err: unknown) =>
        port.postMessage({ error: err instanceof Error ? err.message : String(err) }),
    );
  });
}

void main();

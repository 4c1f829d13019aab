import { Worker } from "node:worker_threads";
import { builtModule } from "../common/package-root.js";
import type { PublicKey } from "../integrity/signing.js";
import type { VerificationResult, VerificationRun } from "../verify/continuous.js";
import type { WorkerInput } from "./verification-worker.js";

/**
 * Runs one continuous verification on a worker thread (verification-worker.ts): the
 * ingest event loop does none of it, the worker's heap is capped so a large backend cannot
 * take the pod's memory, and shutdown ends a run in progress instead of waiting for it.
 * A worker per run: its memory is returned when the run ends.
 */
export class VerificationRunner {
  private readonly running = new Set<Worker>();

  constructor(
    private readonly maxMemoryMib: number,
    private readonly trusted: readonly PublicKey[],
    private readonly spotCheck: number,
  ) {}

  /** A `verify` for one exporter's target. */
  forExporter(
    exporterType: string,
    config: unknown,
  ): (run: VerificationRun) => Promise<VerificationResult> {
    const trusted = this.trusted.map((k) => k.verifierKey);
    return (run) => this.run({ exporterType, config, trusted, spotCheck: this.spotCheck }, run);
  }

  private run(input: WorkerInput, run: VerificationRun): Promise<VerificationResult> {
    const worker = new Worker(builtModule(new URL("./verification-worker.js", import.meta.url)), {
      workerData: input,
      // A small young generation: the verifier's records outlive it anyway, and the worker's
      // RSS is the sidecar's (bench/RESULTS.md, in-agent verification).
      resourceLimits: { maxOldGenerationSizeMb: this.maxMemoryMib, maxYoungGenerationSizeMb: 8 },
    });
    this.running.add(worker);
    return new Promise<VerificationResult>((resolve, reject) => {
      worker.once("message", (answer: VerificationResult | { error: string }) => {
        if ("error" in answer) reject(new Error(answer.error));
        else resolve(answer);
        void worker.terminate();
      });
      worker.once("error", (err) => reject(describe(err, this.maxMemoryMib)));
      worker.once("exit", (code) => {
        this.running.delete(worker);
        reject(new Error(`verification stopped (worker exit code ${code})`));
      });
      worker.postMessage(run);
    });
  }

  /** Ends every run in progress (shutdown must not wait for one). */
  async stop(): Promise<void> {
    await Promise.all([...this.running].map((w) => w.terminate()));
  }
}

function describe(err: Error, maxMemoryMib: number): Error {
  const code = (err as { code?: string }).code;
  return code === "ERR_WORKER_OUT_OF_MEMORY"
    ? new Error(
        `verification needed more than extensions.verification.max_memory_mib (${maxMemoryMib} MiB); raise it`,
      )
    : err;
}

import { Worker } from "node:worker_threads";
import type { ErrorCode } from "../common/error-codes.js";
import { builtModule } from "../common/package-root.js";
import { AgentError } from "../common/errors.js";
import { ProgressLine } from "../verify/progress.js";
import { formatFindings, formatReport } from "../verify/report-text.js";
import type { VerifyReport } from "../verify/types.js";

/**
 * `audit-agent verify`: from --source SPEC (repeatable) and/or --config FILE --exporter ID
 * (repeatable; reads the backend exactly as that exporter writes it: endpoint, path style,
 * credentials, TLS). With --cross-check and two sources, the two are also compared record
 * by record.
 *
 * Exit status (docs/verify.md), so that a monitor can tell tampering from a failure to read:
 * 0 clean; 1 findings (or the verifier failed on its input: never taken for clean);
 * 2 usage (bad arguments, unreadable key or checkpoint files, a bad config); 3 a source
 * could not be read (SOURCE_UNREADABLE: network, permissions, I/O), nothing was judged.
 */
export interface VerifyOptions {
  source?: string[];
  config?: string;
  exporter?: string[];
  trust?: string[];
  checkpoint?: string[];
  crossCheck?: boolean;
  json?: boolean;
  /** One line per finding instead of grouped ranges. */
  verbose?: boolean;
  /** No progress line on a terminal. */
  quiet?: boolean;
  /** Incremental verification: the state file to resume from and to update. */
  state?: string;
  /** With state: earlier signed batches read again at random. */
  spotCheck?: number;
  /** Line-checking threads beside the judging one (default: cores − 1, at least 1). */
  threads?: number;
  /** Files of witness cosigner keys: the latest checkpoint must carry their cosignatures. */
  witness?: string[];
  /** Cosignatures required (default: every witness key given). */
  quorum?: number;
  /** Witnesses to fetch the newest cosigned checkpoint of each chain from. */
  witnessUrl?: string[];
}

export async function verifyCommand(opts: VerifyOptions): Promise<number> {
  // A line for a person at a terminal; never in a pipe or a log, nor with --quiet.
  const line = !opts.quiet && process.stderr.isTTY ? new ProgressLine(process.stderr) : null;
  let reports: VerifyReport[];
  try {
    reports = await collectOnWorker(opts, line);
  } finally {
    line?.done();
  }
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify(reports.length === 1 ? reports[0] : reports, null, 2)}\n`,
    );
  } else {
    process.stdout.write(
      reports
        .map((r) =>
          r.chains.length === 0 && r.source.startsWith("cross-check")
            ? formatCross(r, opts.verbose)
            : formatReport(r, { verbose: opts.verbose }),
        )
        .join("\n"),
    );
  }
  return reports.every((r) => r.ok) ? 0 : 1;
}

function formatCross(r: VerifyReport, verbose = false): string {
  const lines = [
    r.source,
    r.ok ? "OK: both hold the same records" : `FAILED: ${r.findings.length} differences`,
    ...formatFindings(r.findings, { verbose }),
  ];
  return `${lines.join("\n")}\n`;
}

/** The heap verification may use: its window, the manifests and the findings fit well in it. */
const VERIFY_HEAP_MIB = 160;

/**
 * Runs collectReports on a worker thread under VERIFY_HEAP_MIB; errors come back as thrown.
 * `audit-agent report` takes its verdict from here too.
 */
export function collectOnWorker(
  opts: VerifyOptions,
  line: ProgressLine | null,
): Promise<VerifyReport[]> {
  const worker = new Worker(builtModule(new URL("./verify-worker.js", import.meta.url)), {
    workerData: opts,
    // A small young generation: the window's records outlive it anyway, and the peak RSS
    // fell from 166 to 138 MiB at 1M records with it (bench/RESULTS.md), no slower.
    resourceLimits: { maxOldGenerationSizeMb: VERIFY_HEAP_MIB, maxYoungGenerationSizeMb: 8 },
  });
  return new Promise((resolve, reject) => {
    worker.on("message", (m: VerifyWorkerMessage) => {
      if (m.type === "source") line?.startSource(m.description);
      else if (m.type === "records") line?.records(m.chainId, m.n);
      else if (m.type === "done") resolve(m.reports);
      else
        reject(
          m.code
            ? new AgentError(m.code as ErrorCode, m.message)
            : new Error(m.message, { cause: m.stack }),
        );
    });
    worker.once("error", (err) =>
      reject(
        (err as { code?: string }).code === "ERR_WORKER_OUT_OF_MEMORY"
          ? new Error(`verification needed more than ${VERIFY_HEAP_MIB} MiB of heap`)
          : err,
      ),
    );
    worker.once("exit", (code) => reject(new Error(`verification stopped (exit code ${code})`)));
  });
}

/** What the verification worker (verify-worker.ts) sends. */
export type VerifyWorkerMessage =
  | { type: "source"; description: string }
  | { type: "records"; chainId: string; n: number }
  | { type: "done"; reports: VerifyReport[] }
  | { type: "error"; code?: string; message: string; stack?: string };

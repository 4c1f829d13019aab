import { existsSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { ErrorCode } from "../common/error-codes.js";
import { builtModule } from "../common/package-root.js";
import { AgentError } from "../common/errors.js";
import { publicKeyPath, readTrustedKeys } from "../integrity/key-files.js";
import { loadConfigFile } from "../config/load.js";
import { crossCheck } from "../verify/cross-check.js";
import { sourceFromSpec } from "../config/sources.js";
import { ProgressLine } from "../verify/progress.js";
import { formatFindings, formatReport } from "../verify/report-text.js";
import type { AuditSource, VerifyReport } from "../verify/types.js";
import { readState, writeState } from "../verify/state.js";
import { verifySource } from "../verify/verify.js";
import { LineCheckers } from "../verify/line-checkers.js";

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
}

async function sourcesFrom(
  opts: VerifyOptions,
): Promise<{ sources: AuditSource[]; defaultTrust: string[] }> {
  const sources = await Promise.all((opts.source ?? []).map(sourceFromSpec));
  const defaultTrust: string[] = [];
  if (opts.exporter?.length && !opts.config)
    throw new AgentError("VERIFY_BAD_USAGE", "--exporter needs --config FILE");
  if (opts.config) {
    const config = loadConfigFile(opts.config);
    const pub = publicKeyPath(config.signing.key_file);
    if (existsSync(pub)) defaultTrust.push(pub);
    const ids = opts.exporter?.length
      ? opts.exporter
      : config.exporters.filter((e) => e.factory.reader).map((e) => e.id);
    for (const id of ids) {
      const e = config.exporters.find((x) => x.id === id);
      if (!e) {
        throw new AgentError(
          "VERIFY_BAD_USAGE",
          `exporter "${id}" is not in the logs pipeline of ${opts.config} (exporters: ${config.exporters.map((x) => x.id).join(", ")})`,
        );
      }
      if (!e.factory.reader)
        throw new AgentError(
          "VERIFY_BAD_USAGE",
          `exporter "${id}" (type ${e.factory.type}) cannot be read back`,
        );
      sources.push(await e.factory.reader(e.config));
    }
  }
  if (sources.length === 0)
    throw new AgentError(
      "VERIFY_BAD_USAGE",
      "say what to verify: --source SPEC, or --config FILE [--exporter ID]",
    );
  if (opts.crossCheck && sources.length !== 2)
    throw new AgentError(
      "VERIFY_BAD_USAGE",
      `--cross-check compares exactly two sources (got ${sources.length})`,
    );
  return { sources, defaultTrust };
}

/** Where a run says how far it is (the progress line). */
export interface VerifyProgress {
  startSource(description: string): void;
  records(chainId: string, n: number): void;
}

/**
 * Reads and verifies what `opts` names; advances and writes the state file when given.
 * Runs on a worker thread (verify-worker.ts) under a heap cap, so that verification keeps
 * to the memory it needs rather than what V8 would let it grow to.
 */
export async function collectReports(
  opts: VerifyOptions,
  progress: VerifyProgress | null,
): Promise<VerifyReport[]> {
  const { sources, defaultTrust } = await sourcesFrom(opts);
  const trustFiles = opts.trust?.length ? opts.trust : defaultTrust;
  if (trustFiles.length === 0)
    throw new AgentError("VERIFY_BAD_USAGE", "give the public key(s) to trust: --trust KEYFILE");
  const trusted = readTrustedKeys(trustFiles);
  const known = (opts.checkpoint ?? []).map((path) => {
    try {
      return { note: readFileSync(path, "utf8"), location: path };
    } catch (err) {
      throw new AgentError(
        "VERIFY_BAD_CHECKPOINT",
        `cannot read checkpoint ${path}: ${(err as Error).message}`,
      );
    }
  });
  if (opts.spotCheck !== undefined && !opts.state)
    throw new AgentError(
      "VERIFY_BAD_USAGE",
      "--spot-check checks what a --state file vouches for: give --state FILE",
    );
  const state = opts.state ? readState(opts.state) : undefined;
  const reports: VerifyReport[] = [];
  // Lines are checked and hashed on the spare cores while this thread judges the chains.
  const lineCheckers = new LineCheckers(
    opts.threads ?? Math.min(3, Math.max(1, availableParallelism() - 1)),
  );
  try {
    for (const source of sources) {
      progress?.startSource(source.description);
      const onRecords = progress
        ? (chainId: string, n: number) => progress.records(chainId, n)
        : undefined;
      reports.push(
        await reading(source.description, () =>
          verifySource(source, trusted, known, {
            onRecords,
            state,
            spotCheck: opts.spotCheck,
            lineCheckers,
          }),
        ),
      );
    }
  } finally {
    await lineCheckers.close();
  }
  if (opts.crossCheck) {
    const [a, b] = sources as [AuditSource, AuditSource];
    const findings = await reading(`${a.description} and ${b.description}`, () => crossCheck(a, b));
    reports.push({
      source: `cross-check ${sources[0]?.description} ↔ ${sources[1]?.description}`,
      chains: [],
      findings,
      ok: findings.length === 0,
    });
  }
  // The state advances only for chains that verified clean (verifySource keeps the rest).
  if (opts.state && state) writeState(opts.state, state);
  return reports;
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

/**
 * Runs `read`, which reads `what`: a failure to read it (the network, permissions, an I/O
 * error), as opposed to something wrong in what was read, becomes SOURCE_UNREADABLE, which
 * exits 3. Other errors pass unchanged.
 */
async function reading<T>(what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof AgentError || !isReadFailure(err)) throw err;
    throw new AgentError("SOURCE_UNREADABLE", `cannot read ${what}: ${causes(err)}`, {
      cause: err,
    });
  }
}

/** A system or network error (ECONNREFUSED, EACCES, EIO, undici's UND_ERR_…), or its cause. */
function isReadFailure(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (
      typeof code === "string" &&
      /^(E[A-Z0-9]+|UND_ERR_[A-Z_]+|ERR_STREAM_PREMATURE_CLOSE)$/.test(code)
    )
      return true;
    if (e instanceof TypeError && e.message === "fetch failed") return true;
  }
  return false;
}

/** An error's message with those of its causes. */
function causes(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++)
    parts.push(e.message);
  return parts.join(": ");
}

/** The heap verification may use: its window, the manifests and the findings fit well in it. */
const VERIFY_HEAP_MIB = 160;

/** Runs collectReports on a worker thread under VERIFY_HEAP_MIB; errors come back as thrown. */
function collectOnWorker(opts: VerifyOptions, line: ProgressLine | null): Promise<VerifyReport[]> {
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

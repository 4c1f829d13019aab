import { createHash } from "node:crypto";
import { readFileSync, existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { AgentError } from "../common/errors.js";
import { publicKeyPath, readKeyLines, readTrustedKeys } from "../integrity/key-files.js";
import { crossCheck } from "../verify/cross-check.js";
import { sourceFromSpec } from "../config/sources.js";
import type { AuditSource, VerifyReport } from "../verify/types.js";
import { readState, writeState } from "../verify/state.js";
import { verifySource, type WitnessRequirement } from "../verify/verify.js";
import { parseCosignerKey } from "../integrity/cosignature.js";
import { parseCheckpointText, parseNote } from "../integrity/note.js";
import { LineCheckers } from "../verify/line-checkers.js";
import type { VerifyOptions } from "./verify.js";

/**
 * The reading and judging half of `audit-agent verify`, run on its worker thread
 * (verify-worker.ts): the main thread (verify.ts) only starts it and prints, so it loads
 * none of this.
 */

async function sourcesFrom(
  opts: VerifyOptions,
): Promise<{ sources: AuditSource[]; defaultTrust: string[] }> {
  const sources = await Promise.all((opts.source ?? []).map(sourceFromSpec));
  const defaultTrust: string[] = [];
  if (opts.exporter?.length && !opts.config)
    throw new AgentError("VERIFY_BAD_USAGE", "--exporter needs --config FILE");
  if (opts.config) {
    // Loaded only with --config: a verify of --source starts without the agent's modules.
    const { loadConfigFile } = await import("../config/load.js");
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
  const witnesses = witnessRequirement(opts);
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
            witnesses,
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

/** `--witness FILE… [--quorum N] [--witness-url URL…]` as verifySource takes it. */
function witnessRequirement(opts: VerifyOptions): WitnessRequirement | undefined {
  if (!opts.witness?.length) {
    if (opts.quorum !== undefined || opts.witnessUrl?.length)
      throw new AgentError(
        "VERIFY_BAD_USAGE",
        "--quorum and --witness-url need the witnesses' keys: --witness KEYFILE",
      );
    return undefined;
  }
  const keys = readKeyLines(opts.witness, "--witness").map(parseCosignerKey);
  const quorum = opts.quorum ?? keys.length;
  if (quorum < 1 || quorum > keys.length)
    throw new AgentError(
      "VERIFY_BAD_USAGE",
      `--quorum ${quorum}: between 1 and the ${keys.length} witness key(s) given`,
    );
  const urls = opts.witnessUrl ?? [];
  return {
    keys,
    quorum,
    fetch: urls.length
      ? async (origin) => (await Promise.all(urls.map((u) => fetchCosigned(u, origin)))).flat()
      : undefined,
  };
}

/**
 * The latest checkpoint a witness cosigned for `origin` (C2SP tlog-witness monitoring:
 * GET <url>/<hex SHA-256 of the origin>/checkpoint); none when it never cosigned one.
 */
async function fetchCosigned(
  url: string,
  origin: string,
): Promise<Array<{ note: string; location: string }>> {
  const at = `${url.replace(/\/+$/, "")}/${createHash("sha256").update(origin).digest("hex")}/checkpoint`;
  const res = await reading(at, () => fetch(at, { signal: AbortSignal.timeout(30_000) }));
  if (res.status === 404) return [];
  if (res.status !== 200)
    throw new AgentError("SOURCE_UNREADABLE", `witness ${at} answered HTTP ${res.status}`);
  const note = await reading(at, () => readAtMost(res, 64 * 1024));
  // Anything but a checkpoint of this origin is a wrong URL or a broken witness, never
  // "nothing to compare with": a verification against it would pass by default.
  let stated: string | null = null;
  try {
    stated = parseCheckpointText(parseNote(note).text).origin;
  } catch {
    // reported below
  }
  if (stated !== origin)
    throw new AgentError(
      "SOURCE_UNREADABLE",
      `witness ${at} did not answer with a checkpoint of ${origin} (${stated === null ? "not a signed checkpoint" : `a checkpoint of ${stated}`}): is --witness-url the witness's monitoring URL?`,
    );
  return [{ note, location: `witness ${at}` }];
}

/** A response's body as text, read to `limit` bytes at most (a witness's answer is small). */
async function readAtMost(res: Response, limit: number): Promise<string> {
  const reader = res.body?.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  while (reader && size < limit) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    size += value.length;
  }
  await reader?.cancel().catch(() => undefined);
  return Buffer.concat(parts).subarray(0, limit).toString("utf8");
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

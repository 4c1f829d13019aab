import { statSync } from "node:fs";
import { resolve } from "node:path";
import { AgentError } from "../common/errors.js";
import type { AgentConfig } from "../config/load.js";
import { unsafeSettings } from "../config/safety.js";
import { loadSigningKeys } from "../sealing/keys.js";
import type { Logger } from "../telemetry/logger.js";
import { type RunningAgent, startAgent } from "./agent.js";

/**
 * `audit-agent run`'s configuration reload (SIGHUP, as the Collector does): the config is
 * read again from the same file with the same environment, validated, and, when valid,
 * applied by a graceful restart of the agent inside the process: the receivers stop (the
 * requests in flight are answered), the sealer seals what is stored, the exporters finish
 * the write in progress, the WAL closes, and the agent starts again on the new config.
 * Nothing acknowledged is lost or stored twice: every acknowledged record is already synced
 * in the WAL, and each exporter resumes from its persisted cursor. In between (the time to
 * reopen the WAL and bind again, typically well under a second) clients get "connection
 * refused" and retry, as OTLP exporters do.
 *
 * A config that is invalid, or that changes what a reload must not change (the WAL, the
 * chain id, the signing key: that would start a new chain or a key rotation without anyone
 * deciding to), is refused before anything stops, with a coded error in the log; the agent
 * runs on as it was. A valid config that fails to start (a port taken, a TLS file unreadable)
 * is logged as RELOAD_FAILED and the previous config is started again.
 */

/** The receivers' time to answer the requests in flight when a reload stops them. */
const RELOAD_RECEIVER_GRACE_MS = 5_000;

export interface ReloadSettings {
  /** The config file, read again on each reload. */
  file: string;
  /** Reads and validates a config file (loadConfigFile, with the process's environment). */
  load(file: string): AgentConfig;
  logger: Logger;
  env?: Record<string, string | undefined>;
}

/** Logs the config's non-fatal findings and unsafe settings, at start and on each reload. */
export function logConfigWarnings(config: AgentConfig, file: string, logger: Logger): void {
  for (const w of config.warnings) logger.warn({ config: file }, w);
  for (const w of unsafeSettings(config)) logger.warn({ config: file, unsafe: true }, w);
}

/** The running agent, restarted in place on each reload; one reload at a time. */
export class ReloadableAgent {
  private reloading: Promise<void> | null = null;
  private queued = false;
  private stopping: Promise<{ drained: boolean }> | null = null;

  private constructor(
    private agent: RunningAgent,
    private config: AgentConfig,
    private readonly settings: ReloadSettings,
    /** The WAL directory the agent opened (device and inode): a reload keeps that one. */
    private readonly wal: DirectoryId | null,
  ) {}

  static async start(config: AgentConfig, settings: ReloadSettings): Promise<ReloadableAgent> {
    const agent = await startAgent(config, settings.logger, settings.env);
    return new ReloadableAgent(agent, config, settings, directoryId(config.wal.directory));
  }

  /** The agent as it runs now (another object after each applied reload). */
  get current(): RunningAgent {
    return this.agent;
  }

  /**
   * Reads the config again and applies it. A reload asked for while one is under way is run
   * once after it (the file may have been edited again meanwhile); several such requests
   * make one reload. Resolves when the reloads asked for are done; rejects only when the
   * agent could run on neither config, and must exit.
   */
  reload(): Promise<void> {
    const { logger } = this.settings;
    if (this.stopping) {
      logger.info("config reload ignored: the agent is stopping");
      return Promise.resolve();
    }
    if (this.reloading) {
      if (!this.queued)
        logger.info("config reload asked for during a reload: it runs when this one ends");
      this.queued = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      try {
        do {
          this.queued = false;
          await this.reloadOnce();
        } while (this.queued && !this.stopping);
      } finally {
        this.reloading = null;
      }
    })();
    return this.reloading;
  }

  /** Stops the agent, after the reload under way if there is one (its agent is the one stopped). */
  shutdown(graceMs: number): Promise<{ drained: boolean }> {
    this.stopping ??= (async () => {
      if (this.reloading) {
        this.settings.logger.info("waiting for the config reload under way before stopping");
        await this.reloading;
      }
      return this.agent.shutdown(graceMs);
    })();
    return this.stopping;
  }

  private async reloadOnce(): Promise<void> {
    const { file, logger, env = process.env } = this.settings;
    const began = Date.now();
    logger.info({ config: file }, "config reload: reading the config again");
    let next: AgentConfig;
    try {
      next = this.settings.load(file);
      checkReloadable(this.config, next, this.agent.verifierKey, env, logger);
      checkSameWal(this.wal, next.wal.directory);
    } catch (err) {
      // Not an AgentError: a fault of the agent's, reported as such (it has no code).
      const code = err instanceof AgentError ? err.code : undefined;
      const message = err instanceof Error ? err.message : String(err);
      logger.error(
        { code, config: file, reload: "refused", ...(code ? {} : { err }) },
        `config reload refused, nothing changed; the agent runs on its previous config. ${code ?? "internal error"}: ${message}`,
      );
      return;
    }
    const changed = configChanges(this.config, next);
    logConfigWarnings(next, file, logger);
    const stopping = Date.now();
    await this.agent.shutdown(RELOAD_RECEIVER_GRACE_MS, { reload: true });
    logger.level = next.logLevel;
    try {
      this.agent = await startAgent(next, logger, env);
      this.config = next;
    } catch (err) {
      this.agent = await this.restorePrevious(err);
      return;
    }
    logger.info(
      {
        config: file,
        changed,
        durationMs: Date.now() - began,
        // From the receivers' stop to their start again: when clients were refused.
        unavailableMs: Date.now() - stopping,
        chainId: this.agent.chainId,
        addresses: this.agent.addresses(),
      },
      `config reload finished: ${changed.length > 0 ? changed.join(", ") : "no setting changed (TLS, token and key files read again)"}`,
    );
  }

  /** The new config did not start: the previous one again (or the process cannot go on). */
  private async restorePrevious(err: unknown): Promise<RunningAgent> {
    const { file, logger, env } = this.settings;
    const cause = err instanceof AgentError ? `${err.code}: ${err.message}` : String(err);
    logger.error(
      { code: "RELOAD_FAILED", config: file, reload: "failed", cause },
      `RELOAD_FAILED: the agent could not start on the reloaded config (${cause}); starting again on the previous config`,
    );
    logger.level = this.config.logLevel;
    const agent = await startAgent(this.config, logger, env);
    logger.warn(
      { config: file, addresses: agent.addresses() },
      "config reload failed: running on the previous config again",
    );
    return agent;
  }
}

/**
 * Throws RELOAD_REFUSED when `next` changes the WAL or the signing key; a reload must not
 * start a new chain or rotate the key as a side effect. The key file is read again (never
 * generated) to catch a key replaced in place.
 */
function checkReloadable(
  current: AgentConfig,
  next: AgentConfig,
  verifierKey: string,
  env: Record<string, string | undefined>,
  logger: Logger,
): void {
  const path = (p: string | undefined) => (p === undefined ? "(unset)" : resolve(p));
  // The WAL directory's path too, not only the directory it names (checkSameWal): its
  // anchor file (store/head-journal.ts) is found beside the path as written.
  const fixed: Array<[string, string | undefined, string | undefined]> = [
    ["extensions.wal.directory", path(current.wal.directory), path(next.wal.directory)],
    ["extensions.wal.chain_id", current.wal.chain_id, next.wal.chain_id],
    ["extensions.signing.key_file", path(current.signing.key_file), path(next.signing.key_file)],
    ["extensions.signing.key_env", current.signing.key_env, next.signing.key_env],
    ["extensions.signing.key_name", current.signing.key_name, next.signing.key_name],
    [
      "extensions.signing.previous_key_file",
      path(current.signing.previous_key_file),
      path(next.signing.previous_key_file),
    ],
    ["extensions.signing.origin", current.signing.origin, next.signing.origin],
  ];
  const moved = fixed.filter(([, was, now]) => was !== now);
  if (moved.length > 0)
    throw new AgentError(
      "RELOAD_REFUSED",
      `${moved.map(([key, was, now]) => `${key} changed (${was ?? "(unset)"} -> ${now ?? "(unset)"})`).join("; ")}: a reload keeps the write-ahead log and the signing key, so that the chain does not change without a restart. Put the old value back and send SIGHUP again, or restart the agent to make this change`,
    );
  const keys = loadSigningKeys({ ...next.signing, generate_if_missing: false }, env, logger);
  if (keys.key.public.verifierKey !== verifierKey)
    throw new AgentError(
      "RELOAD_REFUSED",
      `the signing key is not the one the agent signs with (${verifierKey}; the key now found is ${keys.key.public.verifierKey}): a reload does not rotate the key. Put the key back and send SIGHUP again, or restart the agent to rotate it (with signing.previous_key_file)`,
    );
}

interface DirectoryId {
  dev: number;
  ino: number;
}

/** The directory `dir` names now (symlinks followed), or null when there is none. */
function directoryId(dir: string): DirectoryId | null {
  try {
    const st = statSync(dir);
    return st.isDirectory() ? { dev: st.dev, ino: st.ino } : null;
  } catch {
    return null;
  }
}

/**
 * Throws RELOAD_REFUSED unless `next` names the very directory the agent's WAL is in. The
 * same path is not enough: a symlink re-pointed, or the directory moved away and another
 * put in its place, makes it name another WAL (a new chain, or an old copy of this one):
 * the agent would stop, and start a new chain there or fail to start at all.
 */
function checkSameWal(opened: DirectoryId | null, dir: string): void {
  const now = directoryId(dir);
  if (opened && now && opened.dev === now.dev && opened.ino === now.ino) return;
  throw new AgentError(
    "RELOAD_REFUSED",
    `extensions.wal.directory ${resolve(dir)} no longer names the directory the agent's write-ahead log is in (a symlink on the path re-pointed, or the directory moved or replaced): a reload keeps the write-ahead log, so that the chain does not change without a restart. Put the directory back and send SIGHUP again, or restart the agent to change it`,
  );
}

/** What a reload changes, as config keys: "exporters.file/b added", "processors.audit_filter changed". */
export function configChanges(current: AgentConfig, next: AgentConfig): string[] {
  const out: string[] = [];
  const components = (
    section: string,
    was: ReadonlyArray<{ id: string; config: unknown }>,
    now: ReadonlyArray<{ id: string; config: unknown }>,
  ) => {
    const before = new Map(was.map((c) => [c.id, JSON.stringify(c.config)]));
    const after = new Map(now.map((c) => [c.id, JSON.stringify(c.config)]));
    for (const [id, text] of after) {
      if (!before.has(id)) out.push(`${section}.${id} added`);
      else if (before.get(id) !== text) out.push(`${section}.${id} changed`);
    }
    for (const id of before.keys()) if (!after.has(id)) out.push(`${section}.${id} removed`);
  };
  components("receivers", current.receivers, next.receivers);
  components("processors", [current.auditFilter], [next.auditFilter]);
  components("exporters", current.exporters, next.exporters);
  const settings: Array<[string, unknown, unknown]> = [
    ["extensions.wal", current.wal, next.wal],
    ["extensions.signing", current.signing, next.signing],
    ["extensions.verification", current.verification, next.verification],
    ["extensions.health_check", current.healthCheck, next.healthCheck],
    ["service.telemetry.metrics.address", current.metricsAddress, next.metricsAddress],
    ["service.telemetry.logs.level", current.logLevel, next.logLevel],
  ];
  for (const [key, was, now] of settings)
    if (JSON.stringify(was) !== JSON.stringify(now)) out.push(`${key} changed`);
  return out;
}

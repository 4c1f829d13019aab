import type { Logger } from "../telemetry/logger.js";

interface Service {
  stop: () => Promise<unknown>;
  /** Reads the config again and applies it (SIGHUP); absent when the service cannot reload. */
  reload?: () => Promise<unknown>;
  logger: Logger;
  name: string;
}

/**
 * How a long-running command (`run`, `witness`) reacts to signals. On SIGTERM or SIGINT it
 * shuts down, then exits 0 (1 when the shutdown fails). On SIGHUP it reloads its config when
 * it can, and otherwise logs that it ignores the signal: SIGHUP's default action would kill
 * the process without a drain or a log line. Listening starts before start-up, because a
 * container's PID 1 must not ignore SIGTERM while it starts: a stop signal that comes before
 * the service is up stops it as soon as it is, and a SIGHUP then reloads it (the config may
 * have been edited after start-up read it).
 */
export class StopSignals {
  private service: Service | null = null;
  private signal: string | null = null;
  private hangupWhileStarting = false;

  constructor() {
    process.once("SIGTERM", () => this.received("SIGTERM"));
    process.once("SIGINT", () => this.received("SIGINT"));
    process.on("SIGHUP", () => this.hangup());
  }

  /**
   * The service is up (`name` says what stops in the log): a stop signal now stops it, and
   * SIGHUP calls `reload` when given.
   */
  started(
    name: string,
    stop: () => Promise<unknown>,
    logger: Logger,
    reload?: () => Promise<unknown>,
  ): void {
    this.service = { stop, reload, logger, name };
    if (this.signal) this.received(this.signal);
    else if (this.hangupWhileStarting) {
      logger.info({ signal: "SIGHUP" }, `SIGHUP came during start-up: ${name} reloading now`);
      this.hangup();
    }
  }

  private received(signal: string): void {
    this.signal = signal;
    const service = this.service;
    if (!service) return; // stops as soon as start-up completes
    service.logger.info({ signal }, `signal received: ${service.name} stopping`);
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        service.logger.error({ err }, `${service.name} shutdown failed`);
        process.exit(1);
      },
    );
  }

  private hangup(): void {
    const service = this.service;
    if (!service) {
      this.hangupWhileStarting = true; // there is no logger yet: started() logs it
      return;
    }
    const { logger, name, reload } = service;
    if (this.signal) {
      logger.info({ signal: "SIGHUP" }, `SIGHUP ignored: ${name} is stopping`);
      return;
    }
    if (!reload) {
      logger.warn(
        { signal: "SIGHUP" },
        `SIGHUP ignored: the ${name} does not reload its config; restart it to apply a change`,
      );
      return;
    }
    logger.info({ signal: "SIGHUP" }, `signal received: ${name} reloading its config`);
    reload().catch((err: unknown) => {
      logger.fatal({ err }, `${name} could run on neither the reloaded nor the previous config`);
      process.exit(1);
    });
  }
}

import type { Logger } from "../telemetry/logger.js";

/**
 * How a long-running command (`run`, `witness`) stops: on SIGTERM or SIGINT it shuts down,
 * then exits 0 (1 when the shutdown fails). Listening starts before start-up, because a
 * container's PID 1 must not ignore SIGTERM while it starts: a signal that comes before the
 * service is up stops it as soon as it is.
 */
export class StopSignals {
  private service: { stop: () => Promise<unknown>; logger: Logger; name: string } | null = null;
  private signal: string | null = null;

  constructor() {
    process.once("SIGTERM", () => this.received("SIGTERM"));
    process.once("SIGINT", () => this.received("SIGINT"));
  }

  /** The service is up (`name` says what stops in the log): a signal now stops it. */
  started(name: string, stop: () => Promise<unknown>, logger: Logger): void {
    this.service = { stop, logger, name };
    if (this.signal) this.received(this.signal);
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
}

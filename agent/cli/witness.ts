import { CommanderError } from "commander";
import { AgentError } from "../common/errors.js";
import { createLogger, type Logger } from "../telemetry/logger.js";
import { loadWitnessConfig, type WitnessConfig } from "../witness/config.js";
import { type RunningWitness, startWitness } from "../witness/start.js";

/**
 * `audit-agent witness --config FILE`: runs a C2SP tlog-witness (docs/witness.md) until
 * SIGTERM or SIGINT, then stops after the requests under way and exits 0. A bad config
 * exits 2, like the agent's.
 */
export async function witnessCommand(file: string): Promise<void> {
  // The state and anything else it creates are its owner's alone, whatever the umask.
  process.umask(0o077);
  let running: RunningWitness | null = null;
  let logger: Logger | null = null;
  let stopSignal: string | null = null;
  const stop = (signal: string) => {
    stopSignal = signal;
    if (!running) return; // stops as soon as start-up completes
    logger?.info({ signal }, "signal received: witness stopping");
    running.shutdown().then(
      () => process.exit(0),
      (err) => {
        logger?.error({ err }, "witness shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  let config: WitnessConfig;
  try {
    config = loadWitnessConfig(file);
  } catch (err) {
    if (err instanceof AgentError && err.code === "WITNESS_CONFIG_INVALID")
      throw new CommanderError(2, "audit-agent.witnessConfig", err.message);
    throw err;
  }
  logger = createLogger(config.logLevel);
  for (const w of config.warnings) logger.warn({ config: file }, w);
  running = await startWitness(config, logger);
  if (stopSignal) stop(stopSignal);
}

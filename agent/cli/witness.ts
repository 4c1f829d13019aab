import { CommanderError } from "commander";
import { AgentError } from "../common/errors.js";
import { createLogger, logEncoding } from "../telemetry/logger.js";
import { loadWitnessConfig, type WitnessConfig } from "../witness/config.js";
import { startWitness } from "../witness/start.js";
import { StopSignals } from "./stop-signals.js";

/**
 * `audit-agent witness --config FILE`: runs a C2SP tlog-witness (docs/witness.md) until
 * SIGTERM or SIGINT, then stops after the requests under way and exits 0. A bad config
 * exits 2, like the agent's.
 */
export async function witnessCommand(file: string): Promise<void> {
  // The state and anything else it creates are its owner's alone, whatever the umask.
  process.umask(0o077);
  const signals = new StopSignals();
  let config: WitnessConfig;
  try {
    config = loadWitnessConfig(file);
  } catch (err) {
    if (err instanceof AgentError && err.code === "WITNESS_CONFIG_INVALID")
      throw new CommanderError(2, "audit-agent.witnessConfig", err.message);
    throw err;
  }
  const logger = createLogger(config.logLevel, logEncoding(undefined));
  for (const w of config.warnings) logger.warn({ config: file }, w);
  const running = await startWitness(config, logger);
  signals.started("witness", () => running.shutdown(), logger);
}

import { AgentError } from "../common/errors.js";
import { listed, witnessFileProblems } from "../config/file-checks.js";
import { createLogger, logEncoding } from "../telemetry/logger.js";
import { loadWitnessConfig } from "../witness/config.js";
import { startWitness } from "../witness/start.js";
import { StopSignals } from "./stop-signals.js";

/**
 * `audit-agent witness --config FILE`: runs a C2SP tlog-witness (docs/witness.md) until
 * SIGTERM or SIGINT, then stops after the requests under way and exits 0. A bad config
 * exits 2, like the agent's. SIGHUP is logged and ignored: the witness does not reload its
 * config (a restart applies a change; its state is on disk).
 */
export async function witnessCommand(file: string): Promise<void> {
  // The state and anything else it creates are its owner's alone, whatever the umask.
  process.umask(0o077);
  const signals = new StopSignals();
  // A bad config is WITNESS_CONFIG_INVALID: main.ts prints it with its code and exits 2.
  const config = loadWitnessConfig(file);
  const problems = witnessFileProblems(config);
  if (problems.length > 0)
    throw new AgentError(
      "WITNESS_CONFIG_INVALID",
      `${file} names files the witness cannot use:\n${listed(problems)}`,
    );
  const logger = createLogger(config.logLevel, logEncoding(undefined));
  for (const w of config.warnings) logger.warn({ config: file }, w);
  const running = await startWitness(config, logger);
  signals.started("witness", () => running.shutdown(), logger);
}

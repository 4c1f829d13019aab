#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, CommanderError, Option } from "commander";
import { AgentError } from "../common/errors.js";
import { packageRoot } from "../common/package-root.js";
import { ConfigError, loadConfigFile } from "../config/load.js";
import { startAgent } from "../service/agent.js";
import { createLogger } from "../telemetry/logger.js";

/** The `audit-agent` command. Exit codes: 0 ok, 1 runtime failure, 2 invalid usage or config. */

const version = (
  JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version: string }
).version;

const program = new Command()
  .name("audit-agent")
  .description(
    "OpenTelemetry-compatible audit sidecar: OTLP logs in, hash-chained durable audit records out",
  )
  .version(version, "-v, --version")
  .showHelpAfterError()
  .exitOverride();

program
  .command("run")
  .description("run the agent")
  .option("-c, --config <file>", "config file", "config/default.yaml")
  .addOption(
    new Option("--grace <seconds>", "shutdown grace period for draining exporters")
      .default(30)
      .argParser(Number),
  )
  .action(async (opts: { config: string; grace: number }) => {
    const config = loadConfigFile(opts.config);
    const logger = createLogger(config.logLevel);
    for (const w of config.warnings) logger.warn({ config: opts.config }, w);
    const agent = await startAgent(config, logger);
    logger.info(
      { config: opts.config, chainId: agent.chainId, addresses: agent.addresses() },
      "audit agent started",
    );
    const stop = (signal: string) => {
      logger.info({ signal }, "signal received");
      agent.shutdown(opts.grace * 1000).then(
        () => process.exit(0),
        (err) => {
          logger.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });

program
  .command("validate")
  .description("check a config file and exit: 0 valid, 2 invalid")
  .requiredOption("-c, --config <file>", "config file")
  .action((opts: { config: string }) => {
    const config = loadConfigFile(opts.config);
    for (const w of config.warnings) process.stderr.write(`warning: ${w}\n`);
    const pipeline = `${config.receivers.map((r) => r.id).join(", ")} -> ${config.auditFilter.id} -> ${config.exporters.map((e) => e.id).join(", ")}`;
    process.stdout.write(
      `${opts.config}: valid (logs pipeline: ${pipeline}; WAL ${config.wal.directory})\n`,
    );
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  // Commander has already printed its message (or the help/version text).
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  const message =
    err instanceof AgentError
      ? `${err.code}: ${err.message}`
      : err instanceof Error
        ? (err.stack ?? err.message)
        : String(err);
  process.stderr.write(`audit-agent: ${message}\n`);
  process.exit(1);
});

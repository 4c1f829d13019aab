#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=32768 node --max-semi-space-size=4 --single-threaded-gc
// Settings for a long-running sidecar, in the shebang so that the `audit-agent` bin, the
// container's ENTRYPOINT and `npm start` all run with them (`node dist/agent/cli/main.js`
// does not). Measured in bench/ (docs/container.md, "Memory and CPU"):
// - --max-semi-space-size=4 caps V8's young generation at 2 x 4 MiB instead of letting it
//   grow to 2 x 16 MiB under load: about 40 MiB less RSS at 10,000 records/s, no throughput
//   cost measured.
// - --single-threaded-gc does V8's garbage collection on the main thread instead of four
//   helper threads: at 10,000 records/s the helpers spent about 13 % of a core coordinating
//   small scavenges; the agent's CPU fell by about a fifth, for about 4 % less peak throughput.
// - MALLOC_MMAP_THRESHOLD_ fixes glibc's threshold for serving an allocation with its own
//   mmap at 32 KiB. glibc otherwise raises it after the first large free, so request bodies,
//   WAL chunks and LevelDB batches then come from the heap, whose freed space it keeps:
//   about 20 MiB more RSS at 10,000 records/s, 60 MiB at saturation. 32 KiB rather than
//   256 KiB: 30 s after a saturating burst the agent is back at 84 MiB instead of 156–161
//   (the main heap kept what the burst's 32–256 KiB buffers had used), with no CPU or
//   throughput cost measured (bench/ANALYSIS.md, issue 16).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, CommanderError, Option } from "commander";
import { AgentError } from "../common/errors.js";
import { packageRoot } from "../common/package-root.js";
import { seconds, walDirectory, wholeNumber } from "./options.js";
import { StopSignals } from "./stop-signals.js";
import type { VerifyOptions } from "./verify.js";
import type { ReportOptions, SearchOptions } from "./report.js";

/**
 * The `audit-agent` command. Exit codes: 0 ok, 1 runtime failure (for verify: findings),
 * 2 invalid usage or config (a bad option value, a file or directory the config names that
 * cannot be used), 3 a source could not be read (verify's sources, VERIFY_EXIT_CODES; the
 * agent `prove --agent` asks).
 * Each subcommand imports what it runs when it runs, so the long-running `run` keeps no
 * verify, prove or keygen code in memory.
 */

/** config/default.yaml in the working directory when there is one, else the package's own. */
function defaultConfigPath(): string {
  const local = "config/default.yaml";
  return existsSync(local) ? local : join(packageRoot(), local);
}

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
  .addOption(
    new Option(
      "-c, --config <file>",
      "config file (default: config/default.yaml, from the working directory or the package)",
    ).env("AUDIT_AGENT_CONFIG"),
  )
  .addOption(
    new Option("--grace <seconds>", "shutdown grace period for draining exporters")
      .env("AUDIT_AGENT_GRACE_SECONDS")
      .default(30)
      .argParser(seconds("--grace", "AUDIT_AGENT_GRACE_SECONDS")),
  )
  .action(async (opts: { config?: string; grace: number }) => {
    const file = opts.config ?? defaultConfigPath();
    // Everything the agent creates — the WAL, keys, exporter output — is its owner's alone,
    // whatever umask it inherits (a file exporter with group_readable opens its output to
    // the group explicitly).
    process.umask(0o077);
    // Signals first: a container's PID 1 must not ignore SIGTERM while it is starting.
    const signals = new StopSignals();
    // Loaded here, not at the top: `verify` and `prove` start without the agent's modules.
    const { loadConfigFile, checkConfigFiles, createLogger, logEncoding } =
      await agentConfigModules();
    const config = loadConfigFile(file);
    // Before anything is created: a file the config names that cannot be used would
    // otherwise stop the agent after it opened the WAL or generated a key.
    checkConfigFiles(config);
    const encoding = logEncoding(config.logEncoding);
    const logger = createLogger(config.logLevel, encoding);
    const { ReloadableAgent, logConfigWarnings } = await import("../service/reload.js");
    logConfigWarnings(config, file, logger);
    // SIGHUP reads the same file again, with the same environment (service/reload.ts).
    // A reloaded config's files are checked like the first one's, before anything stops.
    const load = (path: string) => {
      const next = loadConfigFile(path);
      checkConfigFiles(next);
      return next;
    };
    const agent = await ReloadableAgent.start(config, { file, load, logger });
    const summary = agent.current.summary();
    // A person at a terminal gets a block to read; a log pipeline one line with the same facts.
    if (encoding === "console") {
      if (logger.isLevelEnabled("info")) {
        const { formatStartupSummary } = await import("../service/startup-summary.js");
        process.stderr.write(formatStartupSummary(summary));
      }
    } else logger.info({ ...summary, addresses: agent.current.addresses() }, "audit agent started");
    signals.started(
      "agent",
      () => agent.shutdown(opts.grace * 1000),
      logger,
      () => agent.reload(),
    );
  });

program
  .command("validate")
  .description(
    "check a config file and exit: 0 valid, 2 invalid (with the key, certificate and token files and the directories it names)",
  )
  .requiredOption("-c, --config <file>", "config file")
  .action(async (opts: { config: string }) => {
    const { loadConfigFile, checkConfigFiles, unsafeSettings } = await agentConfigModules();
    const config = loadConfigFile(opts.config);
    checkConfigFiles(config);
    for (const w of config.warnings) process.stderr.write(`warning: ${w}\n`);
    for (const w of unsafeSettings(config)) process.stderr.write(`warning (unsafe): ${w}\n`);
    const pipeline = `${config.receivers.map((r) => r.id).join(", ")} -> ${config.auditFilter.id} -> ${config.exporters.map((e) => e.id).join(", ")}`;
    process.stdout.write(
      `${opts.config}: valid (logs pipeline: ${pipeline}; WAL ${config.wal.directory})\n`,
    );
  });

program
  .command("keygen")
  .description("create an Ed25519 signing key pair: DIR/NAME.key (mode 0600) and DIR/NAME.pub")
  .requiredOption("-o, --out <dir>", "directory for the key files")
  .option("-n, --name <name>", "key name (appears in signatures and verifier keys)", "audit-agent")
  .option(
    "--witness",
    "a witness's key: NAME.pub holds its cosigner key (C2SP tlog-cosignature) for agents and verifiers",
  )
  .action(async (opts: { out: string; name: string; witness?: boolean }) => {
    const { keygen } = await import("./keygen.js");
    keygen(opts);
  });

program
  .command("witness")
  .description(
    "run a C2SP tlog-witness: cosign a log's checkpoints only while each extends the last one cosigned (docs/witness.md)",
  )
  .requiredOption("-c, --config <file>", "witness config file (config/witness.yaml)")
  .action(async (opts: { config: string }) => {
    const { witnessCommand } = await import("./witness.js");
    await witnessCommand(opts.config);
  });

const collect = (value: string, previous: string[] = []) => [...previous, value];
/** What `verify` exits with, for --help (docs/verify.md, README). */
const VERIFY_EXIT_CODES = `
Exit status:
  0  clean: every chain verified, no findings
  1  findings: the report lists what does not match the signed chain (tampering, loss or
     damage); also when the verifier fails on its input (stderr says "internal error")
  2  usage: bad arguments, an unreadable or invalid --trust/--checkpoint file, a bad --config
  3  a source could not be read (SOURCE_UNREADABLE: network, permissions, I/O): nothing was
     judged and nothing is printed on stdout; try again, and find out why if it persists

Output: a summary per chain, then findings grouped by category and range
("missing  seq 1,200–1,899 (700 records), batches 12–13"); --verbose prints one line per
finding, --json the whole report with every finding (schema: docs/verify.md). On a terminal
a progress line is drawn on stderr while reading (not with --quiet, never in a pipe).
`;

program
  .command("verify")
  .description(
    "prove from a backend's contents and public keys alone that no audit record was altered, removed, reordered or inserted (exit 0 clean, 1 findings, 2 usage, 3 source unreadable)",
  )
  .option(
    "-s, --source <spec>",
    "what to read: file:DIR, loki:URL, s3://BUCKET/PREFIX, es:URL/INDEX (repeatable)",
    collect,
  )
  .option(
    "-c, --config <file>",
    "read the backends exactly as this agent config's exporters write them",
  )
  .option(
    "-e, --exporter <id>",
    "with --config: which exporter to read (repeatable; default all readable)",
    collect,
  )
  .option(
    "-t, --trust <keyfile>",
    "trusted public key file (repeatable; with --config defaults to the signing key's .pub)",
    collect,
  )
  .option(
    "--checkpoint <file>",
    "a signed checkpoint seen earlier: detects a truncated tail (repeatable)",
    collect,
  )
  .option(
    "--state <file>",
    "incremental: verify only what came after the clean run that wrote this file, and update it (docs/verify.md; keep it off the agent's host)",
  )
  .option(
    "--spot-check <n>",
    "with --state: also read again N signed batches verified before, at random (0: none)",
    wholeNumber("--spot-check"),
  )
  .option(
    "--threads <n>",
    "threads that check and hash record lines beside the one judging the chain (default: one per core but one, at least 1; 0: none)",
    wholeNumber("--threads", { max: 64 }),
  )
  .option(
    "--witness <keyfile>",
    "a witness's cosigner key file (repeatable): the latest checkpoint of each chain must carry a quorum of their cosignatures",
    collect,
  )
  .option(
    "--quorum <n>",
    "cosignatures required with --witness (default: all)",
    wholeNumber("--quorum", { min: 1 }),
  )
  .option(
    "--witness-url <url>",
    "a witness to fetch the newest checkpoint it cosigned for each chain from (repeatable): a removed tail is truncated, a rewritten history a fork",
    collect,
  )
  .option("--cross-check", "with two sources: also compare them record by record")
  .option("--json", "print the report as JSON, every finding included (docs/verify.md)")
  .option("--verbose", "print one line per finding instead of grouping them by range")
  .option("-q, --quiet", "no progress line on stderr (it is only drawn on a terminal)")
  .addHelpText("after", VERIFY_EXIT_CODES)
  .action(async (opts: VerifyOptions) => {
    const { verifyCommand } = await import("./verify.js");
    process.exitCode = await verifyCommand(opts);
  });

/** What `report` and `search` read, and the keys they trust. */
const readingSource = (command: Command) =>
  command
    .option("-s, --source <spec>", "what to read, as for verify (repeatable)", collect)
    .option("-t, --trust <keyfile>", "trusted public key file (repeatable)", collect);

readingSource(program.command("report"))
  .description(
    "an audit report for people: verify's verdict, then per chain its time span, records per hour, batches, key rotations, latest checkpoint, findings and the newest records with inclusion proofs; one self-contained HTML file, or Markdown or JSON (docs/report.md). Exit status as verify's",
  )
  .option(
    "--checkpoint <file>",
    "a signed checkpoint seen earlier, as for verify (repeatable)",
    collect,
  )
  .option(
    "--witness <keyfile>",
    "a witness's cosigner key file, as for verify (repeatable)",
    collect,
  )
  .option(
    "--quorum <n>",
    "cosignatures required with --witness (default: all)",
    wholeNumber("--quorum", { min: 1 }),
  )
  .option("-o, --out <file>", "write the report here (default: standard output)")
  .option("-f, --format <format>", "html, md or json (default: from --out's extension, else html)")
  .option(
    "--limit <n>",
    "records shown per chain, the newest (default 500)",
    wholeNumber("--limit", { min: 1 }),
  )
  .addHelpText("after", VERIFY_EXIT_CODES)
  .action(async (opts: ReportOptions) => {
    const { reportCommand } = await import("./report.js");
    process.exitCode = await reportCommand(opts);
  });

readingSource(program.command("search"))
  .description(
    "find records and print them with RFC 6962 inclusion proofs against their chain's latest signed checkpoint: an evidence bundle (JSON, docs/report.md) that check-evidence checks offline",
  )
  .option(
    "-w, --where <key=value>",
    "an attribute of the record, its resource or scope (or eventName, severity, body) with this value; repeatable, all must hold",
    collect,
  )
  .option("--from <time>", "received at or after this ISO 8601 time")
  .option("--to <time>", "received at or before this ISO 8601 time")
  .option(
    "--limit <n>",
    "records per chain in the bundle (default 1000)",
    wholeNumber("--limit", { min: 1 }),
  )
  .option("-o, --out <file>", "write the bundle here (default: standard output)")
  .action(async (opts: SearchOptions) => {
    const { searchCommand } = await import("./report.js");
    process.exitCode = await searchCommand(opts);
  });

program
  .command("check-evidence")
  .description(
    "check an evidence bundle from search offline: every record's proof leads to a checkpoint signed by a trusted key (exit 0 valid, 1 invalid, 2 usage)",
  )
  .argument("<file>", "the evidence bundle (JSON)")
  .option("-t, --trust <keyfile>", "trusted public key file (repeatable)", collect)
  .option("--json", "print the result as JSON")
  .action(async (file: string, opts: { trust?: string[]; json?: boolean }) => {
    const { checkEvidenceCommand } = await import("./report.js");
    process.exitCode = checkEvidenceCommand(file, opts);
  });

const wal = program
  .command("wal")
  .description("inspect, repair or replace a write-ahead log (with the agent stopped)");

wal
  .command("check")
  .description(
    "what a write-ahead log holds and whether it is sound (every record read back and checked): exit 0 sound, 1 damaged or lost records, 2 usage",
  )
  .requiredOption("-d, --dir <directory>", "the WAL directory (extensions.wal.directory)")
  .option("--json", "print the report as JSON")
  .action(async (opts: { dir: string; json?: boolean }) => {
    const { walCheck, formatWalReport } = await import("./wal-check.js");
    const report = await walCheck(walDirectory(opts.dir));
    process.stdout.write(
      opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatWalReport(report),
    );
    process.exitCode = report.problems.length === 0 ? 0 : 1;
  });

wal
  .command("repair")
  .description(
    "LevelDB's repair of a damaged WAL (a copy of it as it was is kept first), then the full check: which seqs survived. Exit 0 sound, 1 records lost or altered",
  )
  .requiredOption("-d, --dir <directory>", "the WAL directory (extensions.wal.directory)")
  .option("--json", "print the check's report as JSON")
  .action(async (opts: { dir: string; json?: boolean }) => {
    const [{ walRepair, formatRepair }, { formatWalReport }] = await Promise.all([
      import("./wal-repair.js"),
      import("./wal-check.js"),
    ]);
    const result = await walRepair(walDirectory(opts.dir));
    process.stdout.write(
      opts.json ? `${JSON.stringify(result, null, 2)}\n` : formatRepair(result, formatWalReport),
    );
    process.exitCode = result.report.problems.length === 0 ? 0 : 1;
  });

wal
  .command("new-chain")
  .description(
    "after WAL_RECORDS_LOST: keep the old WAL aside and start a new chain whose first entry declares, signed, which seqs were lost, so verifiers report them",
  )
  .requiredOption("-d, --dir <directory>", "the WAL directory (extensions.wal.directory)")
  .requiredOption("--reason <text>", "what happened (signed into the new chain's first entry)")
  .option("--json", "print the result as JSON")
  .action(async (opts: { dir: string; reason: string; json?: boolean }) => {
    const { walNewChain, formatNewChain } = await import("./wal-new-chain.js");
    const result = await walNewChain(walDirectory(opts.dir), opts.reason);
    process.stdout.write(
      opts.json ? `${JSON.stringify(result, null, 2)}\n` : formatNewChain(result, opts.dir),
    );
  });

program
  .command("prove")
  .description(
    "print an RFC 6962 inclusion proof (--seq N) or consistency proof (--consistency OLD NEW)",
  )
  .option("--seq <n>", "record to prove", wholeNumber("--seq"))
  .option("--consistency <sizes...>", "old and new tree sizes")
  .option(
    "--checkpoint <file>",
    "prove against this signed checkpoint's tree size (its signature and root are checked)",
  )
  .option(
    "-t, --trust <keyfile>",
    "public key the checkpoint must be signed by (repeatable; default: the config's signing key's .pub)",
    collect,
  )
  .option(
    "-c, --config <file>",
    "agent config (to find the WAL; the agent must be stopped; default: config/default.yaml, from the working directory or the package)",
  )
  .option(
    "--agent <url>",
    "ask a running agent's checkpoint endpoint instead, e.g. http://127.0.0.1:8890",
  )
  .action(
    async (opts: {
      seq?: number;
      consistency?: string[];
      checkpoint?: string;
      trust?: string[];
      config?: string;
      agent?: string;
    }) => {
      let consistency: [number, number] | undefined;
      if (opts.consistency) {
        if (opts.consistency.length !== 2)
          throw new CommanderError(
            2,
            "audit-agent.usage",
            "--consistency takes two sizes: OLD NEW",
          );
        const size = wholeNumber("--consistency");
        consistency = [size(opts.consistency[0] as string), size(opts.consistency[1] as string)];
      }
      const { proveCommand } = await import("./prove.js");
      await proveCommand({
        seq: opts.seq,
        consistency,
        checkpoint: opts.checkpoint,
        trust: opts.trust,
        config: opts.config ?? defaultConfigPath(),
        agent: opts.agent,
      });
    },
  );

/** What `run` and `validate` need to read a config, loaded when one of them runs. */
async function agentConfigModules() {
  const [
    { loadConfigFile },
    { checkConfigFiles },
    { unsafeSettings },
    { createLogger, logEncoding },
  ] = await Promise.all([
    import("../config/load.js"),
    import("../config/file-checks.js"),
    import("../config/safety.js"),
    import("../telemetry/logger.js"),
  ]);
  return { loadConfigFile, checkConfigFiles, unsafeSettings, createLogger, logEncoding };
}

/** The codes of usage and config errors: the command exits 2 (see the header). */
const USAGE_ERROR =
  /^(KEY_|TRUST_|VERIFY_BAD_|PROVE_USAGE|PROVE_BAD_|PROVE_NO_WAL|PROOF_BAD_|KEYGEN_|CONFIG_|CLI_|AUTH_TOKEN_|WAL_NEW_CHAIN_USAGE|WITNESS_CONFIG_|WITNESS_KEY_|REPORT_USAGE|SEARCH_USAGE|EVIDENCE_USAGE)/;

program.parseAsync(process.argv).catch((err: unknown) => {
  // Commander has already printed its message (or the help/version text).
  if (err instanceof CommanderError) {
    if (err.code.startsWith("audit-agent.")) process.stderr.write(`audit-agent: ${err.message}\n`);
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  // A source that could not be read is not a finding: verify exits 3 (VERIFY_EXIT_CODES);
  // so does prove when the agent it was pointed at (--agent) cannot be reached.
  if (
    err instanceof AgentError &&
    (err.code === "SOURCE_UNREADABLE" || err.code === "PROVE_AGENT_UNREACHABLE")
  ) {
    process.stderr.write(`audit-agent: ${err.code}: ${err.message}\n`);
    process.exit(3);
  }
  // Bad arguments (unreadable key files, unknown sources, bad option values, unusable paths…)
  // are usage errors: exit 2.
  if (err instanceof AgentError && USAGE_ERROR.test(err.code)) {
    process.stderr.write(`audit-agent: ${err.code}: ${err.message}\n`);
    process.exit(2);
  }
  // Anything else is a failure the command did not expect: its message, and the stack trace
  // only when asked for (AUDIT_AGENT_DEBUG=1). For verify it exits 1, never 0 or 3: a
  // verifier that fails on its input has not shown it clean.
  const message =
    err instanceof AgentError
      ? `${err.code}: ${err.message}`
      : err instanceof Error
        ? `internal error: ${process.env.AUDIT_AGENT_DEBUG ? (err.stack ?? err.message) : `${err.message} (AUDIT_AGENT_DEBUG=1 shows where)`}`
        : `internal error: ${String(err)}`;
  process.stderr.write(`audit-agent: ${message}\n`);
  process.exit(1);
});

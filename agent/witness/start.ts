import { readFileSync } from "node:fs";
import { type Clock, systemClock } from "../common/clock.js";
import { AgentError } from "../common/errors.js";
import { type CosignerKey, cosignerKeyOf } from "../integrity/cosignature.js";
import { readPrivateKey } from "../integrity/key-files.js";
import type { SigningKey } from "../integrity/signing.js";
import type { Logger } from "../telemetry/logger.js";
import { registerProcessMetrics } from "../telemetry/process-metrics.js";
import { Registry } from "../telemetry/prometheus.js";
import type { WitnessConfig } from "./config.js";
import { WitnessHealth } from "./health.js";
import { WitnessServer } from "./http.js";
import { LogDirectory } from "./logs.js";
import { WitnessMetrics } from "./metrics.js";
import { WitnessObserver } from "./observer.js";
import { StateStore } from "./state.js";
import { Witness } from "./witness.js";

/** A witness started by startWitness. */
export interface RunningWitness {
  /** host:port it listens on. */
  address(): string;
  /** Its cosigner key (what `keygen --witness` wrote to the .pub). */
  cosigner: CosignerKey;
  /** Stops serving, after the requests under way. */
  shutdown(): Promise<void>;
}

/**
 * Starts a witness: reads its key (refused when group or others can read it) and its state
 * (refused when damaged), then serves. Nothing is served before the state is loaded.
 */
export async function startWitness(
  config: WitnessConfig,
  logger: Logger,
  clock: Clock = systemClock,
): Promise<RunningWitness> {
  const key = readWitnessKey(config.keyFile);
  const tls = config.tls ? readTls(config) : null;
  const state = await StateStore.open(config.stateDir);
  const registry = new Registry();
  const health = new WitnessHealth(config.alertWindowMs, clock);
  const observer = new WitnessObserver({
    logger,
    health,
    clock,
    metrics: new WitnessMetrics(registry, () => state.all()),
  });
  const witness = new Witness({ key, logs: new LogDirectory(config.logs), state, observer, clock });
  const server = new WitnessServer(
    {
      listen: config.listen,
      tls,
      maxBodyBytes: config.maxBodyBytes,
      submissionPrefix: config.submissionPrefix,
    },
    { witness, observer, health, registry },
  );
  await server.start();
  const processMetrics = registerProcessMetrics(registry);
  const cosigner = cosignerKeyOf(key);
  logger.info(
    {
      address: server.address(),
      tls: tls !== null,
      cosignerKey: cosigner.verifierKey,
      logs: config.logs.map((l) => l.origin ?? `${l.originPrefix}*`),
      cosignedLogs: [...state.all()].length,
    },
    "witness started",
  );
  return {
    address: () => server.address(),
    cosigner,
    async shutdown() {
      await server.shutdown();
      processMetrics.stop();
    },
  };
}

function readWitnessKey(path: string): SigningKey {
  try {
    return readPrivateKey(path, "witness");
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw new AgentError(
      "WITNESS_KEY_UNREADABLE",
      `cannot read the witness key ${path}: ${(err as Error).message} (make one with audit-agent keygen --witness)`,
      { cause: err },
    );
  }
}

function readTls(config: WitnessConfig): { cert: Buffer; key: Buffer } {
  const read = (setting: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new AgentError(
        "WITNESS_CONFIG_INVALID",
        `invalid witness configuration in ${config.file}: witness.tls.${setting}: cannot read ${path}: ${(err as Error).message}`,
      );
    }
  };
  const tls = config.tls as { certFile: string; keyFile: string };
  return { cert: read("cert_file", tls.certFile), key: read("key_file", tls.keyFile) };
}

import type { Lifecycle } from "../common/component.js";
import type { AgentConfig } from "../config/load.js";
import { DeliveryLoop } from "../exporters/delivery.js";
import { registerDeliveryMetrics } from "../exporters/metrics.js";
import { readTrustedKeys } from "../integrity/key-files.js";
import type { PublicKey } from "../integrity/signing.js";
import type { NonAuditForwarder } from "../processing/api.js";
import type { ReceiverEndpoint } from "../receivers/api.js";
import { LogsPipeline } from "../processing/pipeline.js";
import { sourceProcessorFactory } from "../processing/source/factory.js";
import { loadSigningKeys } from "../sealing/keys.js";
import { registerSealingMetrics } from "../sealing/metrics.js";
import { Sealer } from "../sealing/sealer.js";
import { SealingGate } from "../sealing/sealing-gate.js";
import type { ChainLog } from "../store/chain-log.js";
import type { Cursors } from "../store/cursors.js";
import { groupCommitObserver, registerChainLogMetrics } from "../store/metrics.js";
import type { SealedLog } from "../store/sealed-log.js";
import { openWal, type Wal } from "../store/wal.js";
import { registerCounterMetrics } from "../telemetry/counter-metrics.js";
import { AgentCounters } from "../telemetry/counters.js";
import { ThrottledEvents } from "../telemetry/event-log.js";
import { HttpEndpoint } from "../telemetry/http-endpoint.js";
import type { Logger } from "../telemetry/logger.js";
import { registerProcessMetrics } from "../telemetry/process-metrics.js";
import { Registry } from "../telemetry/prometheus.js";
import type { ContinuousVerifier } from "../verify/continuous.js";
import { registerVerificationMetrics } from "../verify/metrics.js";
import { HealthCheck } from "./health.js";
import { type Stage, StageList } from "./stages.js";
import {
  type SignerFacts,
  signerFacts,
  type StartupSummary,
  startupSummary,
} from "./startup-summary.js";

/**
 * The composition root: the one module that builds every component and wires them.
 * Stages start in this order and stop in reverse (stages.ts):
 *
 *   WAL (opened first) → health → metrics → checkpoint server → exporters → sealer
 *   → continuous verification → receivers
 *
 * so nothing is accepted before it can be stored, and at shutdown the receivers stop
 * first, the sealer seals what is stored, the exporters drain within the grace period,
 * and the WAL closes last.
 */
/** At most this long for the receivers to finish the requests in flight at shutdown. */
const RECEIVER_STOP_MS = 5_000;

export interface RunningAgent {
  readonly chainId: string;
  readonly counters: AgentCounters;
  /** The chain log: records from receipt until every exporter has delivered them. */
  readonly wal: ChainLog;
  readonly sealed: SealedLog;
  readonly cursors: Cursors;
  readonly deliveries: readonly DeliveryLoop[];
  /** The periodic self-verification, when configured. */
  readonly verifier: ContinuousVerifier | null;
  /** Readiness as the health_check extension reports it, when configured. */
  readonly health: HealthCheck | null;
  /** The signing key's verifier key (`name+keyid+base64key`): a reload may not change it. */
  readonly verifierKey: string;
  /** Bound addresses by receiver id and protocol, e.g. { otlp: { grpc: "127.0.0.1:4317" } }. */
  addresses(): Record<string, Record<string, string>>;
  /** What `audit-agent run` tells at start: endpoints, destinations, key, verify commands. */
  summary(): StartupSummary;
  /**
   * Stops every stage. For a config reload (`reload: true`) the exporters finish the write
   * in progress and stop without catching up: what is sealed stays in the WAL and the
   * agent started next delivers it from their cursors, so a reload does not wait on a slow
   * backend.
   */
  shutdown(graceMs: number, options?: { reload?: boolean }): Promise<{ drained: boolean }>;
}

/** What the stages share while the agent is built. */
interface Parts {
  config: AgentConfig;
  logger: Logger;
  env: Record<string, string | undefined>;
  counters: AgentCounters;
  registry: Registry;
  wal: Wal;
  gate: SealingGate | undefined;
  trusted: PublicKey[];
  deliveries: DeliveryLoop[];
  forwarders: NonAuditForwarder[];
  addresses: Record<string, Record<string, string>>;
  /** Each receiver's endpoints, by receiver id, once listening. */
  receiverEndpoints: Record<string, ReceiverEndpoint[]>;
  /** The signing key as verifiers need it, once loaded. */
  signer: SignerFacts | null;
  verifier: ContinuousVerifier | null;
  health: HealthCheck | null;
  phase: "starting" | "running" | "stopping";
  /** Whether the exporters catch up before they stop (not on a reload). */
  drainOnStop: boolean;
  drained: boolean;
  verifierKey: string;
  /** Witnesses that are stale or refused (health's degraded reasons). */
  witnessProblems: () => string[];
}

export async function startAgent(
  config: AgentConfig,
  logger: Logger,
  env: Record<string, string | undefined> = process.env,
): Promise<RunningAgent> {
  const registry = new Registry(config.metricsNaming);
  const made: { gate?: SealingGate } = {};
  const wal = await openWal({
    directory: config.wal.directory,
    maxBytes: Math.floor(config.wal.max_size_mib * 1024 * 1024),
    memoryBytes: Math.floor(config.wal.memory_mib * 1024 * 1024),
    chainId: config.wal.chain_id,
    admission: (sealed) => (made.gate = new SealingGate(sealed, config.signing.batch.max_records)),
    observer: groupCommitObserver(registry),
  });
  const { log } = wal;
  logger.info(
    { chainId: log.chainId, wal: wal.directory, headSeq: log.headSeq },
    "write-ahead log open",
  );
  for (const warning of wal.warnings) logger.warn({ wal: wal.directory }, warning);
  // Once when writes start failing, once when they work again: never a line per request.
  wal.onStorageFailing((failing) =>
    failing
      ? logger.error(
          { wal: wal.directory, err: failing.message },
          "write-ahead log writes fail: requests are refused (503 / UNAVAILABLE) and the store is reopened until a write works",
        )
      : logger.warn({ wal: wal.directory }, "write-ahead log writes work again: taking requests"),
  );
  const parts: Parts = {
    config,
    logger,
    env,
    counters: new AgentCounters(),
    registry,
    wal,
    gate: made.gate,
    trusted: [],
    deliveries: [],
    forwarders: [],
    addresses: {},
    receiverEndpoints: {},
    signer: null,
    verifier: null,
    health: null,
    phase: "starting",
    drainOnStop: true,
    drained: true,
    verifierKey: "",
    witnessProblems: () => [],
  };
  const stages = new StageList(logger);
  try {
    await stages.start(walStage(parts));
    for (const stage of await agentStages(parts)) await stages.start(stage);
  } catch (err) {
    parts.phase = "stopping";
    await stages.stopAll(Date.now());
    throw err;
  }
  parts.phase = "running";
  return runningAgent(parts, stages);
}

/** The stages after the WAL, in start order; optional ones only when configured. */
async function agentStages(p: Parts): Promise<Stage[]> {
  const sealer = await openSealer(p);
  const list: Array<Stage | null> = [
    healthStage(p),
    metricsStage(p),
    await checkpointStage(p),
    exportersStage(p),
    await witnessingStage(p),
    sealerStage(p, sealer),
    await verificationStage(p),
    receiversStage(p),
  ];
  return list.filter((s): s is Stage => s !== null);
}

function runningAgent(p: Parts, stages: StageList): RunningAgent {
  let stopping: Promise<{ drained: boolean }> | null = null;
  return {
    chainId: p.wal.log.chainId,
    counters: p.counters,
    wal: p.wal.log,
    sealed: p.wal.sealed,
    cursors: p.wal.cursors,
    deliveries: p.deliveries,
    get verifier() {
      return p.verifier;
    },
    get health() {
      return p.health;
    },
    get verifierKey() {
      return p.verifierKey;
    },
    addresses: () => p.addresses,
    summary: () =>
      startupSummary(p.config, {
        chainId: p.wal.log.chainId,
        receivers: p.receiverEndpoints,
        addresses: p.addresses,
        signer: p.signer as SignerFacts,
      }),
    shutdown(graceMs: number, options?: { reload?: boolean }) {
      stopping ??= (async () => {
        const reload = options?.reload === true;
        p.phase = "stopping";
        p.drainOnStop = !reload;
        p.logger.info(
          { graceMs },
          reload
            ? "config reload: stopping the agent (no new requests; finishing in-flight ones)"
            : "shutting down: no new requests; finishing in-flight ones",
        );
        await stages.stopAll(Date.now() + graceMs);
        const state = { drained: p.drained, headSeq: p.wal.log.headSeq };
        if (reload) p.logger.info(state, "config reload: stopped; starting again");
        else p.logger.info(state, "stopped");
        return { drained: p.drained };
      })();
      return stopping;
    },
  };
}

function walStage(p: Parts): Stage {
  return { name: "wal", start: async () => {}, stop: () => p.wal.close() };
}

/** Loads the signing keys and records the signer (a key rotation is an entry of its own). */
async function openSealer(p: Parts): Promise<Sealer> {
  const { config, wal } = p;
  const keys = loadSigningKeys(config.signing, p.env, p.logger);
  p.verifierKey = keys.key.public.verifierKey;
  p.trusted.push(keys.key.public, ...(keys.previous ? [keys.previous.public] : []));
  p.signer = signerFacts(config, keys.key);
  if (config.verification) p.trusted.push(...readTrustedKeys(config.verification.trust));
  const sealer = await Sealer.open({
    log: wal.log,
    sealed: wal.sealed,
    gate: p.gate,
    key: keys.key,
    previousKey: keys.previous,
    origin: config.signing.origin ?? `otel-audit-agent/${wal.log.chainId}`,
    succession: wal.succession,
    policy: {
      maxRecords: config.signing.batch.max_records,
      maxBytes: Math.floor(config.signing.batch.max_size_mib * 1024 * 1024),
      timeoutMs: config.signing.batch.timeout,
    },
    logger: p.logger,
  });
  p.logger.info(
    { verifierKey: keys.key.public.verifierKey, sealedThrough: wal.sealed.sealedThrough },
    "signing batches",
  );
  return sealer;
}

/** Seals as records arrive; at shutdown, once ingest has drained, seals everything stored. */
function sealerStage(p: Parts, sealer: Sealer): Stage {
  registerSealingMetrics(p.registry, p.wal.sealed);
  return {
    name: "sealer",
    start: async () => sealer.start(),
    async stop() {
      await p.wal.log.drained();
      await sealer.stop();
      // Seal everything stored, so the exporters can ship it all within the grace period.
      await sealer.sealAll();
    },
  };
}

/**
 * Asks the configured witnesses to cosign each new checkpoint (imported only when some are
 * configured). Started before sealing, so each new batch waits for its round before
 * exporters see it; stopped after sealing's last seal, before exporters drain.
 */
async function witnessingStage(p: Parts): Promise<Stage | null> {
  const { signing } = p.config;
  if (signing.witnesses.length === 0) return null;
  const [{ Witnessing }, { registerWitnessMetrics }] = await Promise.all([
    import("../sealing/witnessing.js"),
    import("../sealing/metrics.js"),
  ]);
  const witnessing = new Witnessing({
    sealed: p.wal.sealed,
    witnesses: signing.witnesses,
    quorum: signing.witness_quorum ?? signing.witnesses.length,
    waitMs: signing.witness_wait,
    staleAfterMs: signing.witness_stale_after,
    logger: p.logger,
  });
  registerWitnessMetrics(p.registry, witnessing);
  p.witnessProblems = () => witnessing.problems();
  return {
    name: "witnessing",
    start: async () => witnessing.start(),
    stop: () => witnessing.stop(),
  };
}

function healthStage(p: Parts): Stage | null {
  const config = p.config.healthCheck;
  if (!config) return null;
  const health = new HealthCheck(config, {
    wal: p.wal.log,
    deliveries: p.deliveries,
    verifier: () => p.verifier,
    phase: () => p.phase,
    witnessProblems: () => p.witnessProblems(),
  });
  return {
    name: "health_check",
    async start() {
      await health.start();
      p.health = health;
      p.addresses.health_check = { http: health.address() };
    },
    stop: () => health.shutdown(),
  };
}

/** The Prometheus endpoint; each component registers its own metrics with the registry. */
function metricsStage(p: Parts): Stage | null {
  const { registry } = p;
  registerCounterMetrics(registry, p.counters);
  registerChainLogMetrics(registry, p.wal.log);
  registerDeliveryMetrics(registry, p.wal.log, p.deliveries, p.forwarders);
  registerVerificationMetrics(registry, () => p.verifier);
  const address = p.config.metricsAddress;
  if (!address) return null;
  const process = registerProcessMetrics(registry);
  const endpoint = new HttpEndpoint("metrics", address, async (path, _req, res) => {
    if (path !== "/metrics") {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("metrics are at /metrics\n");
      return;
    }
    res.writeHead(200, { "Content-Type": registry.contentType }).end(await registry.metrics());
  });
  return {
    name: "metrics",
    async start() {
      await endpoint.start();
      p.addresses.metrics = { http: endpoint.address() };
    },
    async stop() {
      await endpoint.shutdown();
      process.stop();
    },
  };
}

/** Serves checkpoints and proofs (imported only when configured). */
async function checkpointStage(p: Parts): Promise<Stage | null> {
  const endpoint = p.config.signing.endpoint;
  if (!endpoint) return null;
  const { CheckpointServer } = await import("../sealing/checkpoint-server.js");
  const server = new CheckpointServer(endpoint, p.wal.sealed, p.logger);
  return {
    name: "checkpoints",
    async start() {
      await server.start();
      p.addresses.signing = { http: server.address() };
    },
    stop: () => server.shutdown(),
  };
}

/**
 * Every exporter: a delivery loop for each sink, and pass-through forwarders. At shutdown
 * they deliver what is sealed until the deadline; what is left stays in the WAL.
 */
function exportersStage(p: Parts): Stage {
  const { config, wal, logger, counters } = p;
  const closers: Array<() => Promise<void>> = [];
  return {
    name: "exporters",
    async start() {
      const dropped = await wal.cursors.forgetAllExcept(config.exporters.map((e) => e.id));
      if (dropped.length > 0)
        logger.warn({ exporters: dropped }, "forgot cursors of exporters no longer configured");
      for (const e of config.exporters) {
        const component = await e.factory.create(
          { id: e.id, logger, counters, state: wal.exporterState(e.id) },
          e.config,
        );
        if (component.sink) {
          const delivery = new DeliveryLoop(
            e.id,
            component.sink,
            wal.log,
            wal.sealed,
            wal.cursors,
            component.delivery,
            counters,
            logger,
          );
          p.deliveries.push(delivery);
        }
        if (component.forwarder) p.forwarders.push(component.forwarder);
        if (component.close) closers.push(component.close);
      }
      for (const d of p.deliveries) d.start();
      for (const f of p.forwarders) f.start();
    },
    async stop(deadline) {
      const catchUp = p.drainOnStop ? deadline : Date.now();
      const results = await Promise.all(p.deliveries.map((d) => d.drain(catchUp)));
      p.drained = results.every(Boolean);
      if (!p.drained && p.drainOnStop)
        logger.warn(
          { headSeq: wal.log.headSeq },
          "grace period over before every exporter caught up; the rest stays in the WAL for the next start",
        );
      await Promise.all(p.forwarders.map((f) => f.shutdown(deadline)));
      for (const d of p.deliveries) await d.stop();
      for (const close of closers) await close();
    },
  };
}

/**
 * Periodic verification of what the exporters wrote (imported only when configured):
 * incremental, on a worker thread under a memory cap; at shutdown a run in progress is
 * ended, not waited for.
 */
async function verificationStage(p: Parts): Promise<Stage | null> {
  const { config } = p;
  if (!config.verification) return null;
  const settings = config.verification;
  const { ContinuousVerifier } = await import("../verify/continuous.js");
  const { VerificationRunner } = await import("./verification-runner.js");
  const runner = new VerificationRunner(
    settings.max_memory_mib,
    p.trusted,
    settings.spot_check_batches,
  );
  return {
    name: "verification",
    async start() {
      const targets = [];
      for (const e of config.exporters) {
        const delivery = p.deliveries.find((d) => d.exporterId === e.id);
        const wanted = settings.exporters === undefined || settings.exporters.includes(e.id);
        if (e.factory.capabilities.readable && delivery && wanted)
          targets.push({
            exporterId: e.id,
            delivery,
            verify: runner.forExporter(e.factory.type, e.config),
          });
      }
      const verifier = new ContinuousVerifier(
        targets,
        p.wal.sealed,
        p.wal.log.chainId,
        p.wal.verification,
        settings.interval,
        p.logger,
      );
      p.verifier = verifier;
      verifier.start();
    },
    stop: async () => p.verifier?.shutdown(() => runner.stop()),
  };
}

/** The receivers, last: nothing is accepted before every stage behind them is running. */
function receiversStage(p: Parts): Stage {
  const { config, counters, logger } = p;
  const receivers: Array<Lifecycle & { addresses(): Record<string, string> }> = [];
  // Records the audit filter leaves out: a count now and then, never their content.
  const filteredLog = new ThrottledEvents(logger);
  const filterId = config.auditFilter.id;
  let forwardedTo: string[] = [];
  const onFiltered = (records: number) =>
    filteredLog.event(
      "filtered",
      "info",
      forwardedTo.length > 0
        ? "records not matched by the audit filter: not chained, passed through to the OTLP exporters"
        : "records not matched by the audit filter: dropped, not stored",
      { processor: filterId, ...(forwardedTo.length > 0 ? { forwardedTo } : {}) },
      records,
    );
  return {
    name: "receivers",
    async start() {
      // The exporters stage, started before, made the forwarders.
      forwardedTo = p.forwarders.map((f) => f.exporterId);
      const isAudit = config.auditFilter.factory.create(
        { id: config.auditFilter.id, logger, counters },
        config.auditFilter.config,
      );
      const source = config.source
        ? sourceProcessorFactory.create({ id: "source", logger, counters }, config.source)
        : null;
      const pipeline = new LogsPipeline(
        isAudit,
        p.wal.log,
        { maxRecordBytes: config.wal.max_record_size_kib * 1024 },
        p.forwarders,
        onFiltered,
        source,
      );
      for (const r of config.receivers) {
        const component = r.factory.create({ id: r.id, logger, counters }, r.config, pipeline);
        await component.start();
        receivers.push(component);
        p.addresses[r.id] = component.addresses();
        p.receiverEndpoints[r.id] = component.endpoints();
      }
    },
    stop: async (deadline) => {
      // Requests in flight are short; what is left of the grace period is the exporters'.
      const until = Math.min(deadline, Date.now() + RECEIVER_STOP_MS);
      await Promise.all(receivers.map((r) => r.shutdown(until)));
      filteredLog.stop();
    },
  };
}

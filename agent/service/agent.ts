import { WriteAheadLog } from "../store/wal.js";
import { Batcher } from "../sealing/sealer.js";
import { readTrustedKeys } from "../integrity/key-files.js";
import { loadSigningKeys } from "../sealing/keys.js";
import type { PublicKey } from "../integrity/signing.js";
import { HealthCheck } from "./health.js";
import { HttpEndpoint } from "../telemetry/http-endpoint.js";
import { createMetrics } from "./metrics.js";
import type { ContinuousVerifier } from "../verify/continuous.js";
import type { AgentConfig } from "../config/load.js";
import { DeliveryLoop } from "../exporters/delivery.js";
import { AgentCounters } from "../telemetry/counters.js";
import type { Logger } from "../telemetry/logger.js";
import type { Lifecycle } from "../common/component.js";
import type { NonAuditForwarder } from "../processing/api.js";
import { LogsPipeline } from "../processing/pipeline.js";

/**
 * One agent: the WAL, the batcher that seals it, the logs pipeline, its receivers and one
 * delivery loop per exporter. Start order is WAL → batcher → exporters → receivers
 * (nothing is accepted before it can be stored); shutdown runs the reverse: stop
 * receiving, seal what is stored, let exporters drain within the grace period.
 */
export interface RunningAgent {
  readonly chainId: string;
  readonly counters: AgentCounters;
  readonly wal: WriteAheadLog;
  readonly batcher: Batcher;
  readonly deliveries: readonly DeliveryLoop[];
  /** The periodic self-verification, when configured. */
  readonly verifier: ContinuousVerifier | null;
  /** Readiness as the health_check extension reports it, when configured. */
  readonly health: HealthCheck | null;
  /** Bound addresses by receiver id and protocol, e.g. { otlp: { grpc: "127.0.0.1:4317" } }. */
  addresses(): Record<string, Record<string, string>>;
  shutdown(graceMs: number): Promise<{ drained: boolean }>;
}

export async function startAgent(
  config: AgentConfig,
  logger: Logger,
  env: Record<string, string | undefined> = process.env,
): Promise<RunningAgent> {
  const counters = new AgentCounters();
  const wal = await WriteAheadLog.open({
    directory: config.wal.directory,
    maxBytes: Math.floor(config.wal.max_size_mib * 1024 * 1024),
    chainId: config.wal.chain_id,
  });
  logger.info(
    { chainId: wal.chainId, wal: wal.directory, headSeq: wal.headSeq },
    "write-ahead log open",
  );

  let batcher: Batcher;
  const trusted: PublicKey[] = [];
  try {
    const keys = loadSigningKeys(config.signing, env, logger);
    trusted.push(keys.key.public, ...(keys.previous ? [keys.previous.public] : []));
    if (config.verification) trusted.push(...readTrustedKeys(config.verification.trust));
    batcher = await Batcher.open({
      wal,
      key: keys.key,
      previousKey: keys.previous,
      origin: config.signing.origin ?? `otel-audit-agent/${wal.chainId}`,
      policy: {
        maxRecords: config.signing.batch.max_records,
        maxBytes: Math.floor(config.signing.batch.max_size_mib * 1024 * 1024),
        timeoutMs: config.signing.batch.timeout,
      },
      logger,
    });
    logger.info(
      { verifierKey: keys.key.public.verifierKey, sealedThrough: batcher.sealedThrough },
      "signing batches",
    );
  } catch (err) {
    await wal.close();
    throw err;
  }
  batcher.start();
  wal.writeGate = () => batcher.sealingGate();
  // Optional parts are imported only when configured: a running agent holds no code it never uses.
  const checkpoints = config.signing.endpoint
    ? new (await import("../sealing/checkpoint-server.js")).CheckpointServer(
        config.signing.endpoint,
        batcher,
        logger,
      )
    : null;

  let stopping: Promise<{ drained: boolean }> | null = null;
  let verifier: ContinuousVerifier | null = null;
  let metrics: HttpEndpoint | null = null;
  let stopMetrics = () => {};
  let health: HealthCheck | null = null;
  const forwarders: NonAuditForwarder[] = [];
  const closers: Array<() => Promise<void>> = [];
  const settings = (id: string) => ({ id, logger, counters });
  const deliveries: DeliveryLoop[] = [];
  const receivers: Array<{
    id: string;
    component: Lifecycle & { addresses(): Record<string, string> };
  }> = [];
  try {
    const dropped = await wal.forgetCursorsExcept(config.exporters.map((e) => e.id));
    if (dropped.length > 0)
      logger.warn({ exporters: dropped }, "forgot cursors of exporters no longer configured");
    for (const e of config.exporters) {
      const component = await e.factory.create(
        { ...settings(e.id), state: wal.exporterState(e.id) },
        e.config,
      );
      if (component.sink) {
        deliveries.push(
          new DeliveryLoop(
            e.id,
            component.sink,
            wal,
            batcher,
            component.delivery,
            counters,
            logger,
          ),
        );
      }
      if (component.forwarder) forwarders.push(component.forwarder);
      if (component.close) closers.push(component.close);
    }
    for (const d of deliveries) d.start();
    for (const f of forwarders) f.start();
    await checkpoints?.start();
    if (config.verification) {
      const wanted = config.verification.exporters;
      const targets = [];
      for (const e of config.exporters) {
        const delivery = deliveries.find((d) => d.exporterId === e.id);
        if (e.factory.reader && delivery && (wanted === undefined || wanted.includes(e.id)))
          targets.push({ exporterId: e.id, source: await e.factory.reader(e.config), delivery });
      }
      const { ContinuousVerifier } = await import("../verify/continuous.js");
      verifier = new ContinuousVerifier(
        targets,
        batcher,
        trusted,
        config.verification.interval,
        logger,
      );
      verifier.start();
    }

    const isAudit = config.auditFilter.factory.create(
      settings(config.auditFilter.id),
      config.auditFilter.config,
    );
    const pipeline = new LogsPipeline(
      isAudit,
      wal,
      counters,
      { maxRecordBytes: config.wal.max_record_size_kib * 1024 },
      forwarders,
    );
    for (const r of config.receivers) {
      const component = r.factory.create(settings(r.id), r.config, pipeline);
      await component.start();
      receivers.push({ id: r.id, component });
    }
    if (config.metricsAddress) {
      const { registry, stop } = createMetrics({
        receiverIds: config.receivers.map((r) => r.id),
        counters,
        wal,
        batcher,
        deliveries,
        forwarders,
        verifier: () => verifier,
        // A WAL-backed queue holds what fits in the WAL: estimated from the average record.
        queueCapacity: () =>
          Math.floor(wal.maxBytes / (wal.heldRecords > 0 ? wal.usedBytes / wal.heldRecords : 1024)),
      });
      stopMetrics = stop;
      metrics = new HttpEndpoint("metrics", config.metricsAddress, async (path, _req, res) => {
        if (path !== "/metrics") {
          res.writeHead(404, { "Content-Type": "text/plain" }).end("metrics are at /metrics\n");
          return;
        }
        res.writeHead(200, { "Content-Type": registry.contentType }).end(await registry.metrics());
      });
      await metrics.start();
    }
    if (config.healthCheck) {
      health = new HealthCheck(config.healthCheck, {
        wal,
        deliveries,
        verifier: () => verifier,
        stopping: () => stopping !== null,
      });
      await health.start();
    }
  } catch (err) {
    await metrics?.shutdown();
    stopMetrics();
    await health?.shutdown();
    for (const r of receivers) await r.component.shutdown();
    for (const d of deliveries) await d.stop();
    for (const f of forwarders) await f.shutdown(Date.now());
    for (const close of closers) await close();
    await checkpoints?.shutdown();
    await batcher.stop();
    await wal.close();
    throw err;
  }

  return {
    chainId: wal.chainId,
    counters,
    wal,
    batcher,
    deliveries,
    get verifier() {
      return verifier;
    },
    get health() {
      return health;
    },
    addresses: () => ({
      ...Object.fromEntries(receivers.map((r) => [r.id, r.component.addresses()])),
      ...(checkpoints ? { signing: { http: checkpoints.address() } } : {}),
      ...(metrics ? { metrics: { http: metrics.address() } } : {}),
      ...(health ? { health_check: { http: health.address() } } : {}),
    }),
    shutdown(graceMs: number) {
      stopping ??= (async () => {
        const deadline = Date.now() + graceMs;
        logger.info({ graceMs }, "shutting down: no new requests; finishing in-flight ones");
        await Promise.all(receivers.map((r) => r.component.shutdown()));
        await verifier?.shutdown();
        await wal.drained();
        // Seal everything stored, so the exporters can ship it all within the grace period.
        await batcher.stop();
        await batcher.sealAll();
        const results = await Promise.all(deliveries.map((d) => d.drain(deadline)));
        const drained = results.every(Boolean);
        if (!drained)
          logger.warn(
            { headSeq: wal.headSeq },
            "grace period over before every exporter caught up; the rest stays in the WAL for the next start",
          );
        await Promise.all(forwarders.map((f) => f.shutdown(deadline)));
        for (const d of deliveries) await d.stop();
        for (const close of closers) await close();
        await checkpoints?.shutdown();
        await metrics?.shutdown();
        stopMetrics();
        await health?.shutdown();
        await wal.close();
        logger.info({ drained, headSeq: wal.headSeq }, "stopped");
        return { drained };
      })();
      return stopping;
    },
  };
}

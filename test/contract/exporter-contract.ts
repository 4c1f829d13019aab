import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AgentError } from "../../agent/common/errors.js";
import { exporterDescriptors } from "../../agent/config/registry.js";
import {
  type ExporterComponent,
  type ExporterFactory,
  type RecordSink,
  RetryableExportError,
  type SealedBatch,
  type SealedRecord,
} from "../../agent/exporters/api.js";
import { type ExporterDescriptor, lazyExporterFactory } from "../../agent/exporters/descriptor.js";
import { type AuditSource, type ChainData, readChains } from "../../agent/exporters/source.js";
import { leafHash } from "../../agent/integrity/format.js";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import {
  generateSigningKey,
  type PublicKey,
  type SigningKey,
} from "../../agent/integrity/signing.js";
import { contextSuffix, recordJson } from "../../agent/otlp/canonical-record.js";
import { decodeLogsRequestJson } from "../../agent/otlp/json-codec.js";
import { receiveTimeUnixNano } from "../../agent/processing/pipeline.js";
import { Sealer } from "../../agent/sealing/sealer.js";
import type { ExporterState } from "../../agent/store/exporter-state.js";
import { openWal, type Wal } from "../../agent/store/wal.js";
import { AgentCounters } from "../../agent/telemetry/counters.js";
import { verifySource } from "../../agent/verify/verify.js";

/**
 * The contract every durable, readable exporter plugin keeps (docs/exporters.md, "What a
 * plugin provides" and "Guarantees a plugin must keep"), as one vitest suite a plugin's
 * test runs against its own backend:
 *
 *   exporterContract("loki", { descriptor: lokiExporter, backend: async () => ({ … }) });
 *
 * The sealed batches are made by the agent's own code, not by hand: OTLP/JSON decoded and
 * canonicalized as the pipeline does it, appended to a real write-ahead log, sealed and
 * signed by the Sealer (with a key rotation), and read back as the delivery engine hands
 * them to a sink (sealed.readEntry + log.read). The sink and the reader are made from a
 * config by the plugin's registered factory, exactly as the agent and `verify --config` do.
 */

/** One backend of a plugin's kind, fresh and empty, that the cases may write to and break. */
export interface ContractBackend {
  /** The exporter's config for this backend, in its YAML shape (the plugin's schema parses it). */
  readonly config: Record<string, unknown>;
  /**
   * Makes the backend unreachable until up(): connections refused (or cut), or its storage
   * unusable. What was written before must survive it.
   */
  down(): Promise<void>;
  /** Brings the backend back as it was. */
  up(): Promise<void>;
  /** Releases the backend; called after every case, passed or failed, even while down. */
  close(): Promise<void>;
}

export interface ExporterHarness {
  /** The plugin's descriptor, as listed in agent/config/registry.ts. */
  readonly descriptor: ExporterDescriptor;
  /** Set when the backend is not available here: every case is skipped, loudly, with this reason. */
  readonly skip?: string;
  /** Once before the cases (e.g. create this run's bucket). */
  setUp?(): Promise<void>;
  /** A fresh, empty backend (one per case). */
  backend(): Promise<ContractBackend>;
  /** Once after the cases (e.g. delete this run's bucket). */
  tearDown?(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// Sealed batches from the agent's own code
// ---------------------------------------------------------------------------------------

/** A chain as the agent sealed it: what a sink is handed, and what a reader must give back. */
interface Chain {
  chainId: string;
  /** Every sealed-log entry in index order, with its records (none for a key rotation). */
  batches: SealedBatch[];
  /** Every record, in seq order. */
  records: SealedRecord[];
  /** The keys that signed it: what `verify` is given. */
  keys: PublicKey[];
}

/** One signing period: the key, the outgoing key when this starts with a rotation, appends. */
interface Period {
  key: SigningKey;
  previousKey?: SigningKey;
  /** Each group is one append, sealed before the next. */
  appends: string[][];
}

const silent = pino({ level: "silent" });
/** Small batches, so a few dozen records make several. */
const BATCH_RECORDS = 5;

/**
 * Canonical record texts for `count` audit records, made as the OTLP receiver and pipeline
 * make them: an OTLP/JSON request decoded by the agent's codec, each record canonicalized
 * with its resource and scope. Bodies and attributes cover the value types, escapes,
 * non-ASCII text and one record far larger than the others.
 */
function otlpRecords(first: number, count: number): string[] {
  const now = BigInt(Date.now()) * 1_000_000n;
  const logRecords = Array.from({ length: count }, (_, k) => {
    const i = first + k;
    const bodies = [
      {
        stringValue: `role "admin" granted to user ${i}\\ by "root"\n\ttab, é ü ß 😀 日本語 \u2028 \u0001`,
      },
      {
        kvlistValue: {
          values: [
            { key: "user", value: { stringValue: `mallory-${i}` } },
            { key: "attempts", value: { intValue: String(i) } },
            {
              key: "nested",
              value: { kvlistValue: { values: [{ key: "ok", value: { boolValue: false } }] } },
            },
          ],
        },
      },
      {
        arrayValue: {
          values: [{ stringValue: "a" }, { intValue: "-9007199254740993" }, { doubleValue: 0.1 }],
        },
      },
      { stringValue: i === 13 ? `large ${"0123456789abcdef€".repeat(4096)}` : `plain record ${i}` },
      { bytesValue: Buffer.from(`bytes ${i}`).toString("base64") },
    ];
    return {
      timeUnixNano: String(now - BigInt((count - k) * 1_000_000)),
      observedTimeUnixNano: String(now),
      severityNumber: 9 + (i % 3) * 4,
      severityText: ["INFO", "WARN", "ERROR"][i % 3],
      eventName: "audit.contract.event",
      body: bodies[i % bodies.length],
      attributes: [
        { key: "audit", value: { boolValue: true } },
        { key: "rec.idx", value: { intValue: String(i) } },
        { key: "risk.score", value: { doubleValue: 0.25 } },
        { key: "client.address", value: { stringValue: "203.0.113.7" } },
      ],
      traceId: "5b8efff798038103d269b633813fc60c",
      spanId: (0x1000000000000000n + BigInt(i)).toString(16),
      flags: 1,
    };
  });
  const request = {
    resourceLogs: [
      {
        resource: {
          attributes: [
            { key: "service.name", value: { stringValue: "billing-api" } },
            { key: "deployment.environment.name", value: { stringValue: "contract" } },
          ],
        },
        schemaUrl: "https://opentelemetry.io/schemas/1.26.0",
        scopeLogs: [{ scope: { name: "com.example.audit", version: "1.0.0" }, logRecords }],
      },
    ],
  };
  const decoded = decodeLogsRequestJson(Buffer.from(JSON.stringify(request), "utf8"));
  const out: string[] = [];
  for (const rl of decoded.resourceLogs)
    for (const sl of rl.scopeLogs) {
      const suffix = contextSuffix(rl.resource, rl.schemaUrl, sl.scope, sl.schemaUrl);
      for (const lr of sl.logRecords) out.push(recordJson(lr, suffix));
    }
  return out;
}

/**
 * Appends and seals `periods` in a new write-ahead log under `directory`, then reads the
 * sealed entries back as delivery hands them to a sink. The WAL stays open (the batches'
 * records are views of what it read) and also holds the exporters' durable state.
 */
async function sealChain(
  directory: string,
  periods: Period[],
): Promise<{ wal: Wal; chain: Chain }> {
  const wal = await openWal({ directory, maxBytes: 64 << 20 });
  try {
    for (const period of periods) {
      const sealer = await Sealer.open({
        log: wal.log,
        sealed: wal.sealed,
        key: period.key,
        previousKey: period.previousKey,
        origin: `otel-audit-agent/${wal.log.chainId}`,
        policy: { maxRecords: BATCH_RECORDS, maxBytes: 64 << 20, timeoutMs: 60_000 },
        logger: silent,
      });
      for (const group of period.appends) {
        await wal.log.append(group, receiveTimeUnixNano());
        await sealer.sealAll();
      }
      await sealer.stop();
    }
    const batches: SealedBatch[] = [];
    for (let i = 0; i < wal.sealed.entryCount; i++) {
      const entry = await wal.sealed.readEntry(i);
      if (entry === null) throw new Error(`sealed entry ${i} is missing`);
      const records =
        entry.count > 0
          ? await wal.log.read(entry.firstSeq - 1, entry.count, Number.POSITIVE_INFINITY)
          : [];
      if (records.length !== entry.count)
        throw new Error(`records of sealed entry ${i} are missing`);
      batches.push({ ...entry, records });
    }
    const keys = [
      ...new Map(periods.map((p) => [p.key.public.verifierKey, p.key.public])).values(),
    ];
    return {
      wal,
      chain: {
        chainId: wal.log.chainId,
        batches,
        records: batches.flatMap((b) => b.records),
        keys,
      },
    };
  } catch (err) {
    await wal.close();
    throw err;
  }
}

interface Fixtures {
  /**
   * 30 records in 8 entries: batches 0–4 signed by key A (9 then 14 records appended),
   * entry 5 the rotation to key B (signed by A, no records), batches 6–7 signed by B.
   */
  main: Chain;
  /** A chain whose first entry is a key rotation (the agent restarted with a new key before sealing anything), then one batch of 3. */
  rotationFirst: Chain;
  /** Durable exporter state, one namespace per backend (the main chain's WAL holds it). */
  state(id: string): ExporterState;
  close(): Promise<void>;
}

async function sealFixtures(): Promise<Fixtures> {
  const dir = mkdtempSync(join(tmpdir(), "exporter-contract-"));
  const a = generateSigningKey("contract-a");
  const b = generateSigningKey("contract-b");
  const opened: Wal[] = [];
  try {
    const main = await sealChain(join(dir, "main"), [
      { key: a, appends: [otlpRecords(0, 9), otlpRecords(9, 14)] },
      { key: b, previousKey: a, appends: [otlpRecords(23, 7)] },
    ]);
    opened.push(main.wal);
    const first = await sealChain(join(dir, "rotation-first"), [
      { key: a, appends: [] },
      { key: b, previousKey: a, appends: [otlpRecords(100, 3)] },
    ]);
    opened.push(first.wal);
    // The fixtures are what the cases assume; a change in sealing shows here, not as a plugin failure.
    expect(main.chain.batches.map((e) => e.records.length)).toEqual([5, 4, 5, 5, 4, 0, 5, 2]);
    expect(rotationOf(main.chain.batches[5] as SealedBatch)?.newKey).toBe(b.public.verifierKey);
    expect(first.chain.batches.map((e) => e.records.length)).toEqual([0, 3]);
    expect(rotationOf(first.chain.batches[0] as SealedBatch)?.newKey).toBe(b.public.verifierKey);
    return {
      main: main.chain,
      rotationFirst: first.chain,
      state: (id) => main.wal.exporterState(id),
      async close() {
        for (const w of opened) await w.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    for (const w of opened) await w.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

function rotationOf(batch: SealedBatch): { newKey: string } | null {
  const m = JSON.parse(batch.manifest) as { type: string; newKey?: string };
  return m.type === "key-rotation" && batch.records.length === 0 && batch.checkpoint === null
    ? { newKey: m.newKey ?? "" }
    : null;
}

// ---------------------------------------------------------------------------------------
// Checks on what a reader gives back
// ---------------------------------------------------------------------------------------

function seqOf(text: string): number {
  try {
    const seq = (JSON.parse(text) as { seq?: unknown }).seq;
    return typeof seq === "string" && /^\d+$/.test(seq) ? Number(seq) : -1;
  } catch {
    return -1;
  }
}

function manifestText(manifest: unknown): string {
  return canonicalize(manifest as JsonValue);
}

/** The one chain `chain` read back from `chains` (no other chain may be there). */
function theChain(chains: ChainData[], chain: Chain): ChainData {
  expect(
    chains.map((c) => c.chainId),
    "the reader returns exactly the chain written",
  ).toEqual([chain.chainId]);
  return chains[0] as ChainData;
}

/**
 * Exactly the chain, once: every record's canonical text byte-for-byte in seq order, every
 * manifest with its checkpoint in index order, no finding, and a location for each.
 */
function expectExactly(data: ChainData, chain: Chain): void {
  expect(data.findings, "findings of the reader").toEqual([]);
  expect(
    data.records.map((r) => seqOf(r.text)),
    "record seqs in storage order",
  ).toEqual(chain.records.map((r) => r.seq));
  const wrong = data.records
    .map((r, i) => ({ r, want: chain.records[i] as SealedRecord }))
    .filter(({ r, want }) => !leafHash(Buffer.from(r.text, "utf8")).equals(want.leafHash))
    .map(({ r, want }) => `seq ${want.seq} at ${r.location}`);
  expect(wrong, "records whose stored text is not byte-for-byte the canonical text").toEqual([]);
  expect(data.records.map((r) => r.text)).toEqual(chain.records.map((r) => r.canonicalText()));
  expectManifests(data, chain);
  const locations = [...data.records, ...data.manifests].map((x) => x.location);
  expect(
    locations.filter((l) => typeof l !== "string" || l.trim() === ""),
    "entries without a location",
  ).toEqual([]);
  expect(new Set(locations).size, "each entry has a location of its own").toBe(locations.length);
}

function expectManifests(data: ChainData, chain: Chain): void {
  expect(
    data.manifests.map((m) => manifestText(m.manifest)),
    "manifests in index order, canonical text as signed",
  ).toEqual(chain.batches.map((b) => b.manifest));
  expect(
    data.manifests.map((m) => m.checkpoint),
    "checkpoints stored with their manifests",
  ).toEqual(chain.batches.map((b) => b.checkpoint));
}

/**
 * The chain, where a re-send may have left identical copies: every copy of a record or a
 * manifest is the original, and the first copies are the whole chain in order.
 */
function expectNoDifferingCopies(data: ChainData, chain: Chain): void {
  expect(data.findings, "findings of the reader").toEqual([]);
  const bySeq = new Map(chain.records.map((r) => [r.seq, r.canonicalText()]));
  const differing = data.records
    .filter((r) => bySeq.get(seqOf(r.text)) !== r.text)
    .map((r) => `${r.location} (seq ${seqOf(r.text)})`);
  expect(differing, "stored records that differ from the record with their seq").toEqual([]);
  const firstCopies = [...new Set(data.records.map((r) => seqOf(r.text)))];
  expect(firstCopies, "records (first copies) in seq order").toEqual(
    chain.records.map((r) => r.seq),
  );
  const byIndex = new Map(chain.batches.map((b) => [String(b.index), b]));
  const differingManifests = data.manifests
    .filter((m) => {
      const text = manifestText(m.manifest);
      const want = byIndex.get(String((m.manifest as { index?: unknown }).index));
      return want === undefined || want.manifest !== text || want.checkpoint !== m.checkpoint;
    })
    .map((m) => m.location);
  expect(differingManifests, "stored manifests that differ from the one with their index").toEqual(
    [],
  );
  const firstManifests = [
    ...new Set(data.manifests.map((m) => String((m.manifest as { index?: unknown }).index))),
  ];
  expect(firstManifests, "manifests (first copies) in index order").toEqual(
    chain.batches.map((b) => String(b.index)),
  );
}

/** The verifier, given the signing keys, finds nothing and calls the chain whole. */
async function expectVerified(source: AuditSource, chain: Chain): Promise<void> {
  const report = await verifySource(source, chain.keys);
  expect(report.findings, "verifier findings").toEqual([]);
  expect(report.ok).toBe(true);
  const last = chain.records[chain.records.length - 1] as SealedRecord;
  expect(report.chains.map((c) => [c.chainId, c.sealedThrough])).toEqual([
    [chain.chainId, last.seq],
  ]);
}

/** Nothing, or only empty chains: what a reader gives for a backend without data. */
function expectNothing(chains: ChainData[]): void {
  expect(
    chains.map((c) => ({
      chainId: c.chainId,
      records: c.records.length,
      manifests: c.manifests.length,
      findings: c.findings,
    })),
    "chains read from a backend that holds nothing",
  ).toEqual(chains.map((c) => ({ chainId: c.chainId, records: 0, manifests: 0, findings: [] })));
}

/** What `fn` threw (null when it did not). */
async function thrown(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
    return null;
  } catch (err) {
    return err;
  }
}

function expectRetryable(err: unknown, what: string): void {
  expect(err, `${what}: expected a RetryableExportError, but nothing was thrown`).not.toBeNull();
  const shown = err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err);
  expect(err instanceof RetryableExportError, `${what}: threw ${shown}`).toBe(true);
  expect((err as AgentError).code).toBe("EXPORT_RETRYABLE");
  expect((err as Error).message.trim()).not.toBe("");
}

// ---------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------

/** A backend under test with the plugin's factory: makes sinks and readers from its config. */
class Plugin {
  private readonly components: ExporterComponent[] = [];

  constructor(
    readonly backend: ContractBackend,
    private readonly factory: ExporterFactory,
    private readonly config: unknown,
    private readonly id: string,
    private readonly state: (id: string) => ExporterState,
  ) {}

  /**
   * A new sink, as the agent creates one at start (and after a crash): each `agent` keeps
   * its own durable exporter state across the sinks it makes.
   */
  async sink(agent = "a"): Promise<RecordSink> {
    const settings = {
      id: this.id,
      logger: silent,
      counters: new AgentCounters(),
      state: this.state(`${this.id}/${agent}`),
    };
    const component = await this.factory.create(settings, this.config);
    this.components.push(component);
    expect(component.sink, "the factory's component has a sink").toBeDefined();
    return component.sink as RecordSink;
  }

  /** The reader, as `verify --config` and continuous verification make it. */
  async source(): Promise<AuditSource> {
    expect(this.factory.reader, "the factory has a reader").toBeTypeOf("function");
    const source = await this.factory.reader!(this.config);
    expect(source.description).toBeTypeOf("string");
    return source;
  }

  async close(): Promise<void> {
    for (const c of this.components.splice(0)) {
      await c.sink?.close().catch(() => undefined);
      await c.close?.();
    }
    await this.backend.close();
  }
}

async function writeEach(sink: RecordSink, batches: readonly SealedBatch[]): Promise<void> {
  for (const b of batches) await sink.write(b);
}

/**
 * Registers `describe("exporter contract: <name>")` with the cases every durable, readable
 * exporter must pass, each on a fresh backend from `harness`.
 */
export function exporterContract(name: string, harness: ExporterHarness): void {
  if (harness.skip !== undefined)
    console.warn(`\n!!! SKIPPING the exporter contract for ${name}: ${harness.skip}\n`);

  describe.skipIf(harness.skip !== undefined)(`exporter contract: ${name}`, () => {
    const { descriptor } = harness;
    const factory = lazyExporterFactory(descriptor);
    let fx: Fixtures | undefined;
    const plugins: Plugin[] = [];
    let made = 0;

    beforeAll(async () => {
      fx = await sealFixtures();
      await harness.setUp?.();
    });
    afterEach(async () => {
      for (const p of plugins.splice(0)) await p.close();
    });
    afterAll(async () => {
      try {
        await harness.tearDown?.();
      } finally {
        await fx?.close();
      }
    });

    const fixtures = (): Fixtures => fx as Fixtures;
    const main = (): Chain => fixtures().main;

    async function fresh(): Promise<Plugin> {
      const backend = await harness.backend();
      const id = `${descriptor.type}/contract-${++made}`;
      const plugin = new Plugin(
        backend,
        factory,
        factory.configSchema.parse(backend.config),
        id,
        fixtures().state,
      );
      plugins.push(plugin);
      return plugin;
    }

    it("is registered as durable and readable, with a sink and a reader", async () => {
      expect(exporterDescriptors).toContain(descriptor);
      expect(descriptor.capabilities).toEqual({ durable: true, readable: true });
      expect(descriptor.source?.scheme, "a `verify --source` scheme").toBeTypeOf("string");
      const loaded = await descriptor.load();
      expect(loaded.type).toBe(descriptor.type);
      expect(loaded.reader).toBeTypeOf("function");
      expect(factory.reader).toBeTypeOf("function");
    });

    it("writes every batch one by one; reads back every record byte-exact in seq order and every manifest; verifies", async () => {
      const p = await fresh();
      const sink = await p.sink();
      expect(await sink.open(main().chainId), "open() on an empty backend").toBeNull();
      await writeEach(sink, main().batches);
      await sink.close();
      const source = await p.source();
      expectExactly(theChain(await readChains(source), main()), main());
      await expectVerified(source, main());
    });

    it("writes groups of batches with writeAll (when the sink has it) with the same result", async (ctx) => {
      const p = await fresh();
      const sink = await p.sink();
      if (!sink.writeAll) return ctx.skip(`the ${descriptor.type} sink has no writeAll`);
      expect(await sink.open(main().chainId), "open() on an empty backend").toBeNull();
      const batches = main().batches;
      // Groups as the delivery loop forms them: consecutive, one with the key rotation inside.
      for (const [from, to] of [
        [0, 3],
        [3, 7],
        [7, 8],
      ])
        await sink.writeAll(batches.slice(from, to));
      await sink.close();
      const source = await p.source();
      expectExactly(theChain(await readChains(source), main()), main());
      await expectVerified(source, main());
    });

    it("is idempotent: re-sent batches (lost acks, a crash before the cursor commit) add no differing copy; open() reports what is held", async () => {
      const p = await fresh();
      const { chainId, batches } = main();
      const last = batches.length - 1;
      const held = (n: number | null, index: number, when: string) =>
        expect(
          n === null || n === index,
          `open() ${when} returned ${n}: must be null or ${index}`,
        ).toBe(true);

      let sink = await p.sink();
      await sink.open(chainId);
      await writeEach(sink, batches.slice(0, 4));
      await sink.write(batches[3] as SealedBatch); // the ack of batch 3 was lost: a retry
      await sink.close();

      // A crash: the cursor committed batch 1 only, so batches 2 and 3 are sent again.
      sink = await p.sink();
      held(await sink.open(chainId), 3, "after batches 0..3 were written");
      if (sink.writeAll) await sink.writeAll(batches.slice(2));
      else await writeEach(sink, batches.slice(2));
      await sink.close();

      // A crash between the last write and its cursor commit.
      sink = await p.sink();
      held(await sink.open(chainId), last, "after every batch was written");
      await sink.write(batches[last] as SealedBatch);
      await sink.close();

      const source = await p.source();
      expectNoDifferingCopies(theChain(await readChains(source), main()), main());
      await expectVerified(source, main());
    });

    it("writes and reads back key rotation entries (no records), mid-chain and as the first entry", async () => {
      const { chainId, batches } = main();
      const p = await fresh();
      let sink = await p.sink();
      await sink.open(chainId);
      await writeEach(sink, batches.slice(0, 6)); // ends with the rotation (entry 5)
      await sink.close();
      const [upToRotation] = await readChains(await p.source());
      expect(upToRotation?.manifests.map((m) => (m.manifest as { type?: string }).type)).toEqual([
        ...Array<string>(5).fill("batch"),
        "key-rotation",
      ]);
      expect(upToRotation?.manifests[5]?.checkpoint).toBeNull();
      expect(manifestText(upToRotation?.manifests[5]?.manifest)).toBe(batches[5]?.manifest);
      expect(upToRotation?.records.length).toBe(23);

      sink = await p.sink();
      const held = await sink.open(chainId);
      expect(held === null || held === 5, `open() after the rotation returned ${held}`).toBe(true);
      await writeEach(sink, batches.slice(6));
      await sink.close();
      const source = await p.source();
      expectExactly(theChain(await readChains(source), main()), main());
      await expectVerified(source, main());

      const first = fixtures().rotationFirst;
      const q = await fresh();
      const sink2 = await q.sink();
      expect(await sink2.open(first.chainId)).toBeNull();
      await writeEach(sink2, first.batches);
      await sink2.close();
      const source2 = await q.source();
      expectExactly(theChain(await readChains(source2), first), first);
      await expectVerified(source2, first);
    });

    it("keeps apart the chains of two agents writing to one backend, read in chain id order", async () => {
      const p = await fresh();
      const chains = [main(), fixtures().rotationFirst];
      const sinks = [await p.sink("a"), await p.sink("b")];
      for (const [i, sink] of sinks.entries())
        expect(await sink.open((chains[i] as Chain).chainId)).toBeNull();
      // Both agents deliver at the same time: their batches interleave.
      const rounds = Math.max(...chains.map((c) => c.batches.length));
      for (let k = 0; k < rounds; k++)
        for (const [i, sink] of sinks.entries()) {
          const batch = (chains[i] as Chain).batches[k];
          if (batch) await sink.write(batch);
        }
      for (const sink of sinks) await sink.close();
      const source = await p.source();
      const read = await readChains(source);
      const ordered = [...chains].sort((x, y) => (x.chainId < y.chainId ? -1 : 1));
      expect(read.map((c) => c.chainId)).toEqual(ordered.map((c) => c.chainId));
      for (const [i, chain] of ordered.entries()) expectExactly(read[i] as ChainData, chain);
      const report = await verifySource(source, main().keys);
      expect(report.findings, "verifier findings").toEqual([]);
      expect(report.ok).toBe(true);
    });

    it("fails with RetryableExportError while the backend is down, and recovers after close() and open()", async () => {
      const p = await fresh();
      const { chainId, batches } = main();
      const sink = await p.sink();

      await p.backend.down();
      expectRetryable(
        await thrown(async () => {
          await sink.open(chainId);
          await sink.write(batches[0] as SealedBatch);
        }),
        "open() and write() while the backend is down",
      );
      await sink.close();
      await p.backend.up();

      expect(await sink.open(chainId), "open() again, nothing written yet").toBeNull();
      await writeEach(sink, batches.slice(0, 2));
      await p.backend.down();
      expectRetryable(
        await thrown(() => sink.write(batches[2] as SealedBatch)),
        "write() after the backend went down",
      );
      await sink.close();
      await p.backend.up();

      const held = await sink.open(chainId);
      expect(held === null || held === 1, `open() after the outage returned ${held}`).toBe(true);
      await writeEach(sink, batches.slice(2));
      await sink.close();
      const source = await p.source();
      expectNoDifferingCopies(theChain(await readChains(source), main()), main());
      await expectVerified(source, main());
    });

    it("reads no chain (or an empty one) from a backend that holds nothing, before and after open()", async () => {
      const p = await fresh();
      const source = await p.source();
      expectNothing(await readChains(source));
      const sink = await p.sink();
      expect(await sink.open(main().chainId)).toBeNull();
      await sink.close();
      expectNothing(await readChains(source));
    });

    it("throws AgentError SOURCE_UNREADABLE when reading an unreachable backend, and reads it whole once it is back", async () => {
      const p = await fresh();
      const sink = await p.sink();
      await sink.open(main().chainId);
      await writeEach(sink, main().batches);
      await sink.close();
      const source = await p.source();

      await p.backend.down();
      const err = await thrown(() => readChains(source));
      const shown = err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err);
      expect(err, "reading an unreachable backend must throw").not.toBeNull();
      expect(err instanceof AgentError, `threw ${shown}`).toBe(true);
      expect((err as AgentError).code, shown).toBe("SOURCE_UNREADABLE");
      expect((err as Error).message).toMatch(/cannot read/);
      await p.backend.up();

      expectExactly(theChain(await readChains(source), main()), main());
    });
  });
}

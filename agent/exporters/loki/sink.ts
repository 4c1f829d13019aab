import type { Logger } from "../../telemetry/logger.js";
import { failFor, type HttpClient, type HttpResponse } from "../http/client.js";
import {
  type ExporterState,
  manifestLine,
  PermanentExportError,
  type RecordSink,
  type SealedBatch,
} from "../api.js";
import type { LokiQuery } from "./query.js";
import { checkLokiServer } from "./server-check.js";
import { storedStamps } from "./stored.js";
import type { LokiExporterConfig } from "./config.js";
import { type PushBody, PushBuilder } from "./push.js";

/**
 * Writes sealed batches to Loki (docs/exporter-loki.md).
 *
 * Timestamps. Loki stores an entry under (stream, timestamp, line) and drops a second
 * identical one, and it refuses entries far older than the newest one of their stream. So
 * each batch gets a base timestamp when it is first stamped — at least now, and strictly
 * after every entry stamped before — kept in the exporter's durable state under
 * `ts:<batch index>` before the first request goes out. A retry, or a re-send after a crash
 * lost the cursor, rebuilds byte-identical bodies from the batch and that stamp; Loki
 * deduplicates them, and since no later batch was sent before this one was confirmed, the
 * stamp is never behind its stream. The record's own times stay inside the canonical line.
 *
 * A stamp is replaced only while no request carrying it can have reached Loki (every
 * attempt in this process failed to connect): after a long outage the batch then goes out
 * stamped near the present, so Loki's reject_old_samples_max_age does not refuse it.
 */

/** Stamps kept: strictly only the latest is ever needed again (see pruneBefore). */
export const STAMPS_KEPT = 1024;

/** Connection errors raised before a single byte of the request was sent. */
const NOT_CONNECTED = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

interface Stamp {
  index: number;
  base: bigint;
  /** Entries the stamp covers: the records and the manifest. */
  entries: number;
  /** Whether a request carrying this stamp may have reached Loki. */
  reached: boolean;
  /** Leading push bodies Loki acknowledged in this process: a retry resumes after them. */
  done: number;
  /**
   * Whether Loki may hold entries of this stamp that no answer confirmed: the stamp was
   * stored by an earlier process, or a request got no answer, or a 5xx, after it connected.
   */
  unsure: boolean;
  /** Timestamps of the entries Loki was found to hold already (stored.ts), left out. */
  stored?: Set<bigint>;
}

export class LokiSink implements RecordSink {
  private chainId = "";
  private readonly builder: PushBuilder;
  private readonly headers: Record<string, string>;
  /** Highest timestamp stamped so far (ns), once known. */
  private high: bigint | null = null;
  private stamp: Stamp | null = null;

  constructor(
    private readonly client: HttpClient,
    private readonly config: LokiExporterConfig,
    private readonly state: ExporterState,
    private readonly logger: Logger,
    private readonly nowNs: () => bigint = () => BigInt(Date.now()) * 1_000_000n,
    /** Asks Loki what it holds before a batch is sent again (null: never asks). */
    private readonly query: LokiQuery | null = null,
  ) {
    this.builder = new PushBuilder(config);
    this.headers = { "content-type": "application/json" };
    if (config.tenant_id) this.headers["x-scope-orgid"] = config.tenant_id;
  }

  /**
   * Checks what it can of the server (server-check.ts: version, limits that would stop the
   * exporter later) and warns; delivery resumes from the exporter's own cursor.
   */
  async open(chainId: string): Promise<number | null> {
    this.chainId = chainId;
    const facts = await checkLokiServer(this.client, this.config, this.headers);
    this.logger.info(
      { endpoint: this.config.endpoint, lokiVersion: facts.version, chainId },
      "loki exporter ready",
    );
    for (const w of facts.warnings) this.logger.warn({ endpoint: this.config.endpoint }, w);
    return null;
  }

  async write(batch: SealedBatch): Promise<void> {
    const stamp = await this.stampFor(batch);
    // Loki may hold entries of this stamp that no answer confirmed: sending them again, only
    // Loki's dedup would keep them from being stored twice, which sharding defeats. What Loki
    // holds is left out.
    if (stamp.unsure && this.query) {
      stamp.stored = await this.alreadyStored(batch, stamp.base).catch((err: unknown) => {
        // Delivery does not wait for Loki's read path: the batch goes again whole.
        this.logger.warn(
          { batch: batch.index, err: (err as Error).message },
          "could not ask Loki which entries of this batch it holds; sending it whole (where Loki shards the stream, verify may report copies as duplicate)",
        );
        return new Set<bigint>();
      });
      stamp.done = 0;
      stamp.unsure = false;
      if (stamp.stored.size > 0)
        this.logger.info(
          { batch: batch.index, stored: stamp.stored.size, entries: stamp.entries },
          "Loki already holds part of this batch: sending the rest",
        );
    }
    const bodies = this.builder.build(this.chainId, batch, stamp.base, stamp.stored);
    for (let i = stamp.done; i < bodies.length; i++) {
      const body = bodies[i] as PushBody;
      let res: HttpResponse;
      try {
        res = await this.client.send({
          method: "POST",
          path: "/loki/api/v1/push",
          headers: this.headers,
          body: body.body,
        });
      } catch (err) {
        if (!neverConnected(err)) stamp.reached = stamp.unsure = true;
        throw err;
      }
      stamp.reached = true;
      if (res.status >= 500) stamp.unsure = true; // a 500 may come after the write
      if (res.status < 200 || res.status >= 300) this.refused(res, batch, body);
      stamp.done = i + 1;
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  private alreadyStored(batch: SealedBatch, base: bigint): Promise<Set<bigint>> {
    const records = batch.records.length;
    const end = base + BigInt(records);
    const manifest = manifestLine(batch.manifest, batch.checkpoint);
    return storedStamps(
      this.query as LokiQuery,
      this.builder.chainLabels(this.chainId),
      [base, end + 1n],
      (ts) =>
        ts === end
          ? manifest
          : ts >= base && ts < end
            ? batch.records[Number(ts - base)]?.canonicalText()
            : undefined,
    );
  }

  /** The batch's stamp: the stored one, or a new one stored (synced) before first use. */
  private async stampFor(batch: SealedBatch): Promise<Stamp> {
    const entries = batch.records.length + 1;
    const current = this.stamp;
    if (current && current.index === batch.index && current.entries === entries) {
      if (current.reached) return current;
      return this.newStamp(batch.index, entries); // nothing of it reached Loki: refresh it
    }
    const stored = parseStamp(await this.state.get(`ts:${batch.index}`));
    if (stored && stored.entries === entries) {
      this.raiseHigh(stored.base + BigInt(entries - 1));
      // Stored by an earlier attempt, maybe an earlier process: it may have reached Loki.
      this.stamp = {
        index: batch.index,
        base: stored.base,
        entries,
        reached: true,
        done: 0,
        unsure: true,
      };
      return this.stamp;
    }
    if (stored)
      this.logger.warn(
        { batch: batch.index, stored: stored.entries, entries },
        "stored Loki timestamp is for a different batch size; stamping anew",
      );
    return this.newStamp(batch.index, entries);
  }

  private async newStamp(index: number, entries: number): Promise<Stamp> {
    if (this.high === null && index > 0) {
      const previous = parseStamp(await this.state.get(`ts:${index - 1}`));
      if (previous) this.raiseHigh(previous.base + BigInt(previous.entries - 1));
    }
    let base = this.nowNs();
    if (this.high !== null && base <= this.high) base = this.high + 1n;
    await this.state.put(`ts:${index}`, `${base} ${entries}`);
    this.raiseHigh(base + BigInt(entries - 1));
    this.stamp = { index, base, entries, reached: false, done: 0, unsure: false };
    await this.pruneBefore(index);
    return this.stamp;
  }

  /**
   * Forgets old stamps. Only the batch being written can be sent again: the cursor of every
   * earlier batch was committed before this batch was stamped, and the stamp is a synced
   * write after it in the same LevelDB log, so no crash keeps the stamp and loses that
   * cursor. The last STAMPS_KEPT stamps are kept anyway, so a cursor set back by hand
   * re-sends identical entries too (~40 bytes each).
   */
  private async pruneBefore(index: number): Promise<void> {
    if (index >= STAMPS_KEPT) await this.state.delete(`ts:${index - STAMPS_KEPT}`);
  }

  private raiseHigh(ts: bigint): void {
    if (this.high === null || ts > this.high) this.high = ts;
  }

  /**
   * A refused push. 400 is permanent: Loki validated the request and refused entries for a
   * reason that sending the same bytes again cannot change (line too long, too old, too far
   * behind, bad labels, structured metadata not allowed). The entries it did not refuse
   * are stored; re-sending after the cause is fixed stores the rest and duplicates nothing.
   * 408, 429 and 5xx are retried (Retry-After honoured); other statuses are permanent.
   */
  private refused(res: HttpResponse, batch: SealedBatch, body: PushBody): never {
    const what = `Loki push of ${body.what} (batch ${batch.index})`;
    const reason = res.body.toString("utf8").trim();
    if (res.status === 400) {
      throw new PermanentExportError(
        `${what} refused with HTTP 400: ${shorten(reason)}. ${hintFor(reason)}` +
          "Loki stored the entries it did not refuse; fix the cause and restart the agent: " +
          "re-sending the batch adds only what is missing (identical entries are deduplicated).",
      );
    }
    if (res.status === 413)
      throw new PermanentExportError(
        `${what} refused with HTTP 413 (request too large${reason ? `: ${shorten(reason)}` : ""}): lower max_request_size_kib, or raise the limit of Loki or its proxy, then restart the agent`,
      );
    if (res.status === 401 || res.status === 403)
      throw new PermanentExportError(
        `${what} refused with HTTP ${res.status}${reason ? `: ${shorten(reason)}` : ""}: check auth and tenant_id (X-Scope-OrgID), then restart the agent`,
      );
    failFor(res, what);
  }
}

function parseStamp(raw: string | undefined): { base: bigint; entries: number } | null {
  const m = raw === undefined ? null : /^(\d+) (\d+)$/.exec(raw);
  return m ? { base: BigInt(m[1] as string), entries: Number(m[2]) } : null;
}

/** True when the error shows the request never left this host (connection not made). */
function neverConnected(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === "object" && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NOT_CONNECTED.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

function shorten(text: string): string {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const head = lines.slice(0, 3).join(" | ");
  const more = lines.length > 3 ? ` | … (${lines.length - 3} more lines)` : "";
  const out = `${head}${more}`;
  return out.length > 1200 ? `${out.slice(0, 1200)}…` : out;
}

/** What to change, for the refusals Loki's validation is known to give. */
function hintFor(reason: string): string {
  if (/Max entry size .* exceeded/i.test(reason))
    return "A record is longer than Loki's limits_config.max_line_size: raise it to at least extensions.wal.max_record_size_kib (audit records are never truncated). ";
  if (/too far behind/i.test(reason))
    return "Loki holds newer entries in that stream than this batch's timestamps (was the exporter's state reset, or does another writer use the same labels?). ";
  if (/timestamp too old/i.test(reason))
    return "The batch is older than Loki's limits_config.reject_old_samples_max_age: raise it (or set reject_old_samples: false) until the backlog is delivered. ";
  if (/timestamp too new/i.test(reason))
    return "This host's clock is ahead of Loki's (creation_grace_period): fix the clock. ";
  if (/structured metadata/i.test(reason))
    return "Enable structured metadata in Loki (limits_config.allow_structured_metadata, schema v13), or set structured_metadata: false on this exporter. ";
  if (/label/i.test(reason))
    return "Check labels.resource_attributes and labels.static against Loki's label limits. ";
  return "";
}

import { createHash } from "node:crypto";
import {
  type AuditSource,
  type ChainReader,
  parseManifestLine,
  type ReadProblems,
  type StoredManifest,
  type StoredText,
} from "../source.js";
import { sinceEpochMs } from "./config.js";
import { mergeStreams } from "./merge.js";
import {
  type Entry,
  labelText,
  LokiQuery,
  type LokiReaderOptions,
  type Range,
  unreadable,
} from "./query.js";
import { type ProbeState, StreamWindows, type Target } from "./windows.js";

export type { LokiReaderOptions } from "./query.js";

/**
 * Reads back what the Loki exporter wrote (docs/exporter-loki.md §Reading), as a stream:
 *
 * 1. Time windows of read.query_window (Loki's max_query_length) from read.since to an
 *    hour from now; per window the chains, from GET /loki/api/v1/label/chain_id/values
 *    (or the configured one).
 * 2. Per chain, and per stream kind (records, then manifests), its streams: the label sets
 *    GET /loki/api/v1/series lists, `__stream_shard__` included (Loki splits a busy stream
 *    into shards, each a stream of its own).
 * 3. Each stream is read on its own, window by window, every window complete by
 *    construction: a window is cut in two until each query returns fewer entries than
 *    its limit, never trusting what a full answer left out; pages are sized from a probe
 *    of the entries' lengths (windows.ts).
 * 4. The streams are merged into storage order: timestamp, then seq (merge.ts).
 *
 * Memory: per stream of the chain being read, one probe answer (< read.page_size entries,
 * lengths only) and one page (< read.page_size entries, at most PAGE_BYTES = 2 MiB of
 * lines, or one Loki message when Loki refuses the probe); never a whole chain.
 */

const HOUR_NS = 3_600_000_000_000n;

export class LokiSource implements AuditSource {
  readonly description: string;

  constructor(private readonly options: LokiReaderOptions) {
    this.description = `loki:${options.http.endpoint}${options.tenantId ? ` (tenant ${options.tenantId})` : ""}`;
  }

  /** The chains found, in chain id order; each is read when its streams are. */
  async *chains(): AsyncIterable<ChainReader> {
    const query = new LokiQuery(this.options);
    const probes: ProbeState = { enabled: true };
    query.acquire();
    try {
      const { ranges, note } = windows(this.options);
      const found = await this.chainRanges(query, ranges);
      for (const id of [...found.keys()].sort())
        yield new LokiChain(id, found.get(id) as Range[], query, probes, this.options, note);
    } finally {
      await query.release();
    }
  }

  /** The windows in which each chain has entries. */
  private async chainRanges(query: LokiQuery, ranges: Range[]): Promise<Map<string, Range[]>> {
    const configured = this.options.read.chain_id;
    const found = new Map<string, Range[]>();
    if (configured) {
      found.set(configured, ranges);
      return found;
    }
    const selector = `{${[
      `audit_stream=~"records|manifests"`,
      ...Object.entries(this.options.match).map(([k, v]) => `${k}=${JSON.stringify(v)}`),
    ].join(",")}}`;
    for (const range of ranges) {
      for (const id of await query.labelValues("chain_id", selector, range)) {
        const list = found.get(id);
        if (list) list.push(range);
        else found.set(id, [range]);
      }
    }
    return found;
  }
}

/** The time windows to read, each at most read.query_window wide, and the note saying so. */
function windows(options: LokiReaderOptions): { ranges: Range[]; note: string } {
  const { since, query_window } = options.read;
  const now = Date.now();
  const start = BigInt(Math.floor(sinceEpochMs(since, now))) * 1_000_000n;
  // Loki refuses entries more than its creation_grace_period (10m) ahead; an hour is ample.
  const end = BigInt(now) * 1_000_000n + HOUR_NS;
  const width = BigInt(Math.max(1, Math.floor(query_window))) * 1_000_000n;
  if ((end - start) / width > 20_000n)
    throw unreadable(
      `read.since ${since} in windows of ${query_window} ms makes more than 20000 queries per stream: widen read.query_window (up to Loki's max_query_length)`,
    );
  const ranges: Range[] = [];
  for (let s = start; s < end; s += width) ranges.push([s, s + width < end ? s + width : end]);
  const note = `read entries from ${new Date(Number(start / 1_000_000n)).toISOString()} on (read.since ${since}) in ${ranges.length} window(s)`;
  return { ranges, note };
}

class LokiChain implements ChainReader {
  private limitNoted = false;

  constructor(
    readonly chainId: string,
    private readonly ranges: readonly Range[],
    private readonly query: LokiQuery,
    private readonly probes: ProbeState,
    private readonly options: LokiReaderOptions,
    private readonly windowsNote: string,
  ) {}

  async *records(problems: ReadProblems, fromSeq = 0): AsyncIterable<readonly StoredText[]> {
    problems.note(this.windowsNote);
    for await (const page of this.entries("records", problems, fromSeq)) {
      const out: StoredText[] = [];
      for (const e of page) {
        const location = locate(e);
        out.push({ text: e.line, location });
        const problem = metadataProblem(e);
        if (problem)
          problems.finding({
            category: "malformed",
            chainId: this.chainId,
            location,
            detail: problem,
          });
      }
      yield out;
    }
    this.noteLimit(problems);
  }

  async *manifests(problems: ReadProblems): AsyncIterable<StoredManifest> {
    for await (const page of this.entries("manifests", problems, 0)) {
      for (const e of page) {
        const parsed = parseManifestLine(this.chainId, e.line, locate(e));
        if ("category" in parsed) problems.finding(parsed);
        else yield parsed;
      }
    }
    this.noteLimit(problems);
  }

  /** Every entry of the chain's streams of one kind, in storage order, a page at a time. */
  private async *entries(
    kind: "records" | "manifests",
    problems: ReadProblems,
    fromSeq: number,
  ): AsyncGenerator<Entry[]> {
    this.query.acquire();
    try {
      const targets = await this.targets(kind);
      const reader = new StreamWindows(this.query, this.probes, {
        kind,
        fromSeq,
        note: (text) => problems.note(text),
      });
      yield* mergeStreams(targets.map((t) => reader.batches(t)));
    } finally {
      await this.query.release();
    }
  }

  /**
   * The chain's streams of one kind, each with the windows it has entries in and a
   * selector that matches it and none of the other streams listed (a stream whose labels
   * extend another's, such as a shard of a stream that was once unsharded, is excluded
   * from the shorter one's selector by a `name=""` matcher on a label only it has).
   */
  private async targets(kind: "records" | "manifests"): Promise<Target[]> {
    const base = `{chain_id=${JSON.stringify(this.chainId)},audit_stream="${kind}"}`;
    const found = new Map<string, { labels: Record<string, string>; ranges: Range[] }>();
    for (const range of this.ranges) {
      for (const labels of await this.query.series(base, range)) {
        const key = labelText(labels);
        const known = found.get(key);
        if (known) known.ranges.push(range);
        else found.set(key, { labels, ranges: [range] });
      }
    }
    const all = [...found.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return all.map(([key, { labels, ranges }]) => {
      const excluded = new Set<string>();
      for (const [, other] of all) {
        const extra = Object.keys(other.labels).filter((k) => !(k in labels));
        const extends_ =
          extra.length > 0 && Object.entries(labels).every(([k, v]) => other.labels[k] === v);
        if (extends_)
          excluded.add(
            extra.includes("__stream_shard__") ? "__stream_shard__" : (extra.sort()[0] as string),
          );
      }
      const pairs = Object.keys(labels)
        .sort()
        .map((k) => `${k}=${JSON.stringify(labels[k])}`);
      const selector = `{${[...pairs, ...[...excluded].sort().map((k) => `${k}=""`)].join(",")}}`;
      return { key, labels, selector, ranges };
    });
  }

  private noteLimit(problems: ReadProblems): void {
    if (this.limitNoted || this.query.limit === this.options.read.page_size) return;
    this.limitNoted = true;
    problems.note(`Loki allows ${this.query.limit} entries per query; pages were that size`);
  }
}

/** Where a user finds the entry: its stream selector and nanosecond timestamp. */
function locate(e: Entry): string {
  return `${e.key} @ ${e.ts}`;
}

/** The structured metadata must name the line it is attached to (an index for users). */
function metadataProblem(e: Entry): string | null {
  const md = e.metadata;
  if (!md || (md.seq === undefined && md.hash === undefined)) return null;
  const seq = /"seq":"(\d+)"/.exec(e.line)?.[1];
  if (md.seq !== undefined && md.seq !== seq)
    return `structured metadata seq ${md.seq} does not match the line's seq ${seq ?? "(none)"}`;
  if (md.hash !== undefined) {
    const hash = createHash("sha256")
      .update(Buffer.from([0]))
      .update(e.line, "utf8")
      .digest("hex");
    if (md.hash !== hash)
      return `structured metadata hash ${md.hash.slice(0, 16)}… does not match the line's leaf hash ${hash.slice(0, 16)}…`;
  }
  return null;
}

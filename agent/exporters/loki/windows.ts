import { type Answer, type Entry, type LokiQuery, type Range, unreadable } from "./query.js";

/**
 * Reads one stream of a chain (one label set; a shard is a stream of its own) window by
 * window, each window complete by construction:
 *
 * - A query over [start, end) that returns FEWER entries than its limit returned every
 *   entry of the window: Loki truncates only to the limit. A query that returns the limit
 *   says nothing about what it left out: Loki merges per-stream and per-shard answers
 *   stream by stream, so they need not be the first entries in time (with a stream split
 *   into shards, a limit-N page up to timestamp X can lack entries below X). So a full
 *   answer is only ever used to choose where to cut its window in two; both sides are read
 *   again, each until its own query returns fewer entries than the limit. Nothing is
 *   concluded from "the last timestamp of a full page".
 * - Windows are [start, end) in nanoseconds (Loki: start inclusive, end exclusive). A cut
 *   at t makes [start, t) and [t, end): an entry belongs to exactly one side, so entries
 *   sharing a timestamp at a cut are neither lost nor read twice. A window one nanosecond
 *   wide that still fills a page cannot be cut: the reader notes it.
 * - Bytes: a page must fit a gRPC message between Loki's querier and frontend (4 MiB by
 *   default: server.grpc_server_max_send_msg_size / grpc_server_max_recv_msg_size),
 *   whatever the entry size. So a window is first read as a probe,
 *   `| line_format "{{ len __line__ }}"`: each entry's timestamp, metadata and line length,
 *   not the line (some 150 bytes an entry). From a complete probe (or from the part of a
 *   full probe before its last timestamp) the window is cut at entry timestamps into fetch
 *   windows of at most PAGE_BYTES of lines, and only those are read with their lines; each
 *   fetch is complete only if it returns fewer entries than the limit, else it is cut
 *   again. A Loki that refuses the probe (no pipelines) is read without it; a page Loki
 *   reports too large is then cut in halves like a full one.
 * - fromSeq: a window whose latest entry (a backward query, limit 2) carries `seq`
 *   metadata below fromSeq holds only earlier records (seqs grow with time in a stream the
 *   exporter wrote); a binary search over time skips such windows before the first record
 *   at or after fromSeq. Without seq metadata nothing is skipped.
 *
 * Memory: a stream holds at most one probe answer (< limit entries, no lines) and hands
 * on one fetched page at a time (< limit entries, at most PAGE_BYTES of lines, unless a
 * single timestamp holds more or Loki's answers change between probe and fetch).
 */

/** Line bytes of one fetched page: half of Loki's default 4 MiB gRPC message limit. */
export const PAGE_BYTES = 2 * 1024 * 1024;
/** What an entry adds to a page besides its line: timestamp, metadata, framing. */
const ENTRY_OVERHEAD = 64;
/** The probe: each entry's line replaced by its length in bytes (Go templates' `len`). */
const PROBE = ' | line_format "{{ len __line__ }}"';
/** The fromSeq search stops narrowing a window below this width. */
const SECOND_NS = 1_000_000_000n;

/** One stream to read: its label set, the query that selects it, and where it has data. */
export interface Target {
  key: string;
  labels: Record<string, string>;
  selector: string;
  ranges: readonly Range[];
}

/** Entries of a stream, oldest first, and the time before which the stream has no more. */
export interface Batch {
  entries: Entry[];
  through: bigint;
}

export interface WindowContext {
  kind: "records" | "manifests";
  /** Windows holding only records below this seq may be skipped (0: skip nothing). */
  fromSeq: number;
  note(text: string): void;
}

/** Whether the probe is used: shared by a source's chains, off once Loki refuses it. */
export interface ProbeState {
  enabled: boolean;
}

interface Sized {
  ts: bigint;
  bytes: number;
  seq: number | null;
}

export class StreamWindows {
  constructor(
    private readonly query: LokiQuery,
    private readonly probes: ProbeState,
    private readonly ctx: WindowContext,
  ) {}

  /** The stream's entries, a complete window at a time, in time order. */
  async *batches(target: Target): AsyncGenerator<Batch> {
    for (const [start, end] of target.ranges) yield* this.window(target, start, end);
  }

  private async *window(t: Target, a: bigint, b: bigint): AsyncGenerator<Batch> {
    let start = a;
    if (this.ctx.fromSeq > 0) {
      start = await this.skipBefore(t, a, b);
      if (start > a) yield { entries: [], through: start };
    }
    while (start < b) {
      const probe = this.probes.enabled ? await this.probe(t, start, b) : null;
      if (probe === null) return yield* this.direct(t, start, b, null);
      if (probe === "too-big") {
        const mid = start + (b - start) / 2n;
        if (mid === start) return yield* this.crowded(t, start, null);
        yield* this.window(t, start, mid);
        start = mid;
        continue;
      }
      // A full probe: fetch what lies before its last timestamp, then go on from there.
      const end = probe.full ? (probe.sizes[probe.sizes.length - 1] as Sized).ts : b;
      if (end === start) {
        yield* this.crowded(t, start, null);
        start += 1n;
        continue;
      }
      const sizes = probe.full ? probe.sizes.filter((x) => x.ts < end) : probe.sizes;
      // What a full probe says of seqs is not complete: skip nothing on its word.
      for (const group of plan(sizes, start, end, probe.full ? 0 : this.ctx.fromSeq)) {
        if (group.fetch) yield* this.fetch(t, group.start, group.end);
        else yield { entries: [], through: group.end };
      }
      start = end;
    }
  }

  /** The sizes of [a, b)'s entries; "too-big"; or null once probes are off. */
  private async probe(
    t: Target,
    a: bigint,
    b: bigint,
  ): Promise<{ sizes: Sized[]; full: boolean } | "too-big" | null> {
    const answer = await this.query.range(t.selector + PROBE, [a, b], {
      direction: "forward",
      probe: true,
    });
    if (answer.kind === "too-big") return "too-big";
    const problem =
      answer.kind === "refused"
        ? answer.detail
        : answer.entries
            .filter((e) => !/^\d+$/.test(e.line))
            .map((e) => `a line reading ${JSON.stringify(e.line.slice(0, 40))}`)[0];
    if (problem !== undefined || answer.kind !== "entries") {
      this.probes.enabled = false;
      this.ctx.note(
        `Loki did not answer the size probe (line_format "{{ len __line__ }}") as expected (${problem}): pages are read without it, and a page Loki finds too large is split`,
      );
      return null;
    }
    const sizes = answer.entries.map((e) => ({
      ts: e.ts,
      bytes: Number(e.line) + metadataBytes(e) + ENTRY_OVERHEAD,
      seq: metadataSeq(e),
    }));
    return { sizes, full: answer.entries.length >= answer.limit };
  }

  /** A planned window with its lines: complete if its answer is, else read without plan. */
  private async *fetch(t: Target, a: bigint, b: bigint): AsyncGenerator<Batch> {
    const answer = await this.query.range(t.selector, [a, b], { direction: "forward" });
    yield* this.direct(t, a, b, answer);
  }

  /**
   * [a, b) with its lines, no probe: an answer with fewer entries than the limit is the
   * window; a full one is cut at its last timestamp (or, all at `a`, after `a`), one Loki
   * finds too large in halves, and each side read the same way. `first` is [a, b)'s answer
   * when already asked.
   */
  private async *direct(
    t: Target,
    a: bigint,
    b: bigint,
    first: Answer | null,
  ): AsyncGenerator<Batch> {
    let answer = first;
    for (let start = a; start < b;) {
      answer ??= await this.query.range(t.selector, [start, b], { direction: "forward" });
      if (answer.kind === "entries" && answer.entries.length < answer.limit) {
        yield { entries: answer.entries, through: b };
        return;
      }
      if (b - start === 1n) return yield* this.crowded(t, start, answer);
      let cut = start + (b - start) / 2n;
      if (answer.kind === "entries") {
        const last = (answer.entries[answer.entries.length - 1] as Entry).ts;
        cut = last > start ? last : start + 1n;
      }
      answer = null; // only its cut is used: not held while the left side is read
      yield* this.direct(t, start, cut, null);
      start = cut;
    }
  }

  /**
   * [ts, ts + 1) holding a page or more of this stream: it cannot be cut. The exporter
   * never stamps two entries of a chain alike, so this is someone else's doing; a genuine
   * record hidden behind it shows up as missing. `answer` is its answer when already asked.
   */
  private async *crowded(t: Target, ts: bigint, answer: Answer | null): AsyncGenerator<Batch> {
    let limit = this.query.limit;
    while (answer?.kind !== "entries") {
      if (answer !== null) limit = Math.floor(limit / 2);
      if (limit < 1)
        throw unreadable(
          `query_range: one entry of ${t.key} at ${ts} is larger than Loki sends in one message (${answer?.kind === "too-big" ? answer.detail : ""}): raise server.grpc_server_max_send_msg_size and grpc_server_max_recv_msg_size`,
        );
      answer = await this.query.range(t.selector, [ts, ts + 1n], { direction: "forward", limit });
    }
    const { entries } = answer;
    if (entries.length >= answer.limit)
      this.ctx.note(
        `${entries.length} or more entries of the ${this.ctx.kind} stream ${t.key} share timestamp ${ts}; any past the first ${entries.length} were not read`,
      );
    yield { entries, through: ts + 1n };
  }

  /**
   * Where in [a, b) the records at or after fromSeq may begin: [a, returned) holds only
   * earlier ones, found by halving while the earlier half's latest entry is below fromSeq.
   */
  private async skipBefore(t: Target, a: bigint, b: bigint): Promise<bigint> {
    const whole = await this.allBefore(t, a, b);
    if (whole !== false) return whole === true ? b : a;
    let lo = a;
    let hi = b;
    while (hi - lo > SECOND_NS) {
      const mid = lo + (hi - lo) / 2n;
      const before = await this.allBefore(t, lo, mid);
      if (before === null) return lo;
      if (before) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Whether every record of this stream in [a, b) is below fromSeq, told by its latest
   * entry's `seq` metadata. A window without entries is. null: it cannot tell (two entries
   * share the latest timestamp, an entry of another stream answered, no seq metadata).
   */
  private async allBefore(t: Target, a: bigint, b: bigint): Promise<boolean | null> {
    const probe = this.probes.enabled;
    const answer = await this.query.range(probe ? t.selector + PROBE : t.selector, [a, b], {
      direction: "backward",
      limit: 2,
      probe,
    });
    if (answer.kind !== "entries") return null;
    const entries = answer.entries;
    const last = entries[entries.length - 1];
    if (last === undefined) return true;
    if (entries.some((e) => e.key !== t.key)) return null;
    if (entries.length > 1 && (entries[0] as Entry).ts === last.ts) return null;
    const seq = metadataSeq(last);
    return seq === null ? null : seq < this.ctx.fromSeq;
  }
}

interface Group {
  start: bigint;
  end: bigint;
  fetch: boolean;
}

/**
 * Cuts [a, b) at entry timestamps into windows of at most PAGE_BYTES (never between
 * entries sharing a timestamp), separating runs that need no fetch: no entries, or (with
 * fromSeq) only entries whose seq metadata is below it.
 */
function plan(sizes: readonly Sized[], a: bigint, b: bigint, fromSeq: number): Group[] {
  const groups: Group[] = [];
  let start = a;
  let bytes = 0;
  let fetch: boolean | null = null;
  for (let i = 0; i < sizes.length;) {
    const ts = (sizes[i] as Sized).ts;
    let clusterBytes = 0;
    let needed = false;
    for (; i < sizes.length && (sizes[i] as Sized).ts === ts; i++) {
      const s = sizes[i] as Sized;
      clusterBytes += s.bytes;
      if (!(fromSeq > 0 && s.seq !== null && s.seq < fromSeq)) needed = true;
    }
    if (fetch !== null && (needed !== fetch || (needed && bytes + clusterBytes > PAGE_BYTES))) {
      groups.push({ start, end: ts, fetch });
      start = ts;
      bytes = 0;
    }
    fetch = needed;
    bytes += clusterBytes;
  }
  groups.push({ start, end: b, fetch: fetch ?? false });
  return groups;
}

function metadataBytes(e: Entry): number {
  let n = 0;
  for (const [k, v] of Object.entries(e.metadata ?? {})) n += k.length + v.length;
  return n;
}

function metadataSeq(e: Entry): number | null {
  const seq = e.metadata?.seq;
  return seq !== undefined && /^\d+$/.test(seq) ? Number(seq) : null;
}

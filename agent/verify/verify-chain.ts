import { receivedOf } from "../integrity/canonical-check.js";
import { checkEnvelope } from "../integrity/chain-check.js";
import { genesisHash } from "../integrity/format.js";
import { canonicalize, type JsonValue } from "../integrity/jcs.js";
import {
  checkManifestSignature,
  manifestHash,
  manifestProblem,
  type SignedManifest,
} from "../integrity/manifest.js";
import { EMPTY_TREE_HASH } from "../integrity/merkle.js";
import { type Checkpoint, parseCheckpointText, parseNote, verifyNote } from "../integrity/note.js";
import type { PublicKey } from "../integrity/signing.js";
import { hashLines, treeRoots } from "./leaf-hashes.js";
import type { ChainData, ChainSummary, Finding, FindingCategory, StoredText } from "./types.js";

/**
 * Verifies one chain from what a backend holds and trusted public keys alone
 * (docs/integrity-format.md §7). Every check that fails becomes a finding with a
 * category and a location; nothing is assumed from the agent's own state.
 */

export interface VerifyOptions {
  trusted: readonly PublicKey[];
  /** Checkpoints seen earlier (signed notes), e.g. from `--checkpoint FILE`. */
  knownCheckpoints: readonly { note: string; location: string }[];
  /** Hash on a worker thread; by default for chains of WORKER_THRESHOLD lines or more. */
  hashOnWorker?: boolean;
}

interface Rec {
  seq: number;
  /** Its index in the stored lines, and in the leaf hashes computed for them. */
  line: number;
  text: string;
  location: string;
}

export async function verifyChain(
  data: ChainData,
  options: VerifyOptions,
): Promise<{ summary: ChainSummary; findings: Finding[]; usedCheckpoints: Set<number> }> {
  const usedCheckpoints = new Set<number>();
  const chainId = data.chainId;
  const findings: Finding[] = [...data.findings];
  const adder =
    (list: Finding[]) =>
    (
      category: FindingCategory,
      location: string,
      detail: string,
      at: { seq?: number; manifest?: number } = {},
    ) =>
      list.push({ category, chainId, location, detail, ...at });
  const add = adder(findings);

  // 2 (reported after 1). Manifests: structure, signature, their own hash chain. Their
  // batches and checkpoints say which tree roots steps 5 and 6 need: computed along with the
  // leaf hashes, for the usual case of a chain stored whole and in order (see `inOrder`
  // below); otherwise from the records kept, once they are known.
  const manifestFindings: Finding[] = [];
  const { batches, claimedThrough } = checkManifests(
    data,
    options.trusted,
    adder(manifestFindings),
  );
  const checkpointSizes = [
    ...data.manifests.map((m) => m.checkpoint),
    ...options.knownCheckpoints.map((k) => k.note),
  ].flatMap((note) => (note ? checkpointSize(note) : []));
  const lines = data.records;
  const inOrderRanges: [number, number][] = [];
  for (const b of batches) {
    const [first, last] = [Number(b.firstSeq), Number(b.lastSeq)];
    if (first <= last && last < lines.length) inOrderRanges.push([first, last + 1]);
  }
  for (const size of checkpointSizes)
    if (size > 0 && size <= lines.length) inOrderRanges.push([0, size]);

  // 1. Records: parse each line while its leaf hash is computed alongside (leaf-hashes.ts),
  // keep the first copy of each seq, and note the storage order. Records must be stored in
  // ascending seq order: a later copy of an earlier seq is judged in step 3, any other record
  // stored after a higher seq is reordered. A record's `prev` is kept as bytes, at 32 × its
  // line, and its receive time only in the summary's range: little per record outlives
  // the scan.
  const parsed: (Rec | string)[] = new Array<Rec | string>(lines.length);
  const prevs = Buffer.alloc(32 * lines.length);
  const scannedTimes = new ReceiveTimes();
  const scan = (i: number): Rec | string => {
    const line = lines[i] as StoredText;
    const env = checkEnvelope(line.text);
    if (typeof env === "string") return env;
    if (env.chainId !== chainId)
      return `record of chain ${env.chainId} stored with chain ${chainId}`;
    prevs.write(env.prev, 32 * i, 32, "hex");
    scannedTimes.add(env.timeReceivedUnixNano);
    return { seq: Number(env.seq), line: i, text: line.text, location: line.location };
  };
  const { digests, roots: inOrderRoots } = await hashLines(
    lines,
    (start, end) => {
      for (let i = start; i < end; i++) parsed[i] = scan(i);
    },
    inOrderRanges,
    options.hashOnWorker,
  );
  const hashHex = (r: Rec) => digests.toString("hex", 32 * r.line, 32 * r.line + 32);
  const prevHex = (r: Rec) => prevs.toString("hex", 32 * r.line, 32 * r.line + 32);

  const firstCopies: Rec[] = [];
  let bySeq: Map<number, Rec> | null = null; // made once a seq repeats or goes back
  const copies = new Map<number, Rec[]>(); // every copy, for the seqs stored more than once
  const reordered: Finding[] = [];
  let maxSeq = -1;
  for (const [i, rec] of parsed.entries()) {
    if (typeof rec === "string") {
      add("malformed", (lines[i] as StoredText).location, rec);
      continue;
    }
    if (rec.seq > maxSeq) {
      firstCopies.push(rec);
      bySeq?.set(rec.seq, rec);
      maxSeq = rec.seq;
      continue;
    }
    bySeq ??= new Map(firstCopies.map((r) => [r.seq, r]));
    const first = bySeq.get(rec.seq);
    if (first === undefined) {
      firstCopies.push(rec);
      bySeq.set(rec.seq, rec);
      const detail = `seq ${rec.seq} is stored after seq ${maxSeq}`;
      reordered.push({
        category: "reordered",
        chainId,
        location: rec.location,
        detail,
        seq: rec.seq,
      });
    } else {
      const list = copies.get(rec.seq);
      if (list) list.push(rec);
      else copies.set(rec.seq, [first, rec]);
    }
  }
  findings.push(...reordered, ...manifestFindings);

  // 3. Pick one copy per seq: the one the signed chain commits to.
  const committed = new Map<number, string>(); // seq → leaf hash committed by a manifest (lastLeaf / prevLeaf)
  for (const b of batches) {
    committed.set(Number(b.lastSeq), b.lastLeaf);
    if (Number(b.firstSeq) > 0) committed.set(Number(b.firstSeq) - 1, b.prevLeaf);
  }
  const genuineCopy = new Map<number, Rec>();
  for (const [seq, list] of [...copies].sort((a, b) => a[0] - b[0])) {
    const first = list[0] as Rec;
    const distinct = new Map(list.map((r) => [r.text, r]));
    if (distinct.size === 1) {
      for (const extra of list.slice(1))
        add(
          "duplicate",
          extra.location,
          `a second identical copy of seq ${seq} (first at ${first.location})`,
          { seq },
        );
      continue;
    }
    const next = bySeq?.get(seq + 1);
    const nextPrev = next && prevHex(next);
    const expected = committed.get(seq) ?? nextPrev;
    const genuine = list.find((r) => hashHex(r) === expected) ?? first;
    genuineCopy.set(seq, genuine);
    for (const r of list) {
      if (r === genuine || r.text === genuine.text) continue;
      add(
        "inserted",
        r.location,
        `a different record claiming seq ${seq}; the chain commits to the one at ${genuine.location}`,
        { seq },
      );
    }
  }
  // The kept records in ascending seq. First copies were stored in ascending order unless
  // some were reordered.
  let ordered = reordered.length > 0 ? [...firstCopies].sort((a, b) => a.seq - b.seq) : firstCopies;
  if (genuineCopy.size > 0) ordered = ordered.map((r) => genuineCopy.get(r.seq) ?? r);

  // 4. Contiguity and links.
  let expectedSeq = 0;
  const genesis = genesisHash(chainId);
  for (let i = 0; i < ordered.length; i++) {
    const rec = ordered[i] as Rec;
    const seq = rec.seq;
    if (seq > expectedSeq)
      add(
        "missing",
        rec.location,
        `records ${range(expectedSeq, seq - 1)} are absent before seq ${seq}`,
        { seq: expectedSeq },
      );
    const before = ordered[i - 1];
    const prevRec = before?.seq === seq - 1 ? before : undefined;
    const at = 32 * rec.line;
    const linked =
      seq === 0
        ? genesis.compare(prevs, at, at + 32) === 0
        : prevRec === undefined ||
          digests.compare(prevs, at, at + 32, 32 * prevRec.line, 32 * prevRec.line + 32) === 0;
    if (!linked) {
      const culprit = seq === 0 ? rec : (prevRec as Rec);
      const computed = seq === 0 ? genesis.toString("hex") : hashHex(culprit);
      add(
        "modified",
        culprit.location,
        `seq ${culprit.seq} does not match the link stored in seq ${seq} (prev ${prevHex(rec).slice(0, 16)}…, computed ${computed.slice(0, 16)}…)`,
        { seq: culprit.seq },
      );
    }
    expectedSeq = seq + 1;
  }
  // A gap at the end has no later record to reveal it; the signed batches that seal it do.
  const signedThrough = batches.reduce((max, b) => Math.max(max, Number(b.lastSeq)), -1);
  if (expectedSeq <= signedThrough) {
    const sealing = batches.find((b) => Number(b.lastSeq) >= expectedSeq) as BatchInfo;
    add(
      "missing",
      sealing.location,
      `records ${range(expectedSeq, signedThrough)} are absent from the end of the chain, though signed batches seal them`,
      { seq: expectedSeq },
    );
  }

  // Tree roots for steps 5 and 6, over the kept records' leaf hashes by their position in
  // `ordered`. When every line was kept, in place and numbered from 0, that is the order
  // the leaves were hashed in, and the roots asked for above apply.
  let contiguous = 0;
  while (ordered[contiguous]?.seq === contiguous) contiguous++;
  const inOrder =
    ordered.length === lines.length &&
    contiguous === lines.length &&
    ordered.every((r, i) => r.line === i);
  const neededRanges: [number, number][] = [];
  for (const b of batches) {
    const { from, held, absent } = batchSpan(ordered, b);
    if (absent === 0 && held > 0) neededRanges.push([from, from + held]);
  }
  for (const size of checkpointSizes)
    if (size > 0 && size <= contiguous) neededRanges.push([0, size]);
  const roots = new Map<string, string>();
  const keep = (ranges: [number, number][], found: Buffer) =>
    ranges.forEach(([from, to], k) =>
      roots.set(`${from}:${to}`, found.toString("hex", 32 * k, 32 * k + 32)),
    );
  if (inOrder) keep(inOrderRanges, inOrderRoots);
  const missingRanges = neededRanges.filter(([from, to]) => !roots.has(`${from}:${to}`));
  if (missingRanges.length > 0) {
    const leaves = Buffer.alloc(32 * ordered.length);
    ordered.forEach((r, i) => digests.copy(leaves, 32 * i, 32 * r.line, 32 * r.line + 32));
    keep(missingRanges, treeRoots(leaves, missingRanges));
  }
  const rootHex = (from: number, to: number) =>
    from === to ? EMPTY_TREE_HASH.toString("hex") : (roots.get(`${from}:${to}`) as string);

  // 5. Batches: each signed batch must match the records exactly.
  let sealedThrough = -1;
  for (const b of batches) {
    const { first, last, from, held, absent } = batchSpan(ordered, b);
    sealedThrough = Math.max(sealedThrough, last);
    if (absent > 0) {
      if (held === 0)
        add(
          "missing",
          b.location,
          `all ${absent} records of signed batch ${b.index} (seq ${range(first, last)}) are absent`,
          { seq: first, manifest: Number(b.index) },
        );
      continue; // individual gaps were reported above
    }
    const root = rootHex(from, from + held);
    if (root !== b.batchRoot) {
      const linked = findings.some(
        (f) => f.category === "modified" && f.seq !== undefined && f.seq >= first && f.seq <= last,
      );
      if (!linked)
        add(
          "modified",
          b.location,
          `records ${range(first, last)} do not match the Merkle root signed in batch ${b.index}: they were altered and re-chained`,
          { seq: first, manifest: Number(b.index) },
        );
    }
  }
  for (const rec of ordered) {
    if (rec.seq > Math.max(sealedThrough, claimedThrough)) {
      add(
        "inserted",
        rec.location,
        `seq ${rec.seq} is not covered by any signed batch (the last signed batch ends at ${sealedThrough}): forged, or written after the last seal`,
        { seq: rec.seq },
      );
    }
  }

  // 6. Checkpoints: stored ones and those seen earlier must match the rebuilt tree.
  let latest: Checkpoint | null = null;
  let checkpoints = 0;
  const seenKeys = new Set(batches.map((b) => b.keyId));
  const checkNote = async (note: string, location: string, external: boolean) => {
    let cp: Checkpoint;
    try {
      const parsed = parseNote(note);
      const sig = verifyNote(parsed, options.trusted);
      if (sig.invalid.length > 0)
        return add(
          "bad-signature",
          location,
          `checkpoint signature by ${sig.invalid[0]?.name} does not verify`,
        );
      if (sig.valid.length === 0)
        return add(
          "unknown-key",
          location,
          `checkpoint signed only by untrusted keys (${parsed.signatures.map((s) => `${s.name}+${s.keyId}`).join(", ")})`,
        );
      // As for manifests: only the canonical base64 of each signature is the stored note.
      const lines = parsed.signatures.map(
        (s) =>
          `\u2014 ${s.name} ${Buffer.concat([Buffer.from(s.keyId, "hex"), s.signature]).toString("base64")}\n`,
      );
      if (`${parsed.text}\n${lines.join("")}` !== note)
        return add(
          "bad-signature",
          location,
          "checkpoint signature line is not in canonical base64 (its text was altered)",
        );
      cp = parseCheckpointText(parsed.text);
    } catch (err) {
      return add("malformed", location, `checkpoint: ${(err as Error).message}`);
    }
    checkpoints++;
    if (!latest || cp.size > latest.size) latest = cp;
    if (cp.size > contiguous) {
      if (external || cp.size > sealedThrough + 1) {
        return add(
          "truncated",
          location,
          `a checkpoint for ${cp.size} records was seen, but only ${contiguous} contiguous records are held: the tail was removed`,
          { seq: contiguous },
        );
      }
      return; // gaps inside were already reported as missing
    }
    const root = rootHex(0, cp.size);
    if (root !== cp.rootHash.toString("hex")) {
      add(
        "modified",
        location,
        `the records do not reproduce the signed tree root for size ${cp.size}: history was rewritten`,
      );
    }
  };
  for (const m of data.manifests)
    if (m.checkpoint) await checkNote(m.checkpoint, m.location, false);
  // A checkpoint seen earlier applies to the chain with its origin (the origin of this
  // chain's own checkpoints, or by default otel-audit-agent/<chain id>).
  const ownOrigin = data.manifests.map((m) => m.checkpoint && originOf(m.checkpoint)).find(Boolean);
  for (const [i, k] of options.knownCheckpoints.entries()) {
    const origin = originOf(k.note);
    const matches =
      origin !== null && (ownOrigin ? origin === ownOrigin : origin.endsWith(`/${chainId}`));
    if (!matches) continue;
    usedCheckpoints.add(i);
    await checkNote(k.note, k.location, true);
  }

  // Receive times are not checked (docs/integrity-format.md §7.1): a damaged one is caught
  // by the link of the next record, and must not stop the report.
  // The times seen while scanning are those of the kept records when every line was kept.
  let times = scannedTimes;
  if (!inOrder) {
    times = new ReceiveTimes();
    for (const r of ordered) times.add(receivedOf(r.text));
  }
  const bestLatest = latest as Checkpoint | null;
  return {
    findings,
    usedCheckpoints,
    summary: {
      chainId,
      records: ordered.length,
      firstSeq: ordered[0]?.seq ?? null,
      lastSeq: ordered[ordered.length - 1]?.seq ?? null,
      firstReceived: times.earliest === null ? null : nanosToIso(BigInt(times.earliest)),
      lastReceived: times.latest === null ? null : nanosToIso(BigInt(times.latest)),
      batches: batches.length,
      sealedThrough,
      keys: [...seenKeys],
      checkpoints,
      latestCheckpoint: bestLatest
        ? { size: bestLatest.size, rootHash: bestLatest.rootHash.toString("hex") }
        : null,
      notes: data.notes,
    },
  };
}

/** The index of the first record in `ordered` (ascending seqs) whose seq is at least `seq`. */
function firstAtOrAfter(ordered: readonly Rec[], seq: number): number {
  let lo = 0;
  let hi = ordered.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ordered[mid] as Rec).seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Where a batch's seqs fall in `ordered`, and how many of them are held. */
function batchSpan(ordered: readonly Rec[], b: BatchInfo) {
  const first = Number(b.firstSeq);
  const last = Number(b.lastSeq);
  const from = firstAtOrAfter(ordered, first);
  const held = firstAtOrAfter(ordered, last + 1) - from;
  return { first, last, from, held, absent: last - first + 1 - held };
}

/** The size a signed checkpoint note states, if it parses (its signature is checked later). */
function checkpointSize(note: string): number[] {
  try {
    return [parseCheckpointText(parseNote(note).text).size];
  } catch {
    return [];
  }
}

interface BatchInfo extends SignedManifestBatch {
  location: string;
}
type SignedManifestBatch = Extract<SignedManifest, { type: "batch" }>;

function checkManifests(
  data: ChainData,
  trusted: readonly PublicKey[],
  add: (c: FindingCategory, l: string, d: string, at?: { seq?: number; manifest?: number }) => void,
): { batches: BatchInfo[]; claimedThrough: number } {
  const batches: BatchInfo[] = [];
  // Highest seq any manifest claims, verified or not: records below it are not "inserted",
  // they are covered by a manifest whose own finding (unknown-key, bad-signature) says why
  // it does not count.
  let claimedThrough = -1;
  let expectedIndex = 0;
  let prevHash = genesisHash(data.chainId).toString("hex");
  // A link is judged only from a verified manifest: after a forged or untrusted one, the
  // next manifest's mismatch is a consequence, already reported.
  let prevVerified = true;
  for (const stored of data.manifests) {
    const problem = manifestProblem(stored.manifest);
    if (problem) {
      add("malformed", stored.location, `manifest: ${problem}`);
      continue;
    }
    const m = stored.manifest as SignedManifest;
    const index = Number(m.index);
    const at = { manifest: index };
    if (m.chainId !== data.chainId) {
      add(
        "malformed",
        stored.location,
        `manifest of chain ${m.chainId} stored with chain ${data.chainId}`,
        at,
      );
      continue;
    }
    let sig = checkManifestSignature(m, trusted);
    // Base64 decoders ignore padding and the unused low bits of the last character: only
    // the canonical spelling is the text that was signed and that the next manifest hashes.
    const respelled = sig === "valid" && !isCanonicalBase64(m.signature);
    if (respelled) sig = "invalid";
    if (sig === "unknown-key")
      add(
        "unknown-key",
        stored.location,
        `manifest ${index} is signed by ${m.keyId}, which is not a trusted key`,
        at,
      );
    if (sig === "invalid")
      add(
        "bad-signature",
        stored.location,
        respelled
          ? `manifest ${index}: the signature by ${m.keyId} is not in canonical base64 (its text was altered)`
          : `manifest ${index}: the signature by ${m.keyId} does not verify (altered or forged)`,
        at,
      );
    if (index < expectedIndex) {
      add(
        index === expectedIndex - 1 ? "duplicate" : "reordered",
        stored.location,
        `manifest ${index} appears after manifest ${expectedIndex - 1}`,
        at,
      );
      continue;
    }
    if (index > expectedIndex) {
      add(
        "missing",
        stored.location,
        `manifests ${range(expectedIndex, index - 1)} are absent before manifest ${index}`,
        { manifest: expectedIndex },
      );
    } else if (prevVerified && m.prevManifest !== prevHash) {
      add(
        "modified",
        stored.location,
        `manifest ${index} does not link to the manifest before it`,
        at,
      );
    }
    expectedIndex = index + 1;
    prevHash = manifestHash(canonicalize(m as unknown as JsonValue));
    prevVerified = sig === "valid";
    if (m.type === "batch") claimedThrough = Math.max(claimedThrough, Number(m.lastSeq));
    if (sig !== "valid") continue; // an unverified manifest commits to nothing
    if (m.type === "batch") batches.push({ ...m, location: stored.location });
  }
  return { batches, claimedThrough };
}

function isCanonicalBase64(text: string): boolean {
  return Buffer.from(text, "base64").toString("base64") === text;
}

function range(a: number, b: number): string {
  return a === b ? String(a) : `${a}..${b}`;
}

/** The earliest and latest of receive times (decimal nanoseconds) by value; others are ignored. */
class ReceiveTimes {
  earliest: string | null = null;
  latest: string | null = null;

  add(time: string): void {
    if (!/^\d+$/.test(time)) return;
    const t = time.replace(/^0+(?=\d)/, "");
    if (this.earliest === null || compareDigits(t, this.earliest) < 0) this.earliest = t;
    if (this.latest === null || compareDigits(t, this.latest) > 0) this.latest = t;
  }
}

/** Compares decimal digit strings without leading zeros by value. */
function compareDigits(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function nanosToIso(nanos: bigint): string {
  const date = new Date(Number(nanos / 1000000n));
  return Number.isNaN(date.getTime()) ? `${nanos} ns` : date.toISOString();
}

/** The origin line of a signed checkpoint note, or null when it is not one. */
export function originOf(note: string): string | null {
  const first = note.split("\n", 1)[0];
  return first ? first : null;
}

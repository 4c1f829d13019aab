import { hash } from "node:crypto";
import { Worker } from "node:worker_threads";

/**
 * Leaf hashes (docs/integrity-format.md §5.1) of many record lines, and tree roots (§5.4) over
 * them, computed on a second thread while the verifier checks the same lines and their links
 * on its own: on two cores that takes most of the hashing off the verifier's path. Each chunk
 * of lines is written once as UTF-8 into shared memory, each line after its 0x00 prefix, and
 * the worker hashes it there into a shared array of digests. Small inputs are hashed in line:
 * starting a worker costs more than it saves.
 *
 * The worker runs hashThread, hashLeaves and rootsBuilder (with its planPasses and
 * shareSubtrees) from their source text, WORKER_FUNCTIONS, so the same code runs from dist/
 * and from the TypeScript sources under test; those functions must use nothing from this
 * module's scope but each other.
 */

/** Below this many lines, hashing in line is faster than starting a worker. */
export const WORKER_THRESHOLD = 32_768;
/** Lines per chunk, the unit handed to the worker: small enough to stay in the CPU cache. */
const CHUNK = 256;
/** Chunks the worker may have waiting before this thread hashes the next one itself. */
const AHEAD = 4;
/**
 * Shared buffers the chunks are written into for the worker, one per chunk it may have
 * waiting. A chunk too large for one is hashed by this thread.
 */
const SLOTS = AHEAD;
const SLOT_BYTES = 4 << 20;

export interface LineHashes {
  /** The leaf hash of every line, 32 bytes each, in the order of the lines. */
  digests: Buffer;
  /** The roots of the ranges given to hashLines, 32 bytes each, in their order. */
  roots: Buffer;
}

/** SHA-256 of `data` as a binary string (one character per byte). */
type Sha256 = (data: Uint8Array) => string;
const sha256: Sha256 = (data) => hash("sha256", data, "binary");

/**
 * Calls `during(start, end)` for consecutive chunks of `lines` while their leaf hashes are
 * computed, and resolves once both are done. Along the way it computes the RFC 6962 tree
 * root of each of `ranges` [start, end) over the leaves in line order, each range taken as a
 * tree of its own (end > start); ranges that share a start share the work, so every
 * checkpoint, a range from 0, costs little more than its last leaves.
 *
 * With a worker, the worker computes the roots, and hashes each chunk unless it is behind:
 * then this thread hashes the chunk itself, so that both threads stay busy.
 */
export async function hashLines(
  lines: readonly { text: string }[],
  during: (start: number, end: number) => void,
  ranges: readonly (readonly [number, number])[],
  useWorker = lines.length >= WORKER_THRESHOLD,
): Promise<LineHashes> {
  const shared = new SharedArrayBuffer(32 * lines.length);
  const digests = Buffer.from(shared);
  const hashHere = hasherInLine(lines, digests);
  if (!useWorker) {
    for (let start = 0; start < lines.length; start += CHUNK) {
      const end = Math.min(lines.length, start + CHUNK);
      hashHere(start, end);
      during(start, end);
    }
    return { digests, roots: treeRoots(digests, ranges) };
  }
  const roots = await hashWithWorker(lines, during, ranges, shared, hashHere);
  return { digests, roots };
}

/**
 * Hashes the lines of one chunk, start..end, on this thread into `digests`: encoded into a
 * buffer kept from one chunk to the next, grown for a chunk that needs more.
 */
function hasherInLine(
  lines: readonly { text: string }[],
  digests: Buffer,
): (start: number, end: number) => void {
  let local = Buffer.alloc(SLOT_BYTES);
  const localEnds = new Float64Array(CHUNK);
  return (start, end) => {
    const most = encodedSize(lines, start, end);
    if (local.length < most) local = Buffer.alloc(most);
    encode(lines, start, end, local, localEnds);
    hashLeaves(local, localEnds.subarray(0, end - start), digests, start, sha256);
  };
}

/**
 * hashLines with a worker: each chunk is written to a free slot for the worker, or hashed
 * here by `hashHere` when the worker is AHEAD chunks behind (or the chunk is too large for a
 * slot); then `during` runs on it. Resolves to the roots of `ranges`, which the worker
 * computes and sends once every chunk is done.
 */
async function hashWithWorker(
  lines: readonly { text: string }[],
  during: (start: number, end: number) => void,
  ranges: readonly (readonly [number, number])[],
  digests: SharedArrayBuffer,
  hashHere: (start: number, end: number) => void,
): Promise<Buffer> {
  const chunks = Math.ceil(lines.length / CHUNK);
  const { worker, control, modes, slotEnds, slotBytes } = startHashThread(
    digests,
    ranges,
    lines.length,
  );
  try {
    const failed = new Promise<never>((_, reject) => {
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`leaf hash worker exited (${code})`)));
    });
    failed.catch(() => {}); // awaited below; it also rejects when the worker is ended
    const finished = new Promise<Uint8Array>((resolve) => worker.once("message", resolve));
    for (let chunk = 0; chunk < chunks; chunk++) {
      const start = chunk * CHUNK;
      const end = Math.min(lines.length, start + CHUNK);
      // With fewer than AHEAD chunks waiting, the slot of chunk − AHEAD is free again.
      const slot = chunk % SLOTS;
      if (
        chunk - Atomics.load(control, 0) >= AHEAD ||
        encodedSize(lines, start, end) > SLOT_BYTES
      ) {
        hashHere(start, end);
        modes[chunk] = 0;
      } else {
        const ends = slotEnds.subarray(slot * CHUNK, (slot + 1) * CHUNK);
        encode(lines, start, end, slotBytes[slot] as Buffer, ends);
        modes[chunk] = 1 + slot;
      }
      Atomics.store(control, 1, chunk + 1);
      Atomics.notify(control, 1);
      during(start, end);
    }
    // The worker sends the roots once it has done every chunk: all digests are written.
    const roots = await Promise.race([failed, finished]);
    return Buffer.from(roots.buffer, roots.byteOffset, roots.length);
  } finally {
    Atomics.store(control, 2, 1);
    Atomics.notify(control, 1);
    await worker.terminate();
  }
}

/**
 * The worker of hashWithWorker, started on hashThread, and the memory they share.
 *
 * The chunks are handed over in shared memory, not by messages: a message to a busy
 * thread waits for locks it holds. control: [0] chunks the worker has done, in order;
 * [1] chunks published to it; [2] set when this side gives up. modes[c]: 0 when this
 * thread hashed chunk c, else 1 + the slot it was written to, with its line ends at
 * slotEnds[slot × CHUNK…].
 */
function startHashThread(
  digests: SharedArrayBuffer,
  ranges: readonly (readonly [number, number])[],
  lines: number,
) {
  const chunks = Math.ceil(lines / CHUNK);
  const control = new Int32Array(new SharedArrayBuffer(12));
  const modes = new Int8Array(new SharedArrayBuffer(chunks));
  const slotEnds = new Float64Array(new SharedArrayBuffer(8 * SLOTS * CHUNK));
  const slots = Array.from({ length: SLOTS }, () => new SharedArrayBuffer(SLOT_BYTES));
  const slotBytes = slots.map((slot) => Buffer.from(slot));
  const code = WORKER_FUNCTIONS.map(String).join("\n");
  const worker = new Worker(`${code}\nhashThread();`, {
    eval: true,
    workerData: {
      digests,
      ranges: flat(ranges),
      lines,
      chunkLines: CHUNK,
      control: control.buffer,
      modes: modes.buffer,
      slotEnds: slotEnds.buffer,
      slots,
    },
  });
  return { worker, control, modes, slotEnds, slotBytes };
}

/** Tree roots over `leaves` (32 bytes each), as hashLines computes them, in line. */
export function treeRoots(leaves: Buffer, ranges: readonly (readonly [number, number])[]): Buffer {
  const roots = rootsBuilder(leaves, flat(ranges), sha256);
  roots.advance(leaves.length / 32);
  return roots.roots;
}

function flat(ranges: readonly (readonly [number, number])[]): Float64Array {
  return Float64Array.from(ranges.flat());
}

/** An upper bound of the bytes that encode writes for lines start..end. */
function encodedSize(lines: readonly { text: string }[], start: number, end: number): number {
  let most = 0;
  for (let i = start; i < end; i++) most += 1 + 3 * (lines[i] as { text: string }).text.length;
  return most;
}

/** Writes lines start..end as 0x00 ‖ UTF-8 bytes each, back to back, and where each ends. */
function encode(
  lines: readonly { text: string }[],
  start: number,
  end: number,
  bytes: Buffer,
  ends: Float64Array,
): void {
  let at = 0;
  for (let i = start; i < end; i++) {
    bytes[at] = 0x00;
    at += 1 + bytes.write((lines[i] as { text: string }).text, at + 1, "utf8");
    ends[i - start] = at;
  }
}

/** The functions the worker runs, from their source text (see above). */
const WORKER_FUNCTIONS = [hashLeaves, rootsBuilder, planPasses, shareSubtrees, hashThread];

/**
 * The worker: takes the chunks in order as they are published, hashes those written to its
 * slots into the shared digests, counts each chunk done (its own or one hashed by the main
 * thread), computes the roots as leaves are ready, and sends them when all are done.
 */
function hashThread(): void {
  const { parentPort, workerData } = process.getBuiltinModule("node:worker_threads");
  const { hash } = process.getBuiltinModule("node:crypto");
  const sha256 = (data: Uint8Array) => hash("sha256", data, "binary");
  const shared = workerData as {
    digests: SharedArrayBuffer;
    ranges: Float64Array;
    lines: number;
    chunkLines: number;
    control: SharedArrayBuffer;
    modes: SharedArrayBuffer;
    slotEnds: SharedArrayBuffer;
    slots: SharedArrayBuffer[];
  };
  const digests = Buffer.from(shared.digests);
  const control = new Int32Array(shared.control);
  const modes = new Int8Array(shared.modes);
  const slotEnds = new Float64Array(shared.slotEnds);
  const slots = shared.slots.map((slot) => Buffer.from(slot));
  const roots = rootsBuilder(digests, shared.ranges, sha256);
  const { lines, chunkLines } = shared;
  for (let chunk = 0; chunk * chunkLines < lines; chunk++) {
    while (Atomics.load(control, 1) <= chunk) {
      if (Atomics.load(control, 2) !== 0) return; // the main thread gave up
      Atomics.wait(control, 1, chunk, 100);
    }
    const first = chunk * chunkLines;
    const count = Math.min(chunkLines, lines - first);
    const mode = modes[chunk] as number;
    if (mode > 0) {
      const ends = slotEnds.subarray((mode - 1) * chunkLines, (mode - 1) * chunkLines + count);
      hashLeaves(slots[mode - 1] as Buffer, ends, digests, first, sha256);
    }
    Atomics.store(control, 0, chunk + 1);
    roots.advance(first + count);
  }
  roots.advance(lines);
  parentPort?.postMessage(roots.roots, [roots.roots.buffer as ArrayBuffer]);
}

/** Leaf hashes of encoded lines (each 0x00 ‖ UTF-8, ending at `ends`) into digests[first…]. */
function hashLeaves(
  bytes: Buffer,
  ends: Float64Array,
  digests: Buffer,
  first: number,
  sha256: (data: Uint8Array) => string,
): void {
  let start = 0;
  for (let i = 0; i < ends.length; i++) {
    const end = ends[i] as number;
    digests.write(sha256(bytes.subarray(start, end)), 32 * (first + i), 32, "latin1");
    start = end;
  }
}

/**
 * RFC 6962 MTH of each range [start, end) of the leaf hashes in `digests` (pairs in
 * `ranges`), into `roots`, 32 bytes per range, computed as `advance(upTo)` says leaves up to
 * there are ready. Ranges with the same start share one pass over their leaves: it keeps the
 * roots of the complete subtrees so far (at most one per size, like the bits of a binary
 * counter), and a range's root folds them from the right, as MTH splits at the largest
 * power of two.
 *
 * A pass from leaf 0 (the checkpoints' tree) makes every aligned complete subtree. Another
 * pass whose start is a multiple of 2^k takes those of size 2^k (up to 256 leaves) from it
 * instead of hashing them again: its own tree splits into the same subtrees. For batches of
 * 1000 records that is 7 node hashes in 8.
 */
function rootsBuilder(
  digests: Buffer,
  ranges: Float64Array,
  sha256: (data: Uint8Array) => string,
): { advance(upTo: number): void; roots: Buffer } {
  const count = ranges.length / 2;
  const roots = Buffer.from(new ArrayBuffer(32 * count));
  const input = Buffer.alloc(65, 0x01);
  const node = (left: string, right: string) => {
    input.write(left, 1, 32, "latin1");
    input.write(right, 33, 32, "latin1");
    return sha256(input);
  };
  const passes = planPasses(ranges);
  const { fromZero, zeroEnd, shared } = shareSubtrees(passes);
  let started = 0;
  const open: Pass[] = [];
  const advance = (upTo: number) => {
    while (started < passes.length && (passes[started] as Pass).start < upTo)
      open.push(passes[started++] as Pass);
    for (let j = 0; j < open.length; j++) {
      const pass = open[j] as Pass;
      const { subtrees, sizes, ends, unit } = pass;
      const last = ends[ends.length - 1] as number;
      while (pass.next < last) {
        let root: string;
        let size = unit;
        const reached = fromZero?.next ?? 0;
        if (
          unit > 1 &&
          (pass.next - pass.start) % unit === 0 &&
          pass.next + unit <= (ends[pass.done] as number) &&
          pass.next + unit <= zeroEnd
        ) {
          if (pass.next + unit > reached) break; // the pass from 0 gets there later
          root = (shared.get(unit) as Buffer).toString(
            "latin1",
            (32 * pass.next) / unit,
            (32 * pass.next) / unit + 32,
          );
        } else {
          if (pass.next >= upTo) break;
          root = digests.toString("latin1", 32 * pass.next, 32 * pass.next + 32);
          size = 1;
        }
        pass.next += size;
        while (sizes[sizes.length - 1] === size) {
          root = node(subtrees.pop() as string, root);
          sizes.pop();
          size *= 2;
          if (pass === fromZero)
            shared.get(size)?.write(root, (32 * (pass.next - size)) / size, 32, "latin1");
        }
        subtrees.push(root);
        sizes.push(size);
        while (ends[pass.done] === pass.next) {
          let folded = subtrees[subtrees.length - 1] as string;
          for (let i = subtrees.length - 2; i >= 0; i--)
            folded = node(subtrees[i] as string, folded);
          roots.write(folded, 32 * (pass.ranges[pass.done] as number), 32, "latin1");
          pass.done++;
        }
      }
      if (pass.done === ends.length) open.splice(j--, 1);
    }
  };
  return { advance, roots };
}

/** One pass of rootsBuilder: the ranges that share a start, and its progress over them. */
interface Pass {
  start: number;
  /** The first leaf it has not taken yet. */
  next: number;
  /** Ends of its ranges, ascending, with the index of each range. */
  ends: number[];
  ranges: number[];
  /** How many of its ranges have their root. */
  done: number;
  /** The roots of its complete subtrees so far, and their sizes (descending). */
  subtrees: string[];
  sizes: number[];
  /** The size of the subtrees it takes from the pass from 0 (1: none). */
  unit: number;
}

/** The passes of rootsBuilder: `ranges` (pairs) grouped by start, in ascending order. */
function planPasses(ranges: Float64Array): Pass[] {
  const count = ranges.length / 2;
  const passes: Pass[] = [];
  const order = Array.from({ length: count }, (_, k) => k).sort(
    (a, b) =>
      (ranges[2 * a] as number) - (ranges[2 * b] as number) ||
      (ranges[2 * a + 1] as number) - (ranges[2 * b + 1] as number),
  );
  for (const k of order) {
    const from = ranges[2 * k] as number;
    const to = ranges[2 * k + 1] as number;
    if (!(to > from)) throw new RangeError(`no tree for leaves ${from}..${to}`);
    let pass = passes[passes.length - 1];
    if (pass?.start !== from) {
      pass = {
        start: from,
        next: from,
        ends: [],
        ranges: [],
        done: 0,
        subtrees: [],
        sizes: [],
        unit: 1,
      };
      passes.push(pass);
    }
    pass.ends.push(to);
    pass.ranges.push(k);
  }
  return passes;
}

/**
 * Sets the unit of each pass not from 0, the largest aligned subtree (up to 256 leaves) it
 * can take from the pass from 0, and makes the buffers that pass keeps them in for the
 * others, one per unit, by index (subtree [i × unit, (i + 1) × unit) at 32 × i).
 */
function shareSubtrees(passes: Pass[]): {
  fromZero: Pass | null;
  /** The end of the pass from 0's last range (0: no such pass). */
  zeroEnd: number;
  shared: Map<number, Buffer>;
} {
  const fromZero = passes[0]?.start === 0 ? passes[0] : null;
  const zeroEnd = fromZero ? (fromZero.ends[fromZero.ends.length - 1] as number) : 0;
  /** Complete subtrees of the pass from 0 that other passes take, by size, in order. */
  const shared = new Map<number, Buffer>();
  for (const pass of passes) {
    if (pass.start === 0) continue;
    while (
      pass.unit < 256 &&
      pass.start % (2 * pass.unit) === 0 &&
      pass.start + 2 * pass.unit <= Math.min(zeroEnd, pass.ends[0] as number)
    )
      pass.unit *= 2;
    if (pass.unit > 1 && !shared.has(pass.unit))
      shared.set(pass.unit, Buffer.alloc(32 * Math.floor(zeroEnd / pass.unit)));
  }
  return { fromZero, zeroEnd, shared };
}

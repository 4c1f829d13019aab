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
 * The worker runs hashThread, hashLeaves and merkleRoots from their source text, so the same
 * code runs from dist/ and from the TypeScript sources under test; those functions must use
 * nothing from this module's scope.
 */

/** Below this many lines, hashing in line is faster than starting a worker. */
export const WORKER_THRESHOLD = 32_768;
/** Lines per chunk, the unit handed to the worker: small enough to stay in the CPU cache. */
const CHUNK = 256;

export interface LineHashes {
  /** The leaf hash of every line, 32 bytes each, in the order of the lines. */
  readonly digests: Buffer;
  /**
   * The RFC 6962 tree root (32 bytes each, in order) of each range [start, end) of these
   * leaves, taken as a tree of its own, with end > start. Ranges that share a start share
   * the work: every checkpoint is a range from 0.
   */
  roots(ranges: readonly (readonly [number, number])[]): Promise<Buffer>;
  /** Ends the worker, if there is one. */
  close(): Promise<void>;
}

/** SHA-256 of `data` as a binary string (one character per byte). */
type Sha256 = (data: Uint8Array) => string;
const sha256: Sha256 = (data) => hash("sha256", data, "binary");

/**
 * Calls `during(start, end)` for consecutive chunks of `lines` while their leaf hashes are
 * computed, and resolves once both are done.
 */
export async function hashLines(
  lines: readonly { text: string }[],
  during: (start: number, end: number) => void,
  useWorker = lines.length >= WORKER_THRESHOLD,
): Promise<LineHashes> {
  if (!useWorker) {
    const digests = Buffer.alloc(32 * lines.length);
    const encoder = new ChunkEncoder((size) => new ArrayBuffer(size));
    for (let start = 0; start < lines.length; start += CHUNK) {
      const end = Math.min(lines.length, start + CHUNK);
      const { buffer, ends } = encoder.encode(lines, start, end);
      hashLeaves(Buffer.from(buffer), ends, digests, start, sha256);
      encoder.release(buffer);
      during(start, end);
    }
    return {
      digests,
      roots: (ranges) => Promise.resolve(treeRoots(digests, ranges)),
      close: () => Promise.resolve(),
    };
  }

  const shared = new SharedArrayBuffer(32 * lines.length);
  const code = [hashLeaves, merkleRoots, hashThread].map(String).join("\n");
  const worker = new Worker(`${code}\nhashThread();`, { eval: true, workerData: shared });
  const replies = new Map<number, (reply: { roots?: Uint8Array }) => void>();
  const failed = new Promise<never>((_, reject) => {
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`leaf hash worker exited (${code})`)));
  });
  failed.catch(() => {}); // observed by whoever awaits a reply
  worker.on("message", (reply: { id: number; roots?: Uint8Array }) => {
    replies.get(reply.id)?.(reply);
    replies.delete(reply.id);
  });
  let nextId = 0;
  const ask = (message: object) => {
    const id = nextId++;
    const reply = new Promise<{ roots?: Uint8Array }>((resolve) => replies.set(id, resolve));
    worker.postMessage({ ...message, id });
    return Promise.race([failed, reply]);
  };
  try {
    const encoder = new ChunkEncoder((size) => new SharedArrayBuffer(size));
    const chunks: Promise<unknown>[] = [];
    for (let start = 0; start < lines.length; start += CHUNK) {
      const end = Math.min(lines.length, start + CHUNK);
      const { buffer, ends } = encoder.encode(lines, start, end);
      chunks.push(ask({ buffer, ends, first: start }).then(() => encoder.release(buffer)));
      during(start, end);
      // Let the worker's replies in, so their buffers are reused rather than reallocated.
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(chunks);
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  let closed: Promise<number> | null = null;
  return {
    digests: Buffer.from(shared),
    roots: async (ranges) => {
      const { roots } = (await ask({ ranges: flat(ranges) })) as { roots: Uint8Array };
      return Buffer.from(roots.buffer, roots.byteOffset, roots.length);
    },
    close: async () => {
      closed ??= worker.terminate();
      await closed;
    },
  };
}

/** Tree roots over `leaves` (32 bytes each) as LineHashes.roots gives them, in line. */
export function treeRoots(leaves: Buffer, ranges: readonly (readonly [number, number])[]): Buffer {
  return merkleRoots(leaves, flat(ranges), sha256);
}

function flat(ranges: readonly (readonly [number, number])[]): Float64Array {
  return Float64Array.from(ranges.flat());
}

/** Writes chunks of lines as 0x00 ‖ UTF-8 bytes each, back to back, into reused buffers. */
class ChunkEncoder<B extends ArrayBufferLike> {
  private free: B[] = [];
  constructor(private readonly allocate: (size: number) => B) {}

  encode(lines: readonly { text: string }[], start: number, end: number) {
    let most = 0;
    for (let i = start; i < end; i++) most += 1 + 3 * (lines[i] as { text: string }).text.length;
    const index = this.free.findIndex((b) => b.byteLength >= most);
    const buffer = index >= 0 ? (this.free.splice(index, 1)[0] as B) : this.allocate(most);
    const bytes = Buffer.from(buffer);
    const ends = new Float64Array(end - start);
    let at = 0;
    for (let i = start; i < end; i++) {
      bytes[at] = 0x00;
      at += 1 + bytes.write((lines[i] as { text: string }).text, at + 1, "utf8");
      ends[i - start] = at;
    }
    return { buffer, ends };
  }

  release(buffer: B): void {
    this.free.push(buffer);
  }
}

/** The worker: hashes chunks of lines into the shared digests, and computes roots on request. */
function hashThread(): void {
  const { parentPort, workerData } = process.getBuiltinModule("node:worker_threads");
  const { hash } = process.getBuiltinModule("node:crypto");
  const sha256 = (data: Uint8Array) => hash("sha256", data, "binary");
  const digests = Buffer.from(workerData as SharedArrayBuffer);
  type Request =
    | { id: number; buffer: SharedArrayBuffer; ends: Float64Array; first: number }
    | { id: number; ranges: Float64Array };
  parentPort?.on("message", (request: Request) => {
    if ("ranges" in request) {
      const roots = merkleRoots(digests, request.ranges, sha256);
      parentPort.postMessage({ id: request.id, roots }, [roots.buffer as ArrayBuffer]);
      return;
    }
    hashLeaves(Buffer.from(request.buffer), request.ends, digests, request.first, sha256);
    parentPort.postMessage({ id: request.id });
  });
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
 * `ranges`), 32 bytes per range. Ranges with the same start share one pass over their leaves:
 * it keeps the roots of the complete subtrees so far (at most one per size, like the bits of
 * a binary counter), and a range's root folds them from the right, as MTH splits at the
 * largest power of two.
 */
function merkleRoots(
  digests: Buffer,
  ranges: Float64Array,
  sha256: (data: Uint8Array) => string,
): Buffer {
  const count = ranges.length / 2;
  const out = Buffer.from(new ArrayBuffer(32 * count));
  const input = Buffer.alloc(65, 0x01);
  const node = (left: string, right: string) => {
    input.write(left, 1, 32, "latin1");
    input.write(right, 33, 32, "latin1");
    return sha256(input);
  };
  const order = Array.from({ length: count }, (_, k) => k).sort(
    (a, b) =>
      (ranges[2 * a] as number) - (ranges[2 * b] as number) ||
      (ranges[2 * a + 1] as number) - (ranges[2 * b + 1] as number),
  );
  let start = -1;
  let next = 0;
  const subtrees: string[] = [];
  const sizes: number[] = [];
  for (const k of order) {
    const from = ranges[2 * k] as number;
    const to = ranges[2 * k + 1] as number;
    if (!(to > from)) throw new RangeError(`no tree for leaves ${from}..${to}`);
    if (from !== start) {
      start = from;
      next = from;
      subtrees.length = 0;
      sizes.length = 0;
    }
    for (; next < to; next++) {
      let root = digests.toString("latin1", 32 * next, 32 * next + 32);
      let size = 1;
      while (sizes[sizes.length - 1] === size) {
        root = node(subtrees.pop() as string, root);
        sizes.pop();
        size *= 2;
      }
      subtrees.push(root);
      sizes.push(size);
    }
    let root = subtrees[subtrees.length - 1] as string;
    for (let j = subtrees.length - 2; j >= 0; j--) root = node(subtrees[j] as string, root);
    out.write(root, 32 * k, 32, "latin1");
  }
  return out;
}

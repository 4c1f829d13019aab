import { Worker } from "node:worker_threads";
import { leafHashHex } from "../chain/format.js";

/**
 * Leaf hashes (docs/integrity-format.md §5.1) of many record lines, computed on a second
 * thread while the verifier checks the same lines on its own: per record the two cost about
 * the same, so on two cores this nearly halves them. Each chunk of lines is written once as
 * UTF-8, each line after its 0x00 prefix, into shared memory, and the worker hashes it there.
 * Small inputs are hashed in line: starting a worker costs more than it saves.
 */

/** Lines per chunk: the unit of work handed to the worker. */
const CHUNK = 4096;
/** Below this many lines, hashing in line is faster than starting a worker. */
export const WORKER_THRESHOLD = 32_768;

/**
 * Calls `during(start, end)` for consecutive chunks of `lines` while their leaf hashes are
 * computed, and returns those hashes (hex, in order) once both are done.
 */
export async function leafHashesAlongside(
  lines: readonly { text: string }[],
  during: (start: number, end: number) => void,
  useWorker = lines.length >= WORKER_THRESHOLD,
): Promise<string[]> {
  if (!useWorker) {
    const hashes = lines.map((l) => leafHashHex(l.text));
    for (let start = 0; start < lines.length; start += CHUNK)
      during(start, Math.min(lines.length, start + CHUNK));
    return hashes;
  }
  const worker = new Worker(`(${hashThread.toString()})()`, { eval: true });
  try {
    const results = new Map<number, (digests: Uint8Array) => void>();
    const failed = new Promise<never>((_, reject) => {
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`leaf hash worker exited (${code})`)));
    });
    failed.catch(() => {}); // observed below, by whoever awaits a chunk
    worker.on("message", ({ id, digests }: { id: number; digests: Uint8Array }) =>
      results.get(id)?.(digests),
    );
    const chunks: Promise<Uint8Array>[] = [];
    for (let start = 0; start < lines.length; start += CHUNK) {
      const end = Math.min(lines.length, start + CHUNK);
      const id = chunks.length;
      chunks.push(
        Promise.race([failed, new Promise<Uint8Array>((resolve) => results.set(id, resolve))]),
      );
      const { shared, ends } = encodeChunk(lines, start, end);
      worker.postMessage({ id, shared, ends });
      during(start, end);
    }
    const hashes: string[] = new Array<string>(lines.length);
    let i = 0;
    for (const chunk of chunks) {
      const digests = Buffer.from((await chunk).buffer);
      for (let at = 0; at < digests.length; at += 32)
        hashes[i++] = digests.toString("hex", at, at + 32);
    }
    return hashes;
  } finally {
    await worker.terminate();
  }
}

/** The lines start..end as 0x00 ‖ UTF-8 bytes each, back to back; `ends` marks each end. */
function encodeChunk(lines: readonly { text: string }[], start: number, end: number) {
  let most = 0;
  for (let i = start; i < end; i++) most += 1 + 3 * (lines[i] as { text: string }).text.length;
  // Zero-filled, so every prefix byte is already 0x00; pages beyond what is written are
  // never touched.
  const shared = new SharedArrayBuffer(most);
  const bytes = Buffer.from(shared);
  const ends = new Float64Array(end - start);
  let at = 0;
  for (let i = start; i < end; i++) {
    at += 1 + bytes.write((lines[i] as { text: string }).text, at + 1, "utf8");
    ends[i - start] = at;
  }
  return { shared, ends };
}

/**
 * The worker's code, run from its source text (so the same code runs from dist/ and from the
 * TypeScript sources under test): it must not use anything from this module.
 */
function hashThread(): void {
  const { parentPort } = process.getBuiltinModule("node:worker_threads");
  const { hash } = process.getBuiltinModule("node:crypto");
  parentPort?.on(
    "message",
    ({ id, shared, ends }: { id: number; shared: SharedArrayBuffer; ends: Float64Array }) => {
      const bytes = new Uint8Array(shared);
      const digests = new Uint8Array(32 * ends.length);
      let start = 0;
      for (let i = 0; i < ends.length; i++) {
        const end = ends[i] as number;
        digests.set(hash("sha256", bytes.subarray(start, end), "buffer") as Buffer, 32 * i);
        start = end;
      }
      parentPort.postMessage({ id, digests }, [digests.buffer]);
    },
  );
}

import { Worker } from "node:worker_threads";
import { builtModule } from "../common/package-root.js";
import type { RecordBytes } from "../exporters/source.js";
import { type CheckedLines, checkLineBytes } from "./line-check.js";

/**
 * Where pages of record lines are checked and hashed (line-check.ts): on this thread, or on
 * `threads` worker threads, pages dealt to them in turn. Checking is most of a verification's
 * work and needs nothing but the page, so the thread that judges the chain (record-window.ts,
 * the trees) keeps pace with one checker per spare core.
 */
export class LineCheckers {
  private readonly workers: Worker[] = [];
  /** The threads that have loaded their code and answered: only those are dealt pages. */
  private readonly ready = new Set<Worker>();
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 0;
  private failure: Error | null = null;

  constructor(readonly threads = 0) {}

  /** Pages worth checking at once: one per thread being checked and one more being read. */
  get depth(): number {
    return this.threads === 0 ? 1 : 2 * this.threads + 1;
  }

  /** Checks a page; on a thread, `bytes` is moved there (it is unusable here afterwards). */
  check(bytes: Uint8Array, chainId: string): Promise<CheckedLines> {
    if (this.threads === 0) return Promise.resolve(checkLineBytes(bytes, chainId));
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const worker = this.worker(id % this.threads);
    // A page's buffer is the page's (RecordBytes): moved, not copied. A small one may be a
    // slice of Node's shared pool, which must stay here: that one is copied.
    const page = bytes.buffer.byteLength > POOLED_BELOW ? bytes : new Uint8Array(bytes);
    const done = new Promise<CheckedLines>((resolve, reject) =>
      this.waiting.set(id, { resolve, reject }),
    );
    worker.postMessage({ id, bytes: page, chainId }, [page.buffer as ArrayBuffer]);
    return done;
  }

  /**
   * Starts the threads without waiting for them. Until one has loaded its code, pages are
   * checked on the calling thread (dispatch): a run with little to read never waits for a
   * thread to start.
   */
  prewarm(): void {
    for (let i = 0; i < this.threads; i++) this.worker(i);
  }

  /** Whether a thread is ready for a page (prewarm). */
  get anyReady(): boolean {
    return this.ready.size > 0;
  }

  /** A page sent to a thread, as an AheadPage (stream-chain.ts) that says when it is back. */
  dispatch(page: RecordBytes, chainId: string): AheadPage {
    const ahead: AheadPage = {
      result: this.check(page.bytes, chainId),
      locate: page.locate,
      settled: false,
    };
    ahead.result.then(
      () => (ahead.settled = true),
      () => (ahead.settled = true), // thrown where it is awaited, in turn
    );
    return ahead;
  }

  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private worker(i: number): Worker {
    const existing = this.workers[i];
    if (existing) return existing;
    const worker = new Worker(builtModule(new URL("./line-check-worker.js", import.meta.url)), {
      resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 4 },
    });
    worker.unref();
    worker.on("message", (m: { id: number; result: CheckedLines } | "ready") => {
      if (m === "ready") {
        this.ready.add(worker);
        return;
      }
      const waiter = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      const r = m.result;
      // Structured cloning hands a Buffer over as a plain Uint8Array.
      r.hashes = Buffer.from(r.hashes.buffer, r.hashes.byteOffset, r.hashes.byteLength);
      waiter?.resolve(r);
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => {
      if (code !== 0) fail(new Error(`a line-checking thread stopped (exit code ${code})`));
    });
    this.workers[i] = worker;
    return worker;
  }
}

/** Buffers this small may be slices of Node's Buffer pool (Buffer.poolSize, 8 KiB). */
const POOLED_BELOW = 64 * 1024;

/** A page checked, or being checked, ahead of judging. */
export interface AheadPage {
  result: Promise<CheckedLines>;
  locate: (i: number) => string;
  /** Whether `result` is in. */
  settled: boolean;
}

interface Waiter {
  resolve(r: CheckedLines): void;
  reject(err: Error): void;
}

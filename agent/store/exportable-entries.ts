/**
 * Which sealed entries exporters may ship. Every entry, unless witnessing holds the newest
 * back while witnesses cosign its checkpoint (hold): then those released so far, so a batch
 * reaches the backends with the cosignatures its checkpoint got within the wait. Entries
 * are released in order; shutdown releases all.
 */
export class ExportableEntries {
  /** Entries released while held; null: no hold. */
  private released: number | null = null;

  constructor(
    private readonly entries: () => number,
    /** Resolves at the sealed log's next wake (an append, a release). */
    private readonly nextWake: () => Promise<void>,
    private readonly wake: () => void,
  ) {}

  /** How many entries, from entry 0, exporters may ship. */
  get count(): number {
    return this.released ?? this.entries();
  }

  /** From now on new entries wait for release() before exporters see them. */
  hold(): void {
    this.released ??= this.entries();
  }

  /** Lets exporters ship the first `count` entries (at least those already released). */
  release(count: number): void {
    if (this.released === null) return;
    this.released = Math.min(Math.max(this.released, count), this.entries());
    this.wake();
  }

  /** Ends the hold: every entry, now and later, is exportable (shutdown). */
  releaseAll(): void {
    this.released = null;
    this.wake();
  }

  /** Resolves once an entry after `index` is exportable, or at the next wake. */
  waitAfter(index: number): Promise<void> {
    if (this.count - 1 > index) return Promise.resolve();
    return this.nextWake();
  }
}

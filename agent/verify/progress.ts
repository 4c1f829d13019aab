/**
 * The progress line `audit-agent verify` keeps on a terminal while it reads: records read so
 * far, the rate, and the chain being read, rewritten in place at most every `intervalMs` and
 * cleared when done. It is for a person watching; the CLI makes one only when stderr is a
 * TTY and `--quiet` is not given, so logs and monitors never see it.
 */

/** Where the line is drawn: a TTY stream (process.stderr), or a test's stand-in. */
export interface ProgressStream {
  write(text: string): unknown;
  /** Terminal width; the line is cut to fit. */
  columns?: number;
}

const CLEAR = "\r\u001b[2K";

export class ProgressLine {
  private readonly started: number;
  private lastDrawn = Number.NEGATIVE_INFINITY;
  private drawn = false;
  private source = "";
  private chainId = "";
  /** Records of the chains finished before the current one. */
  private before = 0;
  private current = 0;

  constructor(
    private readonly stream: ProgressStream,
    private readonly now: () => number = Date.now,
    private readonly intervalMs = 200,
  ) {
    this.started = now();
  }

  /** A new source is being read. */
  startSource(description: string): void {
    this.before += this.current;
    this.current = 0;
    this.chainId = "";
    this.source = description;
  }

  /** `records` of chain `chainId` read so far (a running count per chain). */
  records(chainId: string, records: number): void {
    if (chainId !== this.chainId) {
      this.before += this.current;
      this.chainId = chainId;
    }
    this.current = records;
    const now = this.now();
    if (now - this.lastDrawn < this.intervalMs) return;
    this.lastDrawn = now;
    this.draw(now);
  }

  /** Clears the line, if one was drawn. */
  done(): void {
    if (this.drawn) this.stream.write(CLEAR);
    this.drawn = false;
  }

  private draw(now: number): void {
    const total = this.before + this.current;
    const seconds = Math.max((now - this.started) / 1000, 0.001);
    const rate = Math.round(total / seconds);
    const text = `verifying ${this.source}: ${count(total)} records read (${count(rate)}/s), chain ${this.chainId}`;
    const width = (this.stream.columns ?? 80) - 1;
    this.stream.write(`${CLEAR}${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
    this.drawn = true;
  }
}

function count(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

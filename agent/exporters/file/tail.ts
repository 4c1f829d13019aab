import { open, stat } from "node:fs/promises";

/**
 * Finds the last complete line of an append-only file, cutting a torn final line (the
 * writer died mid-write, before the write counted) so the next append starts clean.
 */
const NEWLINE = 0x0a;
const TAIL_CHUNK = 1 << 20;

export interface Tail {
  lastLine: string | null;
  /** Bytes cut from a torn final line (0 when the file ended cleanly). */
  cut: number;
}

export async function recoverTail(path: string): Promise<Tail> {
  const size = (await stat(path)).size;
  if (size === 0) return { lastLine: null, cut: 0 };
  const fh = await open(path, "r+");
  try {
    let end = size;
    let tail = Buffer.alloc(0);
    let lastNewline = -1;
    let lineStart = -1;
    // Read backwards until the last complete line (between two newlines) is in `tail`.
    while (end > 0 && lineStart < 0) {
      const start = Math.max(0, end - TAIL_CHUNK);
      const chunk = Buffer.allocUnsafe(end - start);
      await fh.read(chunk, 0, chunk.length, start);
      tail = Buffer.concat([chunk, tail]);
      if (lastNewline < 0) {
        const i = tail.lastIndexOf(NEWLINE);
        if (i >= 0) lastNewline = start + i;
      }
      if (lastNewline >= 0) {
        // A negative fromIndex would make lastIndexOf search from the end again.
        const from = lastNewline - start - 1;
        const j = from >= 0 ? tail.lastIndexOf(NEWLINE, from) : -1;
        if (j >= 0) lineStart = start + j + 1;
        else if (start === 0) lineStart = 0;
      }
      end = start;
    }
    const cut = size - (lastNewline + 1);
    if (cut > 0) {
      await fh.truncate(lastNewline + 1);
      await fh.sync();
    }
    if (lastNewline < 0) return { lastLine: null, cut };
    const tailStart = size - tail.length;
    return {
      lastLine: tail.subarray(lineStart - tailStart, lastNewline - tailStart).toString("utf8"),
      cut,
    };
  } finally {
    await fh.close();
  }
}

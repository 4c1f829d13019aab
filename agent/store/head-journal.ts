import { existsSync, readFileSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";

/**
 * How far the chain was acknowledged, kept outside LevelDB's own files: a small file in the
 * WAL directory (AUDIT-HEAD) holding the chain id and the seq and hash of a durable head,
 * rewritten in place and synced after group commits (coalesced: one write in flight, the
 * newest head next). It trails the real head by at most the writes in flight, and is never
 * ahead of it. A WAL whose LevelDB files lost records (a deleted or damaged .log, deleted
 * tables) opens with a head below it: the agent refuses to start and names the lost range
 * instead of reusing those seq numbers (wal.ts).
 */
export interface JournaledHead {
  chainId: string;
  seq: number;
  hash: string;
}

export const JOURNAL_FILE = "AUDIT-HEAD";
/** The file is this long, always: one block, rewritten in place. */
const SIZE = 256;

/** The head journaled in `directory`, or null when there is none (a new or older WAL). */
export function readJournal(directory: string): JournaledHead | null {
  const path = join(directory, JOURNAL_FILE);
  if (!existsSync(path)) return null;
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8").trim()) as Partial<JournaledHead>;
    if (
      typeof parsed.chainId === "string" &&
      typeof parsed.seq === "number" &&
      typeof parsed.hash === "string"
    )
      return { chainId: parsed.chainId, seq: parsed.seq, hash: parsed.hash };
  } catch {
    // A torn or damaged journal proves nothing: treated as absent.
  }
  return null;
}

export class HeadJournal {
  private next: JournaledHead | null = null;
  private writing: Promise<void> | null = null;

  private constructor(private readonly file: FileHandle) {}

  static async open(directory: string): Promise<HeadJournal> {
    const path = join(directory, JOURNAL_FILE);
    // Not "a": appending ignores the position, and the head is rewritten in place.
    return new HeadJournal(await open(path, existsSync(path) ? "r+" : "w+", 0o600));
  }

  /** A head that is durable: written soon, after the one being written. */
  record(head: JournaledHead): void {
    this.next = head;
    this.writing ??= this.drain().finally(() => {
      this.writing = null;
    });
  }

  private async drain(): Promise<void> {
    while (this.next !== null) {
      const head = this.next;
      this.next = null;
      const text = JSON.stringify(head);
      const buf = Buffer.alloc(SIZE, 0x20);
      buf.write(text, 0, "utf8");
      buf[SIZE - 1] = 0x0a;
      try {
        await this.file.truncate(SIZE);
        await this.file.write(buf, 0, SIZE, 0);
        await this.file.datasync();
      } catch {
        // A failing disk fails the WAL's own writes too, and says so there.
      }
    }
  }

  async close(): Promise<void> {
    while (this.writing) await this.writing;
    await this.file.close();
  }
}

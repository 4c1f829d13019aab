import { existsSync, readFileSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { join, resolve } from "node:path";

/**
 * How far the chain was acknowledged, kept outside LevelDB's own files, in two places:
 *
 * - AUDIT-HEAD, a small file in the WAL directory holding the chain id and the seq and hash
 *   of a durable head, rewritten in place and synced after group commits (coalesced: one
 *   write in flight, the newest head next). It trails the real head by at most the writes in
 *   flight, and is never ahead of it. A WAL whose LevelDB files lost records (a deleted or
 *   damaged .log, deleted tables) opens with a head below it.
 * - The anchor, the same content in `<directory>.anchor` beside the WAL directory, rewritten
 *   at most once a second (and at close). It survives what AUDIT-HEAD cannot: the whole WAL
 *   directory deleted, or replaced by an empty or another one.
 *
 * Either one ahead of the WAL's head makes the agent refuse to start and name the lost range
 * instead of reusing those seq numbers (wal.ts). Only `audit-agent wal new-chain` moves past
 * such a loss, and it declares the loss in the new chain's first entry.
 */
export interface JournaledHead {
  chainId: string;
  seq: number;
  hash: string;
}

/** A journaled head and the file that holds it, as error messages name it. */
export interface AcknowledgedHead extends JournaledHead {
  file: string;
}

export const JOURNAL_FILE = "AUDIT-HEAD";
/** The file is this long, always: one block, rewritten in place. */
const SIZE = 256;
/** How often the anchor is rewritten at most: it is a second line of defence, not the first. */
const ANCHOR_INTERVAL_MS = 1000;

/** The anchor file of a WAL directory: beside it, so that deleting the directory spares it. */
export function anchorPath(directory: string): string {
  return `${resolve(directory)}.anchor`;
}

/** The head journaled in `directory`, or null when there is none (a new or older WAL). */
export function readJournal(directory: string): JournaledHead | null {
  return readHeadFile(join(directory, JOURNAL_FILE));
}

/**
 * How far the chain at `directory` was acknowledged, by AUDIT-HEAD or the anchor, whichever
 * says more: the anchor when it names another chain (the directory was replaced), else the
 * higher head. Null when neither exists.
 */
export function acknowledgedHead(directory: string): AcknowledgedHead | null {
  const journal = readJournal(directory);
  const anchor = readHeadFile(anchorPath(directory));
  const inJournal = journal && { ...journal, file: join(directory, JOURNAL_FILE) };
  const inAnchor = anchor && { ...anchor, file: anchorPath(directory) };
  if (!inAnchor) return inJournal;
  if (!inJournal || inJournal.chainId !== inAnchor.chainId || inAnchor.seq > inJournal.seq)
    return inAnchor;
  return inJournal;
}

function readHeadFile(path: string): JournaledHead | null {
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

/** Opens (or creates) a head file for rewriting in place, owner-only. */
async function openHeadFile(path: string): Promise<FileHandle> {
  // Not "a": appending ignores the position, and the head is rewritten in place.
  return open(path, existsSync(path) ? "r+" : "w+", 0o600);
}

/**
 * Rewrites a head file in place and syncs it: one write of the whole SIZE-byte block (it
 * fits one disk sector, so a crash leaves the old block or the new one), no truncate, as
 * the file never has any other length.
 */
async function writeHeadFile(file: FileHandle, head: JournaledHead): Promise<void> {
  const buf = Buffer.alloc(SIZE, 0x20);
  buf.write(JSON.stringify(head), 0, "utf8");
  buf[SIZE - 1] = 0x0a;
  await file.write(buf, 0, SIZE, 0);
  await file.datasync();
}

/** Writes `head` as the acknowledged head of `directory`, in both files, now (wal new-chain). */
export async function writeAcknowledgedHead(directory: string, head: JournaledHead): Promise<void> {
  for (const path of [join(directory, JOURNAL_FILE), anchorPath(directory)]) {
    const file = await openHeadFile(path);
    try {
      await writeHeadFile(file, head);
    } finally {
      await file.close();
    }
  }
}

export class HeadJournal {
  private next: JournaledHead | null = null;
  private writing: Promise<void> | null = null;
  private anchorDue: JournaledHead | null = null;
  private anchoredAt = 0;
  private anchorTimer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly file: FileHandle,
    private readonly anchor: FileHandle | null,
    /** Why the anchor could not be opened (a read-only parent directory), or null. */
    readonly anchorProblem: string | null,
  ) {}

  static async open(directory: string): Promise<HeadJournal> {
    const file = await openHeadFile(join(directory, JOURNAL_FILE));
    try {
      return new HeadJournal(file, await openHeadFile(anchorPath(directory)), null);
    } catch (err) {
      const problem = `${anchorPath(directory)}: ${(err as Error).message}`;
      return new HeadJournal(file, null, problem);
    }
  }

  /** A head that is durable: written soon, after the one being written. */
  record(head: JournaledHead): void {
    this.next = head;
    this.kick();
  }

  private kick(): void {
    this.writing ??= this.drain().finally(() => {
      this.writing = null;
      // A head recorded while the drain was finishing.
      if (this.next !== null) this.kick();
    });
  }

  private async drain(): Promise<void> {
    for (;;) {
      const head = this.next;
      if (head !== null) {
        this.next = null;
        try {
          await writeHeadFile(this.file, head);
        } catch {
          // A failing disk fails the WAL's own writes too, and says so there.
        }
        this.anchorDue = head;
      }
      if (Date.now() - this.anchoredAt >= ANCHOR_INTERVAL_MS) await this.writeAnchor();
      if (this.next === null) break;
    }
    // The newest head reaches the anchor within the interval even if nothing follows it.
    if (this.anchorDue && this.anchor && !this.anchorTimer) {
      const wait = Math.max(0, this.anchoredAt + ANCHOR_INTERVAL_MS - Date.now());
      this.anchorTimer = setTimeout(() => {
        this.anchorTimer = null;
        this.kick();
      }, wait).unref();
    }
  }

  private async writeAnchor(): Promise<void> {
    const head = this.anchorDue;
    if (!this.anchor || !head) return;
    this.anchorDue = null;
    this.anchoredAt = Date.now();
    try {
      await writeHeadFile(this.anchor, head);
    } catch {
      // As above: the WAL's own writes report a failing disk.
    }
  }

  async close(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.anchorTimer) clearTimeout(this.anchorTimer);
    await this.writeAnchor();
    await this.file.close();
    await this.anchor?.close();
  }
}

import { constants, type FileHandle, mkdir, open, stat } from "node:fs/promises";
import { join } from "node:path";
import { CANONICAL_OFFSET } from "../../buffer/keys.js";
import type { StoredRecord } from "../../buffer/wal.js";
import type { Logger } from "../../telemetry/logger.js";
import { PermanentExportError, type RecordSink, RetryableExportError } from "../sink.js";
import type { FileExporterConfig } from "./config.js";
import { listSegments, segmentName } from "./segments.js";

/**
 * The file exporter's backend: `<directory>/<chainId>/records-<firstSeq>.ndjson`, each
 * line exactly one record's canonical text. Appended and fsync'd before the cursor moves.
 *
 * At open, the end of the newest segment is inspected: a torn last line (the agent died
 * mid-write, before the write was acknowledged to the cursor) is cut off, and the seq of
 * the last complete line is reported so delivery resumes after it instead of writing it
 * twice. Readers still tolerate an identical repeated line (docs/integrity-format.md §6).
 */

const NEWLINE = 0x0a;
const TAIL_CHUNK = 1 << 20;

export class FileSink implements RecordSink {
  private chainDir = "";
  private chainId = "";
  private handle: FileHandle | null = null;
  private segmentBytes = 0;
  private readonly maxSegmentBytes: number;

  constructor(
    private readonly config: FileExporterConfig,
    private readonly logger: Logger,
  ) {
    this.maxSegmentBytes = Math.floor(config.rotation.max_megabytes * 1024 * 1024);
  }

  async open(chainId: string): Promise<number | null> {
    this.chainId = chainId;
    this.chainDir = join(this.config.directory, chainId);
    try {
      await mkdir(this.chainDir, { recursive: true });
    } catch (err) {
      throw new RetryableExportError(
        `cannot create output directory ${this.chainDir}: ${(err as Error).message}`,
        undefined,
        { cause: err },
      );
    }
    const segments = await listSegments(this.chainDir);
    for (let i = segments.length - 1; i >= 0; i--) {
      const lastSeq = await this.recoverTail(segments[i] as string);
      if (lastSeq !== null) {
        await this.openSegment(segments[segments.length - 1] as string);
        return lastSeq;
      }
    }
    return null;
  }

  async write(records: readonly StoredRecord[]): Promise<void> {
    if (records.length === 0) return;
    let size = 0;
    for (const r of records) size += r.value.length - CANONICAL_OFFSET + 1;
    const buf = Buffer.allocUnsafe(size);
    let at = 0;
    for (const r of records) {
      at += r.value.copy(buf, at, CANONICAL_OFFSET);
      buf[at++] = NEWLINE;
    }
    try {
      if (this.handle === null || this.segmentBytes >= this.maxSegmentBytes) {
        await this.rotate((records[0] as StoredRecord).seq);
      }
      const handle = this.handle as FileHandle;
      let written = 0;
      while (written < size) {
        const { bytesWritten } = await handle.write(buf, written, size - written);
        written += bytesWritten;
      }
      await handle.datasync();
      this.segmentBytes += size;
    } catch (err) {
      // A partial write leaves a torn line only at the very end; reopening cuts it off.
      await this.closeHandle();
      await this.open(this.chainId).catch(() => undefined);
      throw new RetryableExportError(
        `cannot write to ${this.chainDir}: ${(err as Error).message}`,
        undefined,
        { cause: err },
      );
    }
  }

  async close(): Promise<void> {
    await this.closeHandle();
  }

  private async closeHandle(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h) await h.close().catch(() => undefined);
  }

  private async rotate(firstSeq: number): Promise<void> {
    await this.closeHandle();
    await this.openSegment(join(this.chainDir, segmentName(firstSeq)));
    // Make the new file's directory entry durable too, not just its contents.
    const dir = await open(this.chainDir, constants.O_RDONLY);
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  private async openSegment(path: string): Promise<void> {
    this.handle = await open(path, "a");
    this.segmentBytes = (await this.handle.stat()).size;
  }

  /**
   * Cuts a torn final line from `path` and returns the seq of its last complete line, or
   * null if the segment holds no complete line.
   */
  private async recoverTail(path: string): Promise<number | null> {
    const size = (await stat(path)).size;
    if (size === 0) return null;
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
        const base = start;
        if (lastNewline < 0) {
          const i = tail.lastIndexOf(NEWLINE);
          if (i >= 0) lastNewline = base + i;
        }
        if (lastNewline >= 0) {
          // A negative fromIndex would make lastIndexOf search from the end again.
          const from = lastNewline - base - 1;
          const j = from >= 0 ? tail.lastIndexOf(NEWLINE, from) : -1;
          if (j >= 0) lineStart = base + j + 1;
          else if (start === 0) lineStart = 0;
        }
        end = start;
      }
      const tailStart = size - tail.length;
      if (lastNewline < size - 1) {
        const keep = lastNewline + 1;
        this.logger.warn(
          { segment: path, bytes: size - keep },
          "cutting a torn final line left by an interrupted write",
        );
        await fh.truncate(keep);
        await fh.sync();
      }
      if (lastNewline < 0) return null;
      const line = tail.subarray(lineStart - tailStart, lastNewline - tailStart).toString("utf8");
      try {
        const seq = (JSON.parse(line) as { seq?: unknown }).seq;
        if (typeof seq !== "string" || !/^\d+$/.test(seq)) throw new Error("no seq");
        return Number(seq);
      } catch {
        throw new PermanentExportError(
          `the last line of ${path} is not a chained record; the output directory was modified outside the agent`,
        );
      }
    } finally {
      await fh.close();
    }
  }
}

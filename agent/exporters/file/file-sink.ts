import { chmod, constants, type FileHandle, mkdir, open } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Logger } from "../../telemetry/logger.js";
import {
  manifestLine,
  PermanentExportError,
  type RecordSink,
  recordLines,
  RetryableExportError,
  type SealedBatch,
} from "../api.js";
import type { FileExporterConfig } from "./config.js";
import { listSegments, type SegmentKind, segmentName } from "./segments.js";
import { recoverTail } from "./tail.js";

/**
 * The file exporter's backend, under `<directory>/<chainId>/`:
 *   records-<firstSeq>.ndjson    one record's canonical text per line
 *   manifests-<firstSeq>.ndjson  one line per sealed batch: {"checkpoint":…,"manifest":…}
 * A batch's record lines are appended and fsync'd before its manifest line, and the
 * cursor moves only after both. At open, torn final lines are cut from both files and
 * the last complete lines tell how far the backend got: a batch whose manifest is there
 * is held; record lines written before a crash are not written again.
 */

interface OpenFile {
  handle: FileHandle;
  bytes: number;
}

export class FileSink implements RecordSink {
  private chainDir = "";
  private chainId = "";
  private records: OpenFile | null = null;
  private manifests: OpenFile | null = null;
  /** Highest record seq and manifest index already in the files. */
  private heldSeq = -1;
  private heldIndex = -1;
  private readonly maxSegmentBytes: number;

  constructor(
    private readonly config: FileExporterConfig,
    private readonly logger: Logger,
  ) {
    this.maxSegmentBytes = Math.floor(config.rotation.max_megabytes * 1024 * 1024);
    this.modes = config.group_readable ? { dir: 0o750, file: 0o640 } : { dir: 0o700, file: 0o600 };
  }

  /** Modes of what the sink creates: owner-only, or readable by the group (group_readable). */
  private readonly modes: { dir: number; file: number };

  async open(chainId: string): Promise<number | null> {
    this.chainId = chainId;
    this.chainDir = join(this.config.directory, chainId);
    try {
      const created = await mkdir(this.chainDir, { recursive: true, mode: this.modes.dir });
      // mkdir's mode is masked by the umask: set what was created explicitly.
      if (created !== undefined)
        for (let d = this.chainDir; d.startsWith(created); d = dirname(d))
          await chmod(d, this.modes.dir);
    } catch (err) {
      throw new RetryableExportError(
        `cannot create output directory ${this.chainDir}: ${(err as Error).message}`,
        undefined,
        { cause: err },
      );
    }
    this.heldSeq = await this.lastHeld("records", (line) => {
      const seq = (JSON.parse(line) as { seq?: unknown }).seq;
      if (typeof seq !== "string" || !/^\d+$/.test(seq)) throw new Error("no seq");
      return Number(seq);
    });
    this.heldIndex = await this.lastHeld("manifests", (line) => {
      const index = (JSON.parse(line) as { manifest?: { index?: unknown } }).manifest?.index;
      if (typeof index !== "string" || !/^\d+$/.test(index)) throw new Error("no index");
      return Number(index);
    });
    const newest = (await listSegments(this.chainDir, "records")).pop();
    if (newest)
      await this.openPair(Number(basename(newest).slice("records-".length, -".ndjson".length)));
    return this.heldIndex >= 0 ? this.heldIndex : null;
  }

  /** The value of the last complete line of the newest non-empty segment of a kind, or −1. */
  private async lastHeld(kind: SegmentKind, read: (line: string) => number): Promise<number> {
    const segments = await listSegments(this.chainDir, kind);
    for (let i = segments.length - 1; i >= 0; i--) {
      const path = segments[i] as string;
      const { lastLine, cut } = await recoverTail(path);
      if (cut > 0)
        this.logger.warn(
          { segment: path, bytes: cut },
          "cut a torn final line left by an interrupted write",
        );
      if (lastLine === null) continue;
      try {
        return read(lastLine);
      } catch {
        throw new PermanentExportError(
          `the last line of ${path} is not one the agent wrote; the output directory was modified outside the agent`,
        );
      }
    }
    return -1;
  }

  write(batch: SealedBatch): Promise<void> {
    return this.writeAll([batch]);
  }

  /**
   * Writes consecutive batches with two fsyncs per segment run instead of two per batch:
   * every record line of the run, fsync, then their manifest lines, fsync. A manifest line
   * is still never durable before the records it covers.
   */
  async writeAll(batches: readonly SealedBatch[]): Promise<void> {
    let i = 0;
    while (i < batches.length && (batches[i] as SealedBatch).index <= this.heldIndex) i++;
    try {
      while (i < batches.length) {
        const first = batches[i] as SealedBatch;
        if (
          this.records === null ||
          (this.records.bytes >= this.maxSegmentBytes && first.records.length > 0)
        ) {
          await this.rotate(first.records.length > 0 ? first.firstSeq : this.heldSeq + 1);
        }
        // One run: batches up to the one that fills the current records segment.
        const recordFile = this.records as OpenFile;
        const lines: Buffer[] = [];
        const manifests: string[] = [];
        let segmentBytes = recordFile.bytes;
        let heldSeq = this.heldSeq;
        let lastIndex = this.heldIndex;
        do {
          const batch = batches[i] as SealedBatch;
          const fresh = batch.records.filter((r) => r.seq > heldSeq);
          if (fresh.length > 0) {
            const buf = recordLines(fresh);
            lines.push(buf);
            segmentBytes += buf.length;
            heldSeq = (fresh[fresh.length - 1] as { seq: number }).seq;
          }
          manifests.push(`${manifestLine(batch.manifest, batch.checkpoint)}\n`);
          lastIndex = batch.index;
          i++;
        } while (i < batches.length && segmentBytes < this.maxSegmentBytes);
        if (lines.length > 0) {
          await this.append(
            recordFile,
            lines.length === 1 ? (lines[0] as Buffer) : Buffer.concat(lines),
          );
          this.heldSeq = heldSeq;
        }
        await this.append(this.manifests as OpenFile, Buffer.from(manifests.join(""), "utf8"));
        this.heldIndex = lastIndex;
      }
    } catch (err) {
      // A partial write leaves a torn line only at the very end; reopening cuts it off.
      await this.close();
      await this.open(this.chainId).catch(() => undefined);
      throw new RetryableExportError(
        `cannot write to ${this.chainDir}: ${(err as Error).message}`,
        undefined,
        { cause: err },
      );
    }
  }

  private async append(file: OpenFile, buf: Buffer): Promise<void> {
    let written = 0;
    while (written < buf.length) {
      const { bytesWritten } = await file.handle.write(buf, written, buf.length - written);
      written += bytesWritten;
    }
    await file.handle.datasync();
    file.bytes += buf.length;
  }

  async close(): Promise<void> {
    const files = [this.records, this.manifests];
    this.records = null;
    this.manifests = null;
    for (const f of files) if (f) await f.handle.close().catch(() => undefined);
  }

  private async rotate(firstSeq: number): Promise<void> {
    await this.close();
    await this.openPair(firstSeq);
    // Make the new files' directory entries durable too, not just their contents.
    const dir = await open(this.chainDir, constants.O_RDONLY);
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  private async openPair(firstSeq: number): Promise<void> {
    const openOne = async (kind: SegmentKind): Promise<OpenFile> => {
      const handle = await open(
        join(this.chainDir, segmentName(firstSeq, kind)),
        "a",
        this.modes.file,
      );
      const bytes = (await handle.stat()).size;
      if (bytes === 0) await handle.chmod(this.modes.file); // new: its mode whatever the umask
      return { handle, bytes };
    };
    this.records = await openOne("records");
    this.manifests = await openOne("manifests");
  }
}

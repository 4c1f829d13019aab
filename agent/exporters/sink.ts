import type { StoredRecord } from "../buffer/wal.js";
import { AgentError } from "../common/errors.js";

/**
 * What an exporter plugin implements: a backend that records can be written to in seq
 * order. The delivery loop (delivery.ts) owns cursors, retries and WAL release; a sink
 * only writes. docs/exporters.md describes the contract.
 */
export interface RecordSink {
  /**
   * Prepares the backend for `chainId`. Returns the highest seq the backend already holds
   * durably (found by inspecting it), or null when unknown; delivery resumes after the
   * larger of this and the persisted cursor, so a crash between a write and the cursor
   * update does not write records twice.
   */
  open(chainId: string): Promise<number | null>;
  /** Writes records (contiguous, ascending seq) durably, or throws an ExportError. */
  write(records: readonly StoredRecord[]): Promise<void>;
  close(): Promise<void>;
}

/** A failure that may go away: the batch is retried with backoff. */
export class RetryableExportError extends AgentError {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super("EXPORT_RETRYABLE", message, options);
  }
}

/** A failure that will not go away by retrying: the exporter stops and reports it. */
export class PermanentExportError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("EXPORT_PERMANENT", message, options);
  }
}

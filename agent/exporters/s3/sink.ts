import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import type { HeadObjectCommandOutput, S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../../telemetry/logger.js";
import {
  manifestLine,
  PermanentExportError,
  type RecordSink,
  recordLines,
  RetryableExportError,
  type SealedBatch,
} from "../api.js";
import {
  bodyBytes,
  createS3Client,
  describeConnection,
  exportErrorFor,
  isAccessDenied,
  isNotFound,
  isPreconditionFailed,
  md5Base64,
  plainEtag,
  type S3Connection,
  type S3Module,
  sha256Base64,
  statusOf,
} from "./client.js";
import type { ObjectLockConfig } from "./config.js";
import { besideKey, manifestKey, recordsKey } from "./layout.js";

/**
 * Writes each sealed batch as one NDJSON object of its records' canonical lines
 * (optionally gzip), then one JSON object of its signed manifest and checkpoint
 * (layout.ts), each exactly once:
 *
 * - Every PUT carries `If-None-Match: *`, Content-MD5 and x-amz-checksum-sha256, and under
 *   `object_lock` the lock mode and a retain-until date.
 * - On a versioned bucket (Object Lock needs versioning) some stores, Ceph RGW among them,
 *   ignore If-None-Match and would add a second version; there the sink asks first
 *   (HEAD): absent → PUT; present and identical → done; present and different → stop.
 * - A 412 (already there) counts as written once the stored object is confirmed identical.
 * - Identical means the same bytes, or for gzip the same content after decompression (so a
 *   different zlib after an upgrade does not turn a re-send into a conflict).
 */
export class S3Sink implements RecordSink {
  private s3: S3Module | null = null;
  private client: S3Client | null = null;
  private chainId = "";
  /** Whether the bucket keeps versions (then If-None-Match may be ignored: HEAD first). */
  private versioned = true;
  /**
   * Until the first batch whose records object had to be created, a re-sent batch may have
   * been written before a restart with the other compression setting: look for it too.
   */
  private resuming = true;

  constructor(
    private readonly conn: S3Connection,
    private readonly compression: "none" | "gzip",
    private readonly objectLock: ObjectLockConfig | undefined,
    private readonly logger: Logger,
    /** Counts a key found taken and written beside (audit_agent_exporter_squatted_keys_total). */
    private readonly onKeyTaken: () => void = () => {},
  ) {}

  async open(chainId: string): Promise<number | null> {
    this.chainId = chainId;
    this.resuming = true;
    if (this.client === null) {
      const { s3, client } = await createS3Client(this.conn, 1);
      this.s3 = s3;
      this.client = client;
    }
    const s3 = this.s3 as S3Module;
    const Bucket = this.conn.bucket;
    try {
      const v = await this.client.send(new s3.GetBucketVersioningCommand({ Bucket }));
      this.versioned = v.Status === "Enabled" || v.Status === "Suspended";
    } catch (err) {
      if (!isAccessDenied(err))
        throw exportErrorFor(err, `checking ${describeConnection(this.conn)}`, this.conn);
      this.versioned = true; // cannot tell: assume If-None-Match may be ignored
      this.logger.warn(
        { bucket: Bucket },
        "cannot read the bucket's versioning status (s3:GetBucketVersioning denied); checking for each object before writing it",
      );
    }
    if (this.objectLock) await this.checkObjectLock();
    this.logger.info(
      { bucket: Bucket, prefix: this.conn.prefix, versioned: this.versioned, chainId },
      "s3 exporter ready",
    );
    // Delivery resumes from its own cursor; a batch re-sent after a crash is found
    // already written (identical) and not written again.
    return null;
  }

  private async checkObjectLock(): Promise<void> {
    const s3 = this.s3 as S3Module;
    const what = `checking Object Lock on bucket "${this.conn.bucket}"`;
    let enabled: boolean;
    try {
      const res = await (this.client as S3Client).send(
        new s3.GetObjectLockConfigurationCommand({ Bucket: this.conn.bucket }),
      );
      enabled = res.ObjectLockConfiguration?.ObjectLockEnabled === "Enabled";
    } catch (err) {
      if (isAccessDenied(err)) {
        this.logger.warn(
          { bucket: this.conn.bucket },
          "cannot read the bucket's Object Lock configuration (s3:GetBucketObjectLockConfiguration denied); writes will show whether it is enabled",
        );
        return;
      }
      if (statusOf(err) !== 404 || (err as { name?: string }).name === "NoSuchBucket")
        throw exportErrorFor(err, what, this.conn);
      enabled = false;
    }
    if (!enabled) {
      throw new PermanentExportError(
        `${what}: the bucket does not have Object Lock enabled, so object_lock cannot be applied: write to a bucket created with Object Lock enabled (ObjectLockEnabledForBucket), or remove object_lock from the exporter config`,
      );
    }
  }

  async write(batch: SealedBatch): Promise<void> {
    if (this.client === null) throw new RetryableExportError("the s3 exporter is not open");
    const { prefix } = this.conn;
    if (batch.records.length > 0) {
      const raw = recordLines(batch.records);
      const gzip = this.compression === "gzip";
      const key = recordsKey(prefix, this.chainId, batch.firstSeq, batch.lastSeq, gzip);
      const other = recordsKey(prefix, this.chainId, batch.firstSeq, batch.lastSeq, !gzip);
      if (!(this.resuming && (await this.holds(other, raw)))) {
        if (await this.putKept(key, gzip ? gzipSync(raw) : raw, raw)) this.resuming = false;
      }
    }
    const manifest = Buffer.from(manifestLine(batch.manifest, batch.checkpoint), "utf8");
    await this.putKept(manifestKey(prefix, this.chainId, batch.index), manifest, manifest);
  }

  /** Whether `key` already holds `content` (stored before a change of compression). */
  private async holds(key: string, content: Buffer): Promise<boolean> {
    const head = await this.head(key);
    if (head === null) return false;
    try {
      await this.confirmIdentical(key, head, content);
    } catch (err) {
      if (err instanceof KeyTaken) return false; // not ours: written below as usual
      throw err;
    }
    this.logger.info({ key }, "batch already stored, with the other compression setting");
    return true;
  }

  /**
   * Creates `key` with `body` unless it exists. Returns true when this call created it,
   * false when an identical object was already there; throws when a different one is.
   * `content` is the uncompressed body (equal to body unless gzip).
   */
  private async putOnce(key: string, body: Buffer, content: Buffer): Promise<boolean> {
    if (this.versioned) {
      const head = await this.head(key);
      if (head !== null) {
        await this.confirmIdentical(key, head, content, body);
        return false;
      }
    }
    const s3 = this.s3 as S3Module;
    const lock = this.objectLock;
    try {
      await (this.client as S3Client).send(
        new s3.PutObjectCommand({
          Bucket: this.conn.bucket,
          Key: key,
          Body: body,
          IfNoneMatch: "*",
          ContentType: key.endsWith(".gz")
            ? "application/gzip"
            : key.endsWith(".json")
              ? "application/json"
              : "application/x-ndjson",
          ContentMD5: md5Base64(body),
          ChecksumSHA256: sha256Base64(body),
          ...(lock
            ? {
                ObjectLockMode: lock.mode,
                ObjectLockRetainUntilDate: new Date(Date.now() + lock.retain_days * 86_400_000),
              }
            : {}),
        }),
      );
      return true;
    } catch (err) {
      if (!isPreconditionFailed(err)) throw exportErrorFor(err, `PUT ${this.url(key)}`, this.conn);
    }
    // 412: something is there already; it counts only if it is this very object.
    const head = await this.head(key);
    if (head === null)
      throw new RetryableExportError(
        `PUT ${this.url(key)}: 412 Precondition Failed, but the object is not there`,
      );
    await this.confirmIdentical(key, head, content, body);
    return false;
  }

  private async head(key: string): Promise<HeadObjectCommandOutput | null> {
    const s3 = this.s3 as S3Module;
    try {
      return await (this.client as S3Client).send(
        new s3.HeadObjectCommand({ Bucket: this.conn.bucket, Key: key, ChecksumMode: "ENABLED" }),
      );
    } catch (err) {
      if (isNotFound(err)) return null;
      throw exportErrorFor(err, `HEAD ${this.url(key)}`, this.conn);
    }
  }

  /**
   * Throws unless the stored object at `key` holds `content`. The SHA-256 checksum or the
   * ETag (MD5 for single-part uploads) settle it when they match `body`; otherwise the
   * object is read and compared (decompressed when it is .gz).
   */
  private async confirmIdentical(
    key: string,
    head: HeadObjectCommandOutput,
    content: Buffer,
    body?: Buffer,
  ): Promise<void> {
    if (body !== undefined) {
      if (head.ChecksumSHA256 !== undefined && head.ChecksumSHA256 === sha256Base64(body)) return;
      if (head.ETag !== undefined && head.ETag === plainEtag(body)) return;
    }
    const s3 = this.s3 as S3Module;
    let stored: Buffer;
    try {
      const res = await (this.client as S3Client).send(
        new s3.GetObjectCommand({ Bucket: this.conn.bucket, Key: key }),
      );
      stored = await bodyBytes(res.Body);
    } catch (err) {
      throw exportErrorFor(err, `GET ${this.url(key)}`, this.conn);
    }
    if (key.endsWith(".gz")) {
      try {
        stored = gunzipSync(stored);
      } catch {
        // not gzip: certainly not what the agent wrote
      }
    }
    if (!stored.equals(content)) throw new KeyTaken(key);
  }

  /**
   * putOnce, or when `key` holds an object this agent did not write (taken first by someone
   * who may write the prefix), the same beside it (layout.ts besideKey): the foreign object
   * stays as evidence, the verifier reports it, and delivery goes on.
   */
  private async putKept(key: string, body: Buffer, content: Buffer): Promise<boolean> {
    try {
      return await this.putOnce(key, body, content);
    } catch (err) {
      if (!(err instanceof KeyTaken)) throw err;
    }
    const hash = createHash("sha256").update(content).digest("hex");
    for (let attempt = 0; attempt < BESIDE_ATTEMPTS; attempt++) {
      const beside = besideKey(key, hash, attempt);
      try {
        const created = await this.putOnce(beside, body, content);
        if (created) {
          this.onKeyTaken();
          this.logger.warn(
            { taken: this.url(key), writtenTo: this.url(beside) },
            "an object this agent did not write already holds this key (someone with write access to the prefix, or another agent with the same chain_id): kept as evidence, written beside it; verify reports the foreign object",
          );
        }
        return created;
      } catch (err) {
        if (!(err instanceof KeyTaken)) throw err;
      }
    }
    throw new PermanentExportError(
      `${this.url(key)} and the ${BESIDE_ATTEMPTS} keys beside it already hold objects this agent did not write: someone is taking the keys it writes. The agent never overwrites; keep those objects as evidence, restrict s3:PutObject on the prefix to the agent, and restart it`,
    );
  }

  private url(key: string): string {
    return `s3://${this.conn.bucket}/${key}`;
  }

  async close(): Promise<void> {
    this.client?.destroy();
    this.client = null;
  }
}

/** Keys tried beside a taken one before the exporter stops. */
const BESIDE_ATTEMPTS = 4;

/** The stored object at a key is not the one this agent writes there. */
class KeyTaken extends Error {
  constructor(readonly key: string) {
    super(`${key} holds an object this agent did not write`);
  }
}

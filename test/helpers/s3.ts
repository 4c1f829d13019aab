import { createHash, randomBytes } from "node:crypto";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { gunzipSync } from "node:zlib";
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import type { SealedBatch } from "../../agent/exporters/api.js";
import { storedRecordOf } from "../../agent/store/record.js";
import { parseKey } from "../../agent/exporters/s3/layout.js";
import { backendAgentYaml } from "./agent.js";
import { prng, type Rng } from "./prng.js";

/**
 * A real S3 server for the S3 exporter's tests: Ceph RGW started by .ci/run
 * (test/services/ceph-rgw.sh), reached through AUDIT_TEST_S3_ENDPOINT. Without it the S3
 * tests are skipped, loudly.
 */
export const S3_ENDPOINT = process.env.AUDIT_TEST_S3_ENDPOINT ?? "";
export const S3_ACCESS_KEY = process.env.AUDIT_TEST_S3_ACCESS_KEY_ID ?? "TESTKEY";
export const S3_SECRET_KEY = process.env.AUDIT_TEST_S3_SECRET_ACCESS_KEY ?? "TESTSECRET";
export const S3_REGION = process.env.AUDIT_TEST_S3_REGION ?? "us-east-1";
export const S3_AVAILABLE = S3_ENDPOINT !== "";

export function warnIfNoS3(file: string): void {
  if (S3_AVAILABLE) return;
  console.warn(
    `\n!!! SKIPPING the S3 exporter tests in ${file}: no S3 server.\n` +
      "!!! .ci/run starts Ceph RGW (test/services/ceph-rgw.sh, needs root) and sets AUDIT_TEST_S3_ENDPOINT;\n" +
      "!!! to run them by hand: bash test/services/ceph-rgw.sh start /tmp/rgw 7480 &&\n" +
      "!!!   AUDIT_TEST_S3_ENDPOINT=http://127.0.0.1:7480 npm test\n",
  );
}

/**
 * Makes this run's bucket names unique on a server that keeps buckets from earlier runs and
 * from the other test files running beside this one. A name, not a random choice of the
 * tests: it must differ even when a run is replayed with the same AUDIT_TEST_SEED.
 */
export const RUN_ID = `${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;

export function testS3Client(endpoint = S3_ENDPOINT): S3Client {
  return new S3Client({
    endpoint,
    region: S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY },
  });
}

let bucketCount = 0;

/** A new, uniquely named bucket: with Object Lock (so versioned), or plain (no versioning). */
export async function createTestBucket(client: S3Client, lock: boolean): Promise<string> {
  const bucket = `audit-${RUN_ID}-${++bucketCount}-${lock ? "lock" : "plain"}`;
  await client.send(
    new CreateBucketCommand({
      Bucket: bucket,
      ...(lock ? { ObjectLockEnabledForBucket: true } : {}),
    }),
  );
  return bucket;
}

export interface S3YamlOptions {
  dir: string;
  bucket: string;
  prefix?: string;
  endpoint?: string;
  compression?: "none" | "gzip";
  objectLock?: { mode: "GOVERNANCE" | "COMPLIANCE"; retainDays: number };
  batchMaxRecords?: number;
  timeout?: string;
}

/** An agent config: OTLP/HTTP on an ephemeral port, the s3 exporter, everything under `dir`. */
export function s3AgentYaml(o: S3YamlOptions): string {
  const lock = o.objectLock
    ? `    object_lock:\n      mode: ${o.objectLock.mode}\n      retain_days: ${o.objectLock.retainDays}\n`
    : "";
  return backendAgentYaml({
    dir: o.dir,
    exporters: `  s3:
    bucket: ${o.bucket}
    prefix: ${o.prefix ?? "audit"}
    endpoint: ${o.endpoint ?? S3_ENDPOINT}
    region: ${S3_REGION}
    access_key_id: ${S3_ACCESS_KEY}
    secret_access_key: ${S3_SECRET_KEY}
    compression: ${o.compression ?? "none"}
    timeout: ${o.timeout ?? "5s"}
${lock}    retry_on_failure:
      initial_interval: 50ms
      max_interval: 200ms
`,
    exporterIds: ["s3"],
    batchMaxRecords: o.batchMaxRecords,
  });
}

export interface ObjectVersion {
  key: string;
  versionId: string;
  deleteMarker: boolean;
}

/** Every version and delete marker under `prefix`. */
export async function listVersions(
  client: S3Client,
  bucket: string,
  prefix: string,
): Promise<ObjectVersion[]> {
  const out: ObjectVersion[] = [];
  let KeyMarker: string | undefined;
  let VersionIdMarker: string | undefined;
  for (;;) {
    const page = await client.send(
      new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker, VersionIdMarker }),
    );
    for (const v of page.Versions ?? [])
      out.push({ key: v.Key as string, versionId: v.VersionId as string, deleteMarker: false });
    for (const d of page.DeleteMarkers ?? [])
      out.push({ key: d.Key as string, versionId: d.VersionId as string, deleteMarker: true });
    if (!page.IsTruncated) return out;
    KeyMarker = page.NextKeyMarker;
    VersionIdMarker = page.NextVersionIdMarker;
  }
}

export async function listKeys(
  client: S3Client,
  bucket: string,
  prefix: string,
): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  for (;;) {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }),
    );
    for (const o of page.Contents ?? []) keys.push(o.Key as string);
    if (!page.IsTruncated) return keys;
    ContinuationToken = page.NextContinuationToken;
  }
}

export async function getObject(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(
    await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
  );
}

/**
 * The sealed batches as the exporter stored them, rebuilt from the bucket (records with
 * their leaf hash, the manifest's canonical text, the checkpoint): what the agent would
 * hand the sink if it sent them again.
 */
export async function batchesInBucket(
  client: S3Client,
  bucket: string,
  prefix: string,
): Promise<{ chainId: string; batches: SealedBatch[] }> {
  const keys = (await listKeys(client, bucket, `${prefix}/`)).sort();
  let chainId = "";
  const records = new Map<number, SealedBatch["records"]>();
  const batches: SealedBatch[] = [];
  for (const key of keys) {
    const parsed = parseKey(prefix, key);
    if (parsed === null || parsed.kind === "foreign") throw new Error(`unexpected key ${key}`);
    chainId = parsed.chainId;
    let body = await getObject(client, bucket, key);
    if (parsed.kind === "records") {
      if (parsed.gzip) body = gunzipSync(body);
      const lines = body.toString("utf8").split("\n").slice(0, -1);
      records.set(
        parsed.firstSeq,
        lines.map((text, i) => {
          const bytes = Buffer.from(text, "utf8");
          const hash = createHash("sha256")
            .update(Buffer.from([0]))
            .update(bytes)
            .digest();
          return storedRecordOf(parsed.firstSeq + i, hash, bytes);
        }),
      );
    } else {
      const stored = JSON.parse(body.toString("utf8")) as {
        checkpoint: string | null;
        manifest: { type: string; firstSeq?: string; lastSeq?: string };
      };
      const m = stored.manifest;
      const isBatch = m.type === "batch";
      batches.push({
        index: parsed.index,
        manifest: canonicalize(m as unknown as JsonValue),
        checkpoint: stored.checkpoint,
        firstSeq: isBatch ? Number(m.firstSeq) : 0,
        lastSeq: isBatch ? Number(m.lastSeq) : -1,
        count: 0,
        records: [],
      });
    }
  }
  const withRecords = batches.map((b) => {
    const held = b.lastSeq >= b.firstSeq ? (records.get(b.firstSeq) ?? []) : [];
    return { ...b, count: held.length, records: held };
  });
  withRecords.sort((a, b) => a.index - b.index);
  return { chainId, batches: withRecords };
}

export interface ProxiedRequest {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  status: number;
}

/**
 * An HTTP proxy in front of the S3 server that the test controls: it records every
 * request, can be taken down (listener closed, connections cut: connection refused) and
 * brought back on the same port, and can answer chosen requests itself.
 */
export class S3Proxy {
  readonly requests: ProxiedRequest[] = [];
  /** A status to answer a request with instead of forwarding it. */
  intercept:
    | ((method: string, url: string) => { status: number; headers?: Record<string, string> } | null)
    | null = null;
  /**
   * Holds a request before forwarding it until the returned promise settles: "forward"
   * sends it on, "drop" cuts the connection. null: forward at once.
   */
  hold: ((method: string, url: string) => Promise<"forward" | "drop"> | null) | null = null;
  /** Forward each request after a random delay of up to this many ms, drawn from `delays`. */
  maxDelayMs = 0;
  /** The delays' generator: a test that sets maxDelayMs seeds it from its own seed. */
  delays: Rng = prng(0);
  private server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly target: URL;
  port = 0;

  constructor(target = S3_ENDPOINT) {
    this.target = new URL(target);
    this.server = this.makeServer();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private makeServer(): Server {
    const server = createServer((req, res) => {
      const method = req.method ?? "GET";
      const url = req.url ?? "/";
      const record = (status: number) =>
        this.requests.push({ method, url, headers: req.headers, status });
      const answer = this.intercept?.(method, url) ?? null;
      if (answer !== null) {
        req.resume();
        record(answer.status);
        const code =
          answer.status === 501
            ? "NotImplemented"
            : answer.status === 503
              ? "SlowDown"
              : "InternalError";
        res.writeHead(answer.status, { "content-type": "application/xml", ...answer.headers });
        res.end(
          method === "HEAD"
            ? undefined
            : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>from the test proxy</Message></Error>`,
        );
        return;
      }
      // The whole body first, so a held request can still be sent after its client is gone.
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("error", () => undefined);
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const forward = () => this.forward(req, body, res, record);
        const gate = this.hold?.(method, url) ?? null;
        const delay = this.maxDelayMs > 0 ? this.delays.next() * this.maxDelayMs : 0;
        if (gate) void gate.then((d) => (d === "forward" ? forward() : res.destroy()));
        else if (delay > 0) setTimeout(forward, delay);
        else forward();
      });
    });
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    return server;
  }

  private forward(
    req: IncomingMessage,
    body: Buffer,
    res: ServerResponse,
    record: (status: number) => void,
  ): void {
    const headers = { ...req.headers };
    delete headers.expect;
    const upstream = httpRequest(
      {
        host: this.target.hostname,
        port: this.target.port,
        method: req.method,
        path: req.url,
        headers,
      },
      (up) => {
        record(up.statusCode ?? 0);
        res.on("error", () => undefined);
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    upstream.end(body);
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.port, "127.0.0.1", () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Refuses connections until up(): the listener closes and open connections are cut. */
  async down(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
    this.server = this.makeServer();
  }

  async up(): Promise<void> {
    await this.start();
  }

  async close(): Promise<void> {
    if (this.server.listening) await this.down();
  }
}

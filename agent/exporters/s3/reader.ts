import { gunzipSync } from "node:zlib";
import type { S3Client } from "@aws-sdk/client-s3";
import { AgentError } from "../../common/errors.js";
import {
  type AuditSource,
  addManifestLine,
  type ChainData,
  type ChainReader,
  chainReaderOf,
} from "../source.js";
import {
  bodyBytes,
  createS3Client,
  describeConnection,
  type S3Connection,
  type S3Module,
  statusOf,
} from "./client.js";
import { basePrefix, type ParsedKey, parseKey } from "./layout.js";

/**
 * Reads back what the S3 exporter wrote, with every object version: ListObjectVersions,
 * then GetObject of each version. Per key, the first (oldest) version is the one the
 * agent wrote and the one handed to the verifier; what happened to it afterwards is
 * reported here, since only the reader sees it:
 *
 * - a later version with the same content (a re-send on a store that ignored
 *   If-None-Match): harmless, a note;
 * - a later version with different content (overwritten behind the agent's back): a
 *   `modified` finding — plain readers see that version;
 * - a delete marker as the newest version (deleted behind the agent's back): a `missing`
 *   finding — plain readers no longer see the object; its data is still read here.
 *
 * Stores without versioning get ListObjectsV2 and a note that overwrites cannot be seen.
 */

interface Entry {
  key: string;
  versionId?: string;
  deleteMarker: boolean;
  lastModified?: Date;
}

type Task = { key: string; parsed: Exclude<ParsedKey, { kind: "foreign" }>; versions: Entry[] };

const CONCURRENCY = 8;

export class S3Source implements AuditSource {
  readonly description: string;

  constructor(private readonly conn: S3Connection) {
    this.description = describeConnection(conn);
  }

  /** Each chain is read whole, then handed on as one page (see chainReaderOf). */
  async *chains(): AsyncIterable<ChainReader> {
    for (const data of await this.loadChains()) yield chainReaderOf(data);
  }

  private async loadChains(): Promise<ChainData[]> {
    const { s3, client } = await createS3Client(this.conn);
    try {
      return await this.read(s3, client);
    } catch (err) {
      if (err instanceof AgentError) throw err;
      const status = statusOf(err);
      const e = err as { name?: string; message?: string };
      throw new AgentError(
        "SOURCE_UNREADABLE",
        `cannot read ${this.description}: ${e.name ?? "Error"}${status ? ` (HTTP ${status})` : ""}${e.message && e.message !== "UnknownError" ? `: ${e.message}` : ""}${status === 403 ? " (reading needs s3:ListBucketVersions, s3:GetObject and s3:GetObjectVersion; check the credentials)" : ""}`,
        { cause: err },
      );
    } finally {
      client.destroy();
    }
  }

  private async read(s3: S3Module, client: S3Client): Promise<ChainData[]> {
    const { entries, versioned } = await this.list(s3, client);
    const chains = new Map<string, ChainData>();
    const tasks = new Map<string, Task[]>();
    let outside = 0;
    const chain = (chainId: string): ChainData => {
      let c = chains.get(chainId);
      if (!c) {
        c = { chainId, records: [], manifests: [], findings: [], notes: [] };
        if (!versioned)
          c.notes.push(
            "the store does not list object versions (ListObjectVersions is not implemented), so the current objects were read with ListObjectsV2: overwritten versions and deleted objects cannot be seen",
          );
        chains.set(chainId, c);
        tasks.set(chainId, []);
      }
      return c;
    };
    // Group the listing by key; ListObjectVersions lists each key's versions newest first.
    const byKey = new Map<string, Entry[]>();
    for (const e of entries) {
      const list = byKey.get(e.key);
      if (list) list.push(e);
      else byKey.set(e.key, [e]);
    }
    for (const key of [...byKey.keys()].sort(compareKeys)) {
      const parsed = parseKey(this.conn.prefix, key);
      if (parsed === null) {
        outside++;
        continue;
      }
      const data = chain(parsed.chainId);
      if (parsed.kind === "foreign") {
        data.findings.push({
          category: "malformed",
          chainId: parsed.chainId,
          location: this.url(key),
          detail:
            "an object the agent does not write (its name is not in the exporter's key layout)",
        });
        continue;
      }
      (tasks.get(parsed.chainId) as Task[]).push({
        key,
        parsed,
        versions: (byKey.get(key) as Entry[]).slice().reverse(),
      });
    }
    for (const [chainId, data] of chains) {
      const list = tasks.get(chainId) as Task[];
      const bodies = await mapLimit(list, CONCURRENCY, (t) => this.fetchVersions(s3, client, t));
      list.forEach((task, i) => this.addObject(data, task, bodies[i] as (Buffer | null)[]));
    }
    const result = [...chains.values()].sort((a, b) => (a.chainId < b.chainId ? -1 : 1));
    if (outside > 0)
      for (const c of result)
        c.notes.push(
          `${outside} object(s) under ${this.description} outside the exporter's key layout were ignored`,
        );
    return result;
  }

  /** Every object entry (versions and delete markers) under the prefix. */
  private async list(
    s3: S3Module,
    client: S3Client,
  ): Promise<{ entries: Entry[]; versioned: boolean }> {
    const Bucket = this.conn.bucket;
    const Prefix = basePrefix(this.conn.prefix);
    const entries: Entry[] = [];
    let KeyMarker: string | undefined;
    let VersionIdMarker: string | undefined;
    try {
      for (;;) {
        const page = await client.send(
          new s3.ListObjectVersionsCommand({ Bucket, Prefix, KeyMarker, VersionIdMarker }),
        );
        // Versions and delete markers come in two lists; merge them back into listing order.
        const merged: (Entry & { latest: boolean })[] = [
          ...(page.Versions ?? []).map((v) => ({
            key: v.Key as string,
            versionId: v.VersionId,
            deleteMarker: false,
            lastModified: v.LastModified,
            latest: v.IsLatest === true,
          })),
          ...(page.DeleteMarkers ?? []).map((d) => ({
            key: d.Key as string,
            versionId: d.VersionId,
            deleteMarker: true,
            lastModified: d.LastModified,
            latest: d.IsLatest === true,
          })),
        ];
        merged.sort(
          (a, b) =>
            compareKeys(a.key, b.key) ||
            Number(b.latest) - Number(a.latest) ||
            (b.lastModified?.getTime() ?? 0) - (a.lastModified?.getTime() ?? 0),
        );
        entries.push(...merged.map(({ latest: _latest, ...e }) => e));
        if (!page.IsTruncated) return { entries, versioned: true };
        KeyMarker = page.NextKeyMarker;
        VersionIdMarker = page.NextVersionIdMarker;
      }
    } catch (err) {
      const name = (err as { name?: string }).name;
      const status = statusOf(err);
      if (name !== "NotImplemented" && status !== 501 && status !== 405) throw err;
    }
    entries.length = 0;
    let ContinuationToken: string | undefined;
    for (;;) {
      const page = await client.send(
        new s3.ListObjectsV2Command({ Bucket, Prefix, ContinuationToken }),
      );
      for (const o of page.Contents ?? [])
        entries.push({ key: o.Key as string, deleteMarker: false, lastModified: o.LastModified });
      if (!page.IsTruncated) return { entries, versioned: false };
      ContinuationToken = page.NextContinuationToken;
    }
  }

  /** The decoded content of each version of a key, oldest first (null for delete markers). */
  private async fetchVersions(
    s3: S3Module,
    client: S3Client,
    task: Task,
  ): Promise<(Buffer | null)[]> {
    const out: (Buffer | null)[] = [];
    for (const v of task.versions) {
      if (v.deleteMarker) {
        out.push(null);
        continue;
      }
      const res = await client.send(
        new s3.GetObjectCommand({
          Bucket: this.conn.bucket,
          Key: task.key,
          ...(v.versionId !== undefined ? { VersionId: v.versionId } : {}),
        }),
      );
      out.push(await bodyBytes(res.Body));
    }
    return out;
  }

  private addObject(data: ChainData, task: Task, bodies: (Buffer | null)[]): void {
    const { key, parsed, versions } = task;
    const chainId = data.chainId;
    const url = this.url(key);
    const at = (v: Entry) =>
      `${url}?versionId=${v.versionId ?? "null"}${v.lastModified ? ` (${v.lastModified.toISOString()})` : ""}`;
    const first = versions.findIndex((v) => !v.deleteMarker);
    if (first < 0) {
      data.findings.push({
        category: "missing",
        chainId,
        location: url,
        detail: "only delete markers remain at this key: every version of the object was removed",
      });
      return;
    }
    const original = versions[first] as Entry;
    const decoded = (buf: Buffer, v: Entry): Buffer | string => {
      if (parsed.kind !== "records" || !parsed.gzip) return buf;
      try {
        return gunzipSync(buf);
      } catch (err) {
        return `${at(v)}: not a gzip object (${(err as Error).message})`;
      }
    };
    const content = decoded(bodies[first] as Buffer, original);

    // What happened to the object after the agent wrote it.
    let identical = 0;
    versions.forEach((v, i) => {
      if (i <= first) return;
      if (v.deleteMarker) {
        if (i === versions.length - 1) {
          data.findings.push({
            category: "missing",
            chainId,
            location: url,
            detail: `deleted behind the agent's back: a delete marker (${at(v)}) hides the object from plain reads; the version the agent wrote is still there and was read`,
            ...(parsed.kind === "records" ? { seq: parsed.firstSeq } : { manifest: parsed.index }),
          });
        } else {
          data.notes.push(`${url} was deleted (delete marker ${at(v)}) and later written again`);
        }
        return;
      }
      const later = decoded(bodies[i] as Buffer, v);
      if (typeof content !== "string" && typeof later !== "string" && later.equals(content)) {
        identical++;
        return;
      }
      data.findings.push({
        category: "modified",
        chainId,
        location: at(v),
        detail: `a later version of ${url} differs from the one the agent wrote (${at(original)}): the object was overwritten behind the agent's back${i === versions.length - 1 ? ", and plain reads now return the changed version" : ""}; the original version was verified`,
        ...(parsed.kind === "records" ? { seq: parsed.firstSeq } : { manifest: parsed.index }),
      });
    });
    if (identical > 0)
      data.notes.push(
        `${url} has ${identical} extra identical version(s) (a re-send on a store that ignored If-None-Match); harmless`,
      );

    if (typeof content === "string") {
      data.findings.push({ category: "malformed", chainId, location: url, detail: content });
      return;
    }
    if (parsed.kind === "records") this.addRecords(data, url, content);
    else this.addManifest(data, url, content);
  }

  private addRecords(data: ChainData, url: string, content: Buffer): void {
    const lines = content.toString("utf8").split("\n");
    const last = lines.pop() as string;
    lines.forEach((text, i) => data.records.push({ text, location: `${url}:${i + 1}` }));
    if (last !== "")
      data.findings.push({
        category: "malformed",
        chainId: data.chainId,
        location: `${url}:${lines.length + 1}`,
        detail:
          "unterminated final line: the agent ends every record with a newline (a cut or edited object)",
      });
  }

  private addManifest(data: ChainData, url: string, content: Buffer): void {
    addManifestLine(data, content.toString("utf8"), url);
  }

  private url(key: string): string {
    return `s3://${this.conn.bucket}/${key}`;
  }
}

/** S3 lists keys in UTF-8 byte order; so does this. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** `s3://BUCKET[/PREFIX]` → bucket and prefix, or an error naming the expected form. */
export function parseS3Url(spec: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(spec);
  if (!m)
    throw new AgentError(
      "VERIFY_BAD_SOURCE",
      `"${spec}" is not an S3 source: write s3://BUCKET or s3://BUCKET/PREFIX (endpoint, region and credentials come from AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)`,
    );
  return { bucket: m[1] as string, prefix: (m[2] ?? "").replace(/^\/+|\/+$/g, "") };
}

import { gunzipSync } from "node:zlib";
import type { S3Client } from "@aws-sdk/client-s3";
import { AgentError } from "../../common/errors.js";
import {
  type AuditSource,
  type ChainReader,
  parseManifestLine,
  type ReadProblems,
  type StoredManifest,
  type StoredText,
} from "../source.js";
import {
  bodyBytes,
  createS3Client,
  describeConnection,
  type S3Connection,
  type S3Module,
  statusOf,
} from "./client.js";
import { S3_MAX_PAGE_SIZE, type S3ReadConfig, s3ReadSchema } from "./config.js";
import { basePrefix, type ParsedKey, parseKey } from "./layout.js";

/**
 * Reads back what the S3 exporter wrote, with every object version, as a stream: nothing
 * is held but a listing page and the few objects being fetched.
 *
 * - `chains()` first surveys the prefix (ListObjectVersions pages, `read.page_size` keys
 *   each): which chains exist, how many objects lie outside the key layout, and whether
 *   the store lists versions at all. It keeps one entry per chain and a counter.
 * - Per chain, `manifests()` and `records()` list that chain's `manifests/` and
 *   `records/` folder page by page, in key order (= index / seq order), and GetObject each
 *   version of each key, a few keys ahead (CONCURRENCY), handing on one object at a time.
 *   With `fromSeq`, a records object whose seq range ends before it, and that has no
 *   other version, is not fetched at all.
 *
 * Per key, the first (oldest) version is the one the agent wrote and the one handed to the
 * verifier; what happened to it afterwards is reported here, since only the reader sees it:
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

/** One key and every version the listing gave for it, newest first. */
interface Listed {
  key: string;
  versions: Entry[];
}

type LayoutKey = Exclude<ParsedKey, { kind: "foreign" }>;

/** What a chain's folder listing turned into, in key order. */
type Fetched =
  | { kind: "foreign"; key: string }
  | { kind: "skipped" }
  | {
      kind: "object";
      key: string;
      parsed: LayoutKey;
      versions: Entry[];
      bodies: (Buffer | null)[];
    };

/** What the survey of the prefix found: one entry per chain, and two facts. */
interface Survey {
  /** Chain ids in chain id order. */
  chains: string[];
  /** Distinct keys under the prefix outside the exporter's key layout. */
  outside: number;
  /** The store lists object versions (else ListObjectsV2 is used). */
  versioned: boolean;
}

/** Keys whose versions are fetched at the same time (each key's versions one by one). */
const CONCURRENCY = 8;

const UNVERSIONED_NOTE =
  "the store does not list object versions (ListObjectVersions is not implemented), so the current objects were read with ListObjectsV2: overwritten versions and deleted objects cannot be seen";

export class S3Source implements AuditSource {
  readonly description: string;
  private readonly pageSize: number;

  constructor(
    private readonly conn: S3Connection,
    read: S3ReadConfig = { page_size: S3_MAX_PAGE_SIZE },
  ) {
    this.description = describeConnection(conn);
    this.pageSize = read.page_size;
  }

  /** The chains under the prefix, in chain id order, each read when its streams are. */
  async *chains(): AsyncIterable<ChainReader> {
    const session = new S3Session(this.conn);
    const bucket = new BucketReader(this.conn, session, this.pageSize, (err) =>
      this.unreadable(err),
    );
    try {
      await session.acquire();
    } catch (err) {
      throw this.unreadable(err);
    }
    try {
      const survey = await bucket.survey();
      for (const chainId of survey.chains) yield bucket.chain(chainId, survey, this.description);
    } finally {
      session.release();
    }
  }

  private unreadable(err: unknown): AgentError {
    if (err instanceof AgentError) return err;
    const status = statusOf(err);
    const e = err as { name?: string; message?: string };
    return new AgentError(
      "SOURCE_UNREADABLE",
      `cannot read ${this.description}: ${e.name ?? "Error"}${status ? ` (HTTP ${status})` : ""}${e.message && e.message !== "UnknownError" ? `: ${e.message}` : ""}${status === 403 ? " (reading needs s3:ListBucketVersions, s3:GetObject and s3:GetObjectVersion; check the credentials)" : ""}`,
      { cause: err },
    );
  }
}

/**
 * The S3 client shared by a source's survey and its chains' streams: made on first use,
 * destroyed when nothing uses it any more (a stream read after chains() ended makes a new one).
 */
class S3Session {
  private opened: Promise<{ s3: S3Module; client: S3Client }> | null = null;
  private users = 0;

  constructor(private readonly conn: S3Connection) {}

  async acquire(): Promise<{ s3: S3Module; client: S3Client }> {
    this.users++;
    try {
      this.opened ??= createS3Client(this.conn);
      return await this.opened;
    } catch (err) {
      this.release();
      throw err;
    }
  }

  release(): void {
    if (--this.users > 0 || this.opened === null) return;
    const opened = this.opened;
    this.opened = null;
    void opened.then(({ client }) => client.destroy()).catch(() => undefined);
  }
}

/** Listing and fetching under one connection. */
class BucketReader {
  constructor(
    readonly conn: S3Connection,
    readonly session: S3Session,
    private readonly pageSize: number,
    readonly unreadable: (err: unknown) => AgentError,
  ) {}

  /**
   * Lists the whole prefix once, keeping only the chain ids, a count of the keys outside
   * the layout, and whether versions can be listed.
   */
  async survey(): Promise<Survey> {
    const base = basePrefix(this.conn.prefix);
    try {
      return await this.surveyWith(base, true);
    } catch (err) {
      if (!notImplemented(err)) throw this.unreadable(err);
    }
    try {
      return await this.surveyWith(base, false);
    } catch (err) {
      throw this.unreadable(err);
    }
  }

  private async surveyWith(base: string, versioned: boolean): Promise<Survey> {
    const chains = new Set<string>();
    let outside = 0;
    for await (const { key } of this.keys(base, versioned)) {
      const parsed = parseKey(this.conn.prefix, key);
      if (parsed === null) outside++;
      else chains.add(parsed.chainId);
    }
    return { chains: [...chains].sort((a, b) => (a < b ? -1 : 1)), outside, versioned };
  }

  chain(chainId: string, survey: Survey, description: string): ChainReader {
    return new S3Chain(this, chainId, survey, description);
  }

  /** Every key under `prefix` with its versions (newest first), a listing page at a time. */
  async *keys(prefix: string, versioned: boolean): AsyncGenerator<Listed> {
    let current: Listed | null = null;
    const pages = versioned ? this.versionPages(prefix) : this.currentPages(prefix);
    for await (const page of pages) {
      for (const e of page) {
        // A key's versions may continue on the next page.
        if (current !== null && current.key === e.key) current.versions.push(e);
        else {
          if (current !== null) yield current;
          current = { key: e.key, versions: [e] };
        }
      }
    }
    if (current !== null) yield current;
  }

  private async *versionPages(prefix: string): AsyncGenerator<Entry[]> {
    const { s3, client } = await this.session.acquire();
    try {
      let KeyMarker: string | undefined;
      let VersionIdMarker: string | undefined;
      for (;;) {
        const page = await client.send(
          new s3.ListObjectVersionsCommand({
            Bucket: this.conn.bucket,
            Prefix: prefix,
            KeyMarker,
            VersionIdMarker,
            MaxKeys: this.pageSize,
          }),
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
        yield merged.map(({ latest: _latest, ...e }) => e);
        if (!page.IsTruncated) return;
        KeyMarker = page.NextKeyMarker;
        VersionIdMarker = page.NextVersionIdMarker;
      }
    } finally {
      this.session.release();
    }
  }

  private async *currentPages(prefix: string): AsyncGenerator<Entry[]> {
    const { s3, client } = await this.session.acquire();
    try {
      let ContinuationToken: string | undefined;
      for (;;) {
        const page = await client.send(
          new s3.ListObjectsV2Command({
            Bucket: this.conn.bucket,
            Prefix: prefix,
            ContinuationToken,
            MaxKeys: this.pageSize,
          }),
        );
        yield (page.Contents ?? []).map((o) => ({
          key: o.Key as string,
          deleteMarker: false,
          lastModified: o.LastModified,
        }));
        if (!page.IsTruncated) return;
        ContinuationToken = page.NextContinuationToken;
      }
    } finally {
      this.session.release();
    }
  }

  /** The decoded content of each version of a key, oldest first (null for delete markers). */
  async fetchVersions(key: string, versions: readonly Entry[]): Promise<(Buffer | null)[]> {
    const { s3, client } = await this.session.acquire();
    try {
      const out: (Buffer | null)[] = [];
      for (const v of versions) {
        if (v.deleteMarker) {
          out.push(null);
          continue;
        }
        const res = await client.send(
          new s3.GetObjectCommand({
            Bucket: this.conn.bucket,
            Key: key,
            ...(v.versionId !== undefined ? { VersionId: v.versionId } : {}),
          }),
        );
        out.push(await bodyBytes(res.Body));
      }
      return out;
    } finally {
      this.session.release();
    }
  }

  url(key: string): string {
    return `s3://${this.conn.bucket}/${key}`;
  }
}

/** One chain's folder, read as two streams of objects. */
class S3Chain implements ChainReader {
  constructor(
    private readonly bucket: BucketReader,
    readonly chainId: string,
    private readonly survey: Survey,
    private readonly description: string,
  ) {}

  async *manifests(problems: ReadProblems): AsyncIterable<StoredManifest> {
    if (!this.survey.versioned) problems.note(UNVERSIONED_NOTE);
    for await (const content of this.objects("manifests", problems, () => false)) {
      const parsed = parseManifestLine(this.chainId, content.buf.toString("utf8"), content.url);
      if ("category" in parsed) problems.finding(parsed);
      else yield parsed;
    }
  }

  async *records(problems: ReadProblems, fromSeq = 0): AsyncIterable<readonly StoredText[]> {
    // Only an object with no other version can be skipped unread: the others are judged.
    const skip = (parsed: LayoutKey, versions: readonly Entry[]) =>
      parsed.kind === "records" &&
      parsed.lastSeq < fromSeq &&
      versions.length === 1 &&
      !(versions[0] as Entry).deleteMarker;
    for await (const { url, buf } of this.objects("records", problems, skip)) {
      const lines = buf.toString("utf8").split("\n");
      const last = lines.pop() as string;
      if (lines.length > 0) yield lines.map((text, i) => ({ text, location: `${url}:${i + 1}` }));
      if (last !== "")
        problems.finding({
          category: "malformed",
          chainId: this.chainId,
          location: `${url}:${lines.length + 1}`,
          detail:
            "unterminated final line: the agent ends every record with a newline (a cut or edited object)",
        });
    }
    const { outside } = this.survey;
    if (outside > 0)
      problems.note(
        `${outside} object(s) under ${this.description} outside the exporter's key layout were ignored`,
      );
  }

  /**
   * The content the agent wrote of each object in one folder of the chain, in key order,
   * judged (versions, gzip) on the way; a few objects are fetched ahead.
   */
  private async *objects(
    folder: "records" | "manifests",
    problems: ReadProblems,
    skip: (parsed: LayoutKey, versions: readonly Entry[]) => boolean,
  ): AsyncGenerator<{ url: string; buf: Buffer }> {
    const { bucket } = this;
    const prefix = `${basePrefix(bucket.conn.prefix)}${this.chainId}/${folder}/`;
    const fetch = async ({ key, versions }: Listed): Promise<Fetched | null> => {
      const parsed = parseKey(bucket.conn.prefix, key);
      if (parsed === null) return null; // deeper than the layout: counted by the survey
      if (parsed.kind === "foreign") return { kind: "foreign", key };
      const oldestFirst = versions.slice().reverse();
      if (skip(parsed, oldestFirst)) return { kind: "skipped" };
      const bodies = await bucket.fetchVersions(key, oldestFirst);
      return { kind: "object", key, parsed, versions: oldestFirst, bodies };
    };
    try {
      const listed = bucket.keys(prefix, this.survey.versioned);
      for await (const item of mapOrdered(listed, CONCURRENCY, fetch)) {
        if (item === null || item.kind === "skipped") continue;
        if (item.kind === "foreign") {
          problems.finding({
            category: "malformed",
            chainId: this.chainId,
            location: bucket.url(item.key),
            detail:
              "an object the agent does not write (its name is not in the exporter's key layout)",
          });
          continue;
        }
        const buf = judgeObject(this.chainId, bucket.url(item.key), item, problems);
        if (buf !== null) yield { url: bucket.url(item.key), buf };
      }
    } catch (err) {
      throw bucket.unreadable(err);
    }
  }
}

/**
 * Reports what happened to an object after the agent wrote it (later versions, delete
 * markers, a body that is not gzip) and returns the content the agent wrote, or null when
 * there is none to verify.
 */
function judgeObject(
  chainId: string,
  url: string,
  object: Extract<Fetched, { kind: "object" }>,
  problems: ReadProblems,
): Buffer | null {
  const { parsed, versions, bodies } = object;
  const at = (v: Entry) =>
    `${url}?versionId=${v.versionId ?? "null"}${v.lastModified ? ` (${v.lastModified.toISOString()})` : ""}`;
  const first = versions.findIndex((v) => !v.deleteMarker);
  if (first < 0) {
    problems.finding({
      category: "missing",
      chainId,
      location: url,
      detail: "only delete markers remain at this key: every version of the object was removed",
    });
    return null;
  }
  const original = versions[first] as Entry;
  const where = parsed.kind === "records" ? { seq: parsed.firstSeq } : { manifest: parsed.index };
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
        problems.finding({
          category: "missing",
          chainId,
          location: url,
          detail: `deleted behind the agent's back: a delete marker (${at(v)}) hides the object from plain reads; the version the agent wrote is still there and was read`,
          ...where,
        });
      } else {
        problems.note(`${url} was deleted (delete marker ${at(v)}) and later written again`);
      }
      return;
    }
    const later = decoded(bodies[i] as Buffer, v);
    if (typeof content !== "string" && typeof later !== "string" && later.equals(content)) {
      identical++;
      return;
    }
    problems.finding({
      category: "modified",
      chainId,
      location: at(v),
      detail: `a later version of ${url} differs from the one the agent wrote (${at(original)}): the object was overwritten behind the agent's back${i === versions.length - 1 ? ", and plain reads now return the changed version" : ""}; the original version was verified`,
      ...where,
    });
  });
  if (identical > 0)
    problems.note(
      `${url} has ${identical} extra identical version(s) (a re-send on a store that ignored If-None-Match); harmless`,
    );

  if (typeof content === "string") {
    problems.finding({ category: "malformed", chainId, location: url, detail: content });
    return null;
  }
  return content;
}

/** A store that does not implement ListObjectVersions. */
function notImplemented(err: unknown): boolean {
  const name = (err as { name?: string } | null)?.name;
  const status = statusOf(err);
  return name === "NotImplemented" || status === 501 || status === 405;
}

/** S3 lists keys in UTF-8 byte order; so does this. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/**
 * `fn` over `items` with up to `limit` calls running, results handed on in the items'
 * order: at most `limit` results (fetched objects) are held at a time.
 */
async function* mapOrdered<T, R>(
  items: AsyncIterable<T>,
  limit: number,
  fn: (item: T) => Promise<R>,
): AsyncGenerator<R> {
  const iterator = items[Symbol.asyncIterator]();
  const running: Promise<R>[] = [];
  let exhausted = false;
  try {
    for (;;) {
      while (!exhausted && running.length < limit) {
        const next = await iterator.next();
        if (next.done) exhausted = true;
        else {
          const p = fn(next.value);
          p.catch(() => undefined); // awaited below; this only keeps an early stop quiet
          running.push(p);
        }
      }
      const head = running.shift();
      if (head === undefined) return;
      yield await head;
    }
  } finally {
    if (!exhausted) await iterator.return?.();
    await Promise.allSettled(running);
  }
}

/**
 * `s3://BUCKET[/PREFIX][?page_size=N]` → bucket, prefix and read settings, or an error
 * naming the expected form.
 */
export function parseS3Url(spec: string): { bucket: string; prefix: string; read: S3ReadConfig } {
  const query = spec.indexOf("?");
  const path = query < 0 ? spec : spec.slice(0, query);
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(path);
  if (!m)
    throw new AgentError(
      "VERIFY_BAD_SOURCE",
      `"${spec}" is not an S3 source: write s3://BUCKET or s3://BUCKET/PREFIX (endpoint, region and credentials come from AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)`,
    );
  const raw: Record<string, unknown> = {};
  for (const [name, value] of new URLSearchParams(query < 0 ? "" : spec.slice(query + 1))) {
    if (name !== "page_size")
      throw new AgentError(
        "VERIFY_BAD_SOURCE",
        `"${spec}": unknown parameter "${name}": an S3 source takes ?page_size=N (keys per listing page, 1 to ${S3_MAX_PAGE_SIZE})`,
      );
    if (!/^\d+$/.test(value))
      throw new AgentError(
        "VERIFY_BAD_SOURCE",
        `"${spec}": page_size must be a whole number of keys per listing page, 1 to ${S3_MAX_PAGE_SIZE}`,
      );
    raw.page_size = Number(value);
  }
  const read = s3ReadSchema.safeParse(raw);
  if (!read.success)
    throw new AgentError(
      "VERIFY_BAD_SOURCE",
      `"${spec}": ${read.error.issues.map((i) => i.message.replace(/^read\./, "")).join("; ")}`,
    );
  return {
    bucket: m[1] as string,
    prefix: (m[2] ?? "").replace(/^\/+|\/+$/g, ""),
    read: read.data,
  };
}

/**
 * The S3 exporter's key layout, under the configured prefix:
 *
 *   <prefix>/<chainId>/records/<firstSeq>-<lastSeq>.ndjson[.gz]   one object per batch
 *   <prefix>/<chainId>/manifests/<index>.json                      one object per sealed entry
 *
 * Numbers are zero-padded to 20 digits (any uint64), so S3's lexicographic listing order
 * is seq / index order. A key-rotation entry has a manifest object and no records object.
 *
 * Keys are predictable, so anyone who may PutObject on the prefix can take one first. The
 * agent never overwrites: it writes beside a taken key, under the same name with
 * `~<first 16 hex of the content's SHA-256>` before the extension (then `~<hash>-1`, `-2`…
 * should that be taken too), and the verifier reads both (the foreign one is a finding).
 */

const WIDTH = 20;
const RECORDS_NAME = /^(\d{20})-(\d{20})(?:~[0-9a-f]{16}(?:-\d{1,2})?)?\.ndjson(\.gz)?$/;
const MANIFEST_NAME = /^(\d{20})(?:~[0-9a-f]{16}(?:-\d{1,2})?)?\.json$/;

/**
 * Where to write `content` when `key` is taken by another object: the same name with
 * `~<hash>` (attempt 0) or `~<hash>-<attempt>` before its extension.
 */
export function besideKey(key: string, contentSha256Hex: string, attempt: number): string {
  const slash = key.lastIndexOf("/");
  const name = key.slice(slash + 1);
  const dot = name.indexOf(".");
  const tag = `~${contentSha256Hex.slice(0, 16)}${attempt === 0 ? "" : `-${attempt}`}`;
  return `${key.slice(0, slash + 1)}${name.slice(0, dot)}${tag}${name.slice(dot)}`;
}

export function pad(n: number): string {
  return String(n).padStart(WIDTH, "0");
}

/** `<prefix>/` ("" for no prefix): where every chain's folder starts. */
export function basePrefix(prefix: string): string {
  return prefix === "" ? "" : `${prefix}/`;
}

export function recordsKey(
  prefix: string,
  chainId: string,
  firstSeq: number,
  lastSeq: number,
  gzip: boolean,
): string {
  return `${basePrefix(prefix)}${chainId}/records/${pad(firstSeq)}-${pad(lastSeq)}.ndjson${gzip ? ".gz" : ""}`;
}

export function manifestKey(prefix: string, chainId: string, index: number): string {
  return `${basePrefix(prefix)}${chainId}/manifests/${pad(index)}.json`;
}

export type ParsedKey =
  | { chainId: string; kind: "records"; firstSeq: number; lastSeq: number; gzip: boolean }
  | { chainId: string; kind: "manifests"; index: number }
  /** In a chain's records/ or manifests/ folder, but not a name the agent writes. */
  | { chainId: string; kind: "foreign" };

/** Parses a key under `basePrefix(prefix)`; null when it is outside the layout altogether. */
export function parseKey(prefix: string, key: string): ParsedKey | null {
  const base = basePrefix(prefix);
  if (!key.startsWith(base)) return null;
  const parts = key.slice(base.length).split("/");
  if (parts.length !== 3) return null;
  const [chainId, folder, name] = parts as [string, string, string];
  if (chainId === "" || (folder !== "records" && folder !== "manifests")) return null;
  if (folder === "records") {
    const m = RECORDS_NAME.exec(name);
    return m
      ? {
          chainId,
          kind: "records",
          firstSeq: Number(m[1]),
          lastSeq: Number(m[2]),
          gzip: m[3] !== undefined,
        }
      : { chainId, kind: "foreign" };
  }
  const m = MANIFEST_NAME.exec(name);
  return m ? { chainId, kind: "manifests", index: Number(m[1]) } : { chainId, kind: "foreign" };
}

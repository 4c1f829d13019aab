import { createHash, hash as oneShotHash } from "node:crypto";

/**
 * The chained record envelope (docs/integrity-format.md §2). Its members sort as
 * chainId < prev < record < seq < source < timeReceivedUnixNano < v, so the canonical text
 * is assembled from a prefix, the record's canonical JSON and a suffix.
 */
export const FORMAT_VERSION = 1;
/**
 * The format version of a line that carries `source` (§2.4): what the agent itself knows
 * of who sent the record. A line without it stays a version-1 line, byte for byte.
 */
export const SOURCE_FORMAT_VERSION = 2;

/**
 * A `source` member name (§2.4): dotted lowercase segments, as OpenTelemetry attribute names
 * are written. Such a name never needs JSON escaping. Verifiers accept any name of this
 * shape, so a writer may stamp a new one without a new format version.
 */
export const SOURCE_KEY_PATTERN = /^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*$/;
/** Longest `source` member name, and most members: bounds that keep a line's head small. */
export const MAX_SOURCE_KEY_LENGTH = 128;
export const MAX_SOURCE_MEMBERS = 32;

/**
 * What is wrong with a parsed `source` value (§2.4), or null: an object of 1 to 32 members,
 * each named as SOURCE_KEY_PATTERN says, each a non-empty string. Canonical order is the
 * caller's to check (it needs the text).
 */
export function sourceProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return "source is not an object";
  const entries = Object.entries(value);
  if (entries.length === 0) return "source has no members (a line without any has no source)";
  if (entries.length > MAX_SOURCE_MEMBERS)
    return `source has ${entries.length} members, more than ${MAX_SOURCE_MEMBERS}`;
  for (const [key, v] of entries) {
    if (key.length > MAX_SOURCE_KEY_LENGTH || !SOURCE_KEY_PATTERN.test(key))
      return `source member name ${JSON.stringify(key.slice(0, 140))} is not a dotted lowercase name`;
    if (typeof v !== "string" || v === "") return `source member ${key} is not a non-empty string`;
  }
  return null;
}

/**
 * The canonical text of a `source` object from its members (empty values left out), or null
 * when none is left: then the line has no `source` and is a version-1 line.
 */
export function sourceJson(members: Readonly<Record<string, string>>): string | null {
  const keys = Object.keys(members)
    .filter((k) => members[k] !== "")
    .sort();
  if (keys.length === 0) return null;
  // Keys need no escaping (SOURCE_KEY_PATTERN); values are JSON.stringify'd strings, which
  // is RFC 8785's form for every well-formed string.
  return `{${keys.map((k) => `"${k}":${JSON.stringify(members[k])}`).join(",")}}`;
}

/** Chain ids are restricted so they never need JSON escaping and are safe in paths and URLs. */
export const CHAIN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function envelopeJson(
  chainId: string,
  prevHex: string,
  record: string,
  seq: bigint | number,
  receivedUnixNano: string,
  source: string | null = null,
): string {
  return `${envelopeHead(chainId)}${prevHex}${ENVELOPE_MIDDLE}${record}${envelopeTail(seq, receivedUnixNano, source)}`;
}

/**
 * The envelope in the pieces the WAL writes straight into its buffers:
 * head + prev (64 hex digits) + middle + record + tail. All but the record are ASCII.
 */
export function envelopeHead(chainId: string): string {
  return `{"chainId":"${chainId}","prev":"`;
}
export const ENVELOPE_MIDDLE = '","record":';
export function envelopeTail(
  seq: bigint | number,
  receivedUnixNano: string,
  source: string | null = null,
): string {
  return `${ENVELOPE_SEQ}${seq}${envelopeReceived(source)}${receivedUnixNano}${envelopeEnd(source)}`;
}
/** The tail's constant parts, around the seq and receive-time digits, for writers of bytes. */
export const ENVELOPE_SEQ = ',"seq":"';
export const ENVELOPE_RECEIVED = '","timeReceivedUnixNano":"';
export const ENVELOPE_END = `","v":${FORMAT_VERSION}}`;
/**
 * The text between the seq digits and the receive-time digits: with a `source` (its
 * canonical object text, sourceJson), that member sits between them (`seq` < `source` <
 * `timeReceivedUnixNano`).
 */
export function envelopeReceived(source: string | null): string {
  return source === null ? ENVELOPE_RECEIVED : `","source":${source},"timeReceivedUnixNano":"`;
}
/** The text after the receive-time digits: `v` is 2 on a line with a `source`. */
export function envelopeEnd(source: string | null): string {
  return source === null ? ENVELOPE_END : `","v":${SOURCE_FORMAT_VERSION}}`;
}

const LEAF_PREFIX = Buffer.from([0x00]);

/** RFC 6962 §2.1 leaf hash: SHA-256(0x00 || canonical bytes). */
export function leafHash(canonical: Uint8Array): Buffer {
  return createHash("sha256").update(LEAF_PREFIX).update(canonical).digest();
}

/**
 * The leaf hash, in hex, of a line held as text: its UTF-8 bytes written after the 0x00
 * prefix in a reused buffer and hashed in one call. A hex string costs less to make and to
 * keep than a Buffer, and the chain links (`prev`) are compared in hex.
 */
export function leafHashHex(canonical: string): string {
  const most = 1 + canonical.length * 3; // UTF-8 takes at most 3 bytes per UTF-16 unit
  if (leafInput.length < most) leafInput = Buffer.alloc(Math.max(most, leafInput.length * 2));
  const n = leafInput.write(canonical, 1, "utf8");
  return oneShotHash("sha256", leafInput.subarray(0, 1 + n), "hex");
}
let leafInput = Buffer.alloc(64 * 1024); // byte 0 is the 0x00 prefix, never written

const NODE_PREFIX = Buffer.from([0x01]);
const nodeInput = Buffer.alloc(65, 0x01);

/**
 * RFC 6962 §2.1 interior node hash: SHA-256(0x01 || left || right). One-shot over a reused
 * buffer: about twice as fast as a Hash object per node, and batches hash hundreds.
 */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== 32 || right.length !== 32) {
    return createHash("sha256").update(NODE_PREFIX).update(left).update(right).digest();
  }
  nodeInput.set(left, 1);
  nodeInput.set(right, 33);
  return oneShotHash("sha256", nodeInput, "buffer") as unknown as Buffer;
}

/**
 * The `prev` of seq 0. Its input starts with 'o' (0x6f), so it can never collide with a
 * leaf (0x00) or node (0x01) hash input.
 */
export function genesisHash(chainId: string): Buffer {
  return createHash("sha256").update(`otel-audit-chain:v1:genesis:${chainId}`, "utf8").digest();
}

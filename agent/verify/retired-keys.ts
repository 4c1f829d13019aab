/**
 * Which keys key-rotation entries retired, and from when (docs/integrity-format.md §13). A
 * verified rotation entry, signed by the outgoing key, retires that key: no manifest after
 * the entry, and no checkpoint of a tree larger than the entry's `treeSize`, counts when the
 * retired key alone signed it. Otherwise whoever holds an old key, left on an old host or in
 * a backup, could rewrite everything after the rotation and sign it again.
 *
 * A later verified entry that names a retired key as its `newKey` (a rotation back to an
 * earlier key) brings it back from that entry on.
 */

/** A verified key-rotation entry, as the retirement needs it. */
export interface Rotation {
  /** Its manifest index. */
  entry: number;
  /** The records sealed before it. */
  treeSize: number;
  /** `<name>+<key id>` of the outgoing key, which signed it. */
  keyId: string;
  /** `<name>+<key id>` of the key it names, when `newKey` is a verifier key. */
  newKeyId: string | null;
}

/** One span of a key's retirement: from a rotation entry until another brought it back. */
export interface Retirement {
  /** The entry that retired it, and the records sealed before that entry. */
  entry: number;
  treeSize: number;
  /** The entry that brought it back, if one did. */
  until: { entry: number; treeSize: number } | null;
}

export class RetiredKeys {
  private readonly spans = new Map<string, Retirement[]>();

  /** The retirement of `keyId` that covers the manifest with index `index`, if any. */
  atEntry(keyId: string, index: number): Retirement | undefined {
    return this.spans
      .get(keyId)
      ?.find((r) => index > r.entry && (r.until === null || index < r.until.entry));
  }

  /** The retirement of `keyId` that covers a checkpoint of `size` records, if any. */
  atSize(keyId: string, size: number): Retirement | undefined {
    return this.spans
      .get(keyId)
      ?.find((r) => size > r.treeSize && (r.until === null || size <= r.until.treeSize));
  }

  /**
   * The retirements made by `rotations` (entries whose signature verified), taken in index
   * order: an entry signed by a key already retired at that point retires nothing and brings
   * nothing back (it is reported as any manifest signed by a retired key).
   */
  static of(rotations: readonly Rotation[]): RetiredKeys {
    const retired = new RetiredKeys();
    for (const r of [...rotations].sort((a, b) => a.entry - b.entry)) {
      if (retired.atEntry(r.keyId, r.entry) !== undefined) continue;
      const spans = retired.spans.get(r.keyId) ?? [];
      if (!spans.some((s) => s.until === null && s.entry <= r.entry))
        spans.push({ entry: r.entry, treeSize: r.treeSize, until: null });
      retired.spans.set(r.keyId, spans);
      if (r.newKeyId === null || r.newKeyId === r.keyId) continue;
      for (const s of retired.spans.get(r.newKeyId) ?? [])
        if (s.until === null && s.entry < r.entry)
          s.until = { entry: r.entry, treeSize: r.treeSize };
    }
    return retired;
  }
}

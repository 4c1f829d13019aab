import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { canonicalize, type JsonValue } from "../../agent/integrity/jcs.js";
import {
  type BatchManifest,
  checkManifestSignature,
  type Manifest,
  manifestHash,
  manifestKeyId,
  manifestProblem,
  type RotationManifest,
  type SignedManifest,
  signManifest,
} from "../../agent/integrity/manifest.js";
import {
  generateSigningKey,
  type PublicKey,
  parseVerifierKey,
  verifyBytes,
} from "../../agent/integrity/signing.js";

/**
 * Signed manifests: the signature covers the RFC 8785 text of every other member, so any
 * change to any member breaks it; the key is chosen by `keyId`; and manifestProblem is the
 * structural gate for manifests read back from a backend.
 */

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

const key = generateSigningKey("audit.example/signer");
const other = generateSigningKey("audit.example/other");

function batch(overrides: Partial<BatchManifest> = {}): BatchManifest {
  return {
    v: 1,
    type: "batch",
    chainId: "chain-a",
    index: "3",
    firstSeq: "100",
    lastSeq: "149",
    count: 50,
    batchRoot: sha("batch"),
    prevLeaf: sha("prev"),
    lastLeaf: sha("last"),
    treeSize: "150",
    treeRoot: sha("tree"),
    prevManifest: sha("manifest 2"),
    keyId: manifestKeyId(key.public),
    createdAt: "2025-01-02T03:04:05.678Z",
    ...overrides,
  };
}

function rotation(overrides: Partial<RotationManifest> = {}): RotationManifest {
  return {
    v: 1,
    type: "key-rotation",
    chainId: "chain-a",
    index: "4",
    treeSize: "150",
    newKey: other.public.verifierKey,
    prevManifest: sha("manifest 3"),
    keyId: manifestKeyId(key.public),
    createdAt: "2025-01-02T03:04:06.000Z",
    ...overrides,
  };
}

const parse = (text: string) => JSON.parse(text) as SignedManifest;

/** A value of the same JSON type as `value` that differs from it. */
function changed(value: unknown): unknown {
  if (typeof value === "number") return value + 1;
  // The first character: base64's last one may be padding that decoding ignores.
  if (typeof value === "string") return (value.startsWith("0") ? "1" : "0") + value.slice(1);
  throw new Error(`unexpected member type ${typeof value}`);
}

describe("signManifest / checkManifestSignature", () => {
  for (const [kind, make] of [
    ["batch", batch],
    ["key-rotation", rotation],
  ] as const) {
    describe(kind, () => {
      const manifest: Manifest = make();
      const text = signManifest(manifest, key);
      const signed = parse(text);

      it("signs the canonical text of the other members, and the result is canonical", () => {
        expect(canonicalize(signed as unknown as JsonValue)).toBe(text);
        const { signature, ...unsigned } = signed;
        expect(unsigned).toEqual(manifest);
        const message = Buffer.from(canonicalize(manifest as unknown as JsonValue), "utf8");
        const sig = Buffer.from(signature, "base64");
        expect(sig).toHaveLength(64);
        expect(sig.toString("base64")).toBe(signature);
        expect(verifyBytes(key.public, message, sig)).toBe(true);
        expect(manifestHash(text)).toBe(sha(text));
        expect(manifestProblem(signed)).toBeNull();
      });

      it("is valid for the signing key, alone or among others", () => {
        expect(checkManifestSignature(signed, [key.public])).toBe("valid");
        expect(checkManifestSignature(signed, [other.public, key.public])).toBe("valid");
        // The trusted key may come from its verifier-key text.
        expect(checkManifestSignature(signed, [parseVerifierKey(key.public.verifierKey)])).toBe(
          "valid",
        );
      });

      it("is invalid after changing any member other than keyId", () => {
        for (const field of Object.keys(signed) as (keyof SignedManifest)[]) {
          if (field === "keyId") continue;
          const tampered = { ...signed, [field]: changed(signed[field]) } as SignedManifest;
          expect(checkManifestSignature(tampered, [key.public]), field).toBe("invalid");
        }
      });

      it("is invalid with an added member, a removed member or a flipped signature bit", () => {
        const added = { ...signed, extra: "x" } as unknown as SignedManifest;
        expect(checkManifestSignature(added, [key.public])).toBe("invalid");
        const { createdAt: _dropped, ...removed } = signed;
        expect(checkManifestSignature(removed as SignedManifest, [key.public])).toBe("invalid");
        const sig = Buffer.from(signed.signature, "base64");
        for (const byte of [0, 63]) {
          const flipped = Buffer.from(sig);
          flipped[byte] = (flipped[byte] as number) ^ 0x01;
          const bad = { ...signed, signature: flipped.toString("base64") };
          expect(checkManifestSignature(bad, [key.public])).toBe("invalid");
        }
        expect(checkManifestSignature({ ...signed, signature: "" }, [key.public])).toBe("invalid");
      });

      it("is unknown-key when keyId names a key that is not trusted", () => {
        expect(checkManifestSignature(signed, [other.public])).toBe("unknown-key");
        expect(checkManifestSignature(signed, [])).toBe("unknown-key");
        // Same name, different key material: a different key id, so still unknown.
        const sameName = generateSigningKey(key.public.name);
        expect(checkManifestSignature(signed, [sameName.public])).toBe("unknown-key");
        const renamed = { ...signed, keyId: changed(signed.keyId) as string };
        expect(checkManifestSignature(renamed, [key.public])).toBe("unknown-key");
      });

      it("is invalid when a trusted key claims the keyId but holds other key material", () => {
        const impostor: PublicKey = {
          ...other.public,
          name: key.public.name,
          keyId: key.public.keyId,
        };
        expect(manifestKeyId(impostor)).toBe(signed.keyId);
        expect(checkManifestSignature(signed, [impostor])).toBe("invalid");
      });

      it("a manifest signed by another key under this keyId is invalid", () => {
        const forged = parse(signManifest(manifest, other));
        expect(forged.keyId).toBe(manifestKeyId(key.public));
        expect(checkManifestSignature(forged, [key.public])).toBe("invalid");
      });
    });
  }

  it("names the key as '<name>+<8 hex key id>', the verifier key's first two fields", () => {
    expect(manifestKeyId(key.public)).toBe(`audit.example/signer+${key.public.keyId}`);
    expect(key.public.verifierKey.startsWith(`${manifestKeyId(key.public)}+`)).toBe(true);
    expect(key.public.keyId).toMatch(/^[0-9a-f]{8}$/);
  });
});

describe("manifestProblem", () => {
  const validBatch = () => parse(signManifest(batch(), key)) as unknown as Record<string, unknown>;
  const validRotation = () =>
    parse(signManifest(rotation(), key)) as unknown as Record<string, unknown>;

  it("accepts well-formed batch and rotation manifests", () => {
    expect(manifestProblem(validBatch())).toBeNull();
    expect(manifestProblem(validRotation())).toBeNull();
    expect(
      manifestProblem(parse(signManifest(batch({ firstSeq: "0", lastSeq: "0", count: 1 }), key))),
    ).toBeNull();
  });

  it("accepts a chain-start entry only as entry 0, naming another chain and a range", () => {
    const start = (o: Record<string, unknown> = {}) =>
      ({
        ...(parse(
          signManifest(
            {
              v: 1,
              type: "chain-start",
              chainId: "chain-b",
              index: "0",
              treeSize: "0",
              predecessor: "chain-a",
              lostFrom: "40",
              lostThrough: "49",
              reason: "disk replaced",
              prevManifest: sha("genesis"),
              keyId: manifestKeyId(key.public),
              createdAt: "2025-01-02T03:04:06.000Z",
            },
            key,
          ),
        ) as unknown as Record<string, unknown>),
        ...o,
      }) as Record<string, unknown>;
    expect(manifestProblem(start())).toBeNull();
    expect(manifestProblem(start({ lostFrom: "49" }))).toBeNull();
    expect(manifestProblem(start({ index: "1" }))).toMatch(/not entry 0/);
    expect(manifestProblem(start({ treeSize: "3" }))).toMatch(/not entry 0/);
    expect(manifestProblem(start({ predecessor: "chain-b" }))).toMatch(/its own chain/);
    expect(manifestProblem(start({ predecessor: "../x" }))).toBe("bad predecessor");
    expect(manifestProblem(start({ lostFrom: "50" }))).toMatch(/after lostThrough/);
    expect(manifestProblem(start({ lostThrough: 49 }))).toBe("bad lostThrough");
    expect(manifestProblem(start({ reason: "x".repeat(1001) }))).toBe("bad reason");
    expect(manifestProblem(start({ reason: undefined }))).toBe("bad reason");
  });

  it("rejects values that are not manifest objects", () => {
    expect(manifestProblem(null)).toBe("not an object");
    expect(manifestProblem("x")).toBe("not an object");
    expect(manifestProblem(7)).toBe("not an object");
    expect(manifestProblem(undefined)).toBe("not an object");
  });

  it("rejects each missing required member", () => {
    const expected: Record<string, RegExp> = {
      v: /version/,
      signature: /signature/,
      keyId: /keyId/,
      chainId: /chainId/,
      index: /index/,
      prevManifest: /prevManifest/,
      treeSize: /treeSize/,
      firstSeq: /firstSeq/,
      lastSeq: /lastSeq/,
      batchRoot: /batchRoot/,
      prevLeaf: /prevLeaf/,
      lastLeaf: /lastLeaf/,
      treeRoot: /treeRoot/,
      count: /count/,
      type: /type/,
    };
    for (const [field, message] of Object.entries(expected)) {
      const m = validBatch();
      delete m[field];
      expect(manifestProblem(m), field).toMatch(message);
    }
    const r = validRotation();
    delete r.newKey;
    expect(manifestProblem(r)).toBe("bad newKey");
  });

  it("rejects an unsupported version or type", () => {
    expect(manifestProblem({ ...validBatch(), v: 2 })).toBe("unsupported manifest version 2");
    expect(manifestProblem({ ...validBatch(), v: "1" })).toBe('unsupported manifest version "1"');
    expect(manifestProblem({ ...validBatch(), type: "other" })).toBe(
      'unknown manifest type "other"',
    );
  });

  it("rejects a count that does not match the seq range", () => {
    for (const count of [49, 51, 0, -50, "50", null]) {
      expect(manifestProblem({ ...validBatch(), count }), String(count)).toBe(
        "count does not match the seq range",
      );
    }
    expect(manifestProblem({ ...validBatch(), lastSeq: "150" })).toBe(
      "count does not match the seq range",
    );
    expect(manifestProblem({ ...validBatch(), firstSeq: "101", count: 49 })).toBeNull();
  });

  it("rejects bad hex in every hash member", () => {
    const good = sha("x");
    const badHex = [
      good.toUpperCase(),
      good.slice(1),
      `${good}0`,
      `${good.slice(1)}g`,
      `0x${good.slice(2)}`,
      "",
      Buffer.from(good, "hex").toString("base64"),
    ];
    for (const field of ["prevManifest", "batchRoot", "prevLeaf", "lastLeaf", "treeRoot"]) {
      for (const value of badHex) {
        expect(manifestProblem({ ...validBatch(), [field]: value }), `${field}=${value}`).toBe(
          `bad ${field}`,
        );
      }
      expect(manifestProblem({ ...validBatch(), [field]: 5 }), field).toBe(`bad ${field}`);
    }
    expect(manifestProblem({ ...validRotation(), prevManifest: good.slice(2) })).toBe(
      "bad prevManifest",
    );
  });

  it("rejects non-decimal sequence numbers, indices and tree sizes", () => {
    const badDecimal = ["", "-1", "01", "1.0", "1e3", " 1", "0x10", "one"];
    for (const field of ["index", "treeSize", "firstSeq", "lastSeq"]) {
      for (const value of badDecimal) {
        expect(manifestProblem({ ...validBatch(), [field]: value }), `${field}=${value}`).toBe(
          `bad ${field}`,
        );
      }
      expect(manifestProblem({ ...validBatch(), [field]: 3 }), field).toBe(`bad ${field}`);
    }
    expect(manifestProblem({ ...validRotation(), treeSize: "1.5" })).toBe("bad treeSize");
    expect(manifestProblem({ ...validRotation(), index: -4 })).toBe("bad index");
  });

  it("rejects a non-string signature, keyId or chainId", () => {
    expect(manifestProblem({ ...validBatch(), signature: 1 })).toBe("no signature");
    expect(manifestProblem({ ...validBatch(), keyId: null })).toBe("no keyId or chainId");
    expect(manifestProblem({ ...validBatch(), chainId: ["chain-a"] })).toBe("no keyId or chainId");
  });
});

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  type Checkpoint,
  checkpointText,
  parseCheckpointText,
  parseNote,
  signNote,
  verifyNote,
} from "../../agent/integrity/note.js";
import {
  generateSigningKey,
  keyIdFor,
  type PublicKey,
  parseVerifierKey,
  privateKeyPem,
  publicKeyFromRaw,
  type SigningKey,
  signBytes,
  signingKeyFromPem,
  verifyBytes,
} from "../../agent/integrity/signing.js";

/**
 * Known-answer tests for the signing layer: Ed25519 against RFC 8032 §7.1, signed notes
 * against the C2SP signed-note spec and the golang.org/x/mod/sumdb/note tests, and
 * checkpoints against the C2SP tlog-checkpoint spec. Only vector values are taken from
 * those sources.
 */

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => Buffer.from(s, "hex");

function flipBit(b: Uint8Array, byte: number, mask = 0x01): Buffer {
  const out = Buffer.from(b);
  out[byte] = (out[byte] as number) ^ mask;
  return out;
}

/** A node:crypto private key from a raw RFC 8032 seed and its public key. */
function privateKeyFromSeed(seed: Buffer, pub: Buffer): KeyObject {
  return createPrivateKey({
    key: {
      kty: "OKP",
      crv: "Ed25519",
      d: seed.toString("base64url"),
      x: pub.toString("base64url"),
    },
    format: "jwk",
  });
}

function rawPublicOf(privateKey: KeyObject): Buffer {
  const jwk = createPublicKey(privateKey).export({ format: "jwk" });
  return Buffer.from(jwk.x as string, "base64url");
}

// RFC 8032 §7.1 "Test Vectors for Ed25519". Values as printed in the RFC; cross-checked
// against libtom/libtomcrypt tests/ed25519_test.c (s_rfc_8032_7_1_test), which carries the
// same five vectors. TEST 1024's message is 1023 bytes; SHA(abc)'s message is SHA-512("abc").
const RFC8032 = [
  {
    name: "TEST 1",
    secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature:
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155" +
      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    name: "TEST 2",
    secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    public: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature:
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da" +
      "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    name: "TEST 3",
    secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    public: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    message: "af82",
    signature:
      "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac" +
      "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
  {
    name: "TEST 1024",
    secret: "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
    public: "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
    message: [
      "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98",
      "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8",
      "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d",
      "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc",
      "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe",
      "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e",
      "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef",
      "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7",
      "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1",
      "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2",
      "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24",
      "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270",
      "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc",
      "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07",
      "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba",
      "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a",
      "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e",
      "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7",
      "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c",
      "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8",
      "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df",
      "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08",
      "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649",
      "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4",
      "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3",
      "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e",
      "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f",
      "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5",
      "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1",
      "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d",
      "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c",
      "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0",
    ].join(""),
    signature:
      "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350" +
      "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
  },
  {
    name: "TEST SHA(abc)",
    secret: "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
    public: "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
    message:
      "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" +
      "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    signature:
      "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589" +
      "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
  },
] as const;

function rfcKey(v: (typeof RFC8032)[number], name = "rfc8032.example/key"): SigningKey {
  const pub = unhex(v.public);
  return {
    privateKey: privateKeyFromSeed(unhex(v.secret), pub),
    public: publicKeyFromRaw(name, pub),
  };
}

describe("Ed25519 (RFC 8032 §7.1 test vectors)", () => {
  it("has the vectors' own shape: 1023-byte TEST 1024 message, SHA-512(abc) message", () => {
    expect(unhex(RFC8032[3].message).length).toBe(1023);
    expect(RFC8032[4].message).toBe(createHash("sha512").update("abc").digest("hex"));
  });

  for (const v of RFC8032) {
    describe(v.name, () => {
      const key = rfcKey(v);
      const message = unhex(v.message);
      const signature = unhex(v.signature);

      it("derives the published public key from the secret seed", () => {
        expect(hex(rawPublicOf(key.privateKey))).toBe(v.public);
        // And the SPKI key built from the raw public key is the same key.
        expect(hex(key.public.raw)).toBe(v.public);
      });

      it("signBytes gives exactly the published signature", () => {
        expect(hex(signBytes(key, message))).toBe(v.signature);
      });

      it("verifyBytes accepts the published signature", () => {
        expect(verifyBytes(key.public, message, signature)).toBe(true);
      });

      it("verifyBytes rejects a flipped bit anywhere in the signature", () => {
        for (const byte of [0, 31, 32, 63]) {
          for (const mask of [0x01, 0x80]) {
            expect(verifyBytes(key.public, message, flipBit(signature, byte, mask))).toBe(false);
          }
        }
      });

      it("verifyBytes rejects a signature one byte short or long", () => {
        expect(verifyBytes(key.public, message, signature.subarray(0, 63))).toBe(false);
        expect(verifyBytes(key.public, message, Buffer.concat([signature, Buffer.from([0])]))).toBe(
          false,
        );
        expect(verifyBytes(key.public, message, Buffer.alloc(0))).toBe(false);
      });

      it("verifyBytes rejects a changed message and another key", () => {
        const changed =
          message.length > 0 ? flipBit(message, message.length - 1) : Buffer.from([0]);
        expect(verifyBytes(key.public, changed, signature)).toBe(false);
        const other = RFC8032.find((o) => o.name !== v.name)!;
        expect(
          verifyBytes(publicKeyFromRaw("other", unhex(other.public)), message, signature),
        ).toBe(false);
      });

      it("keeps the signature through a private PEM round trip", () => {
        const loaded = signingKeyFromPem(key.public.name, privateKeyPem(key));
        expect(hex(loaded.public.raw)).toBe(v.public);
        expect(hex(signBytes(loaded, message))).toBe(v.signature);
      });
    });
  }
});

// golang.org/x/mod/sumdb/note/note_test.go (TestNewVerifier, TestNewSigner, TestSign,
// TestVerifierList, TestOpen): the PeterNeumann / EnochRoot keys and signed note.
const PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const NOTE_TEXT =
  "If you think cryptography is the answer to your problem,\n" +
  "then you don't know what your problem is.\n";
const PETER_SIG =
  "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG =
  "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

/** The sumdb signer key "PRIVATE+KEY+<name>+<id>+base64(0x01 || seed)" as our SigningKey. */
function signerFromSumdbKey(skey: string, vkey: PublicKey): SigningKey {
  // Four '+'-separated fields, then the base64 key, which may itself contain '+'.
  const fields = skey.split("+");
  expect(fields.slice(0, 4)).toEqual(["PRIVATE", "KEY", vkey.name, vkey.keyId]);
  const bytes = Buffer.from(fields.slice(4).join("+"), "base64");
  expect(bytes.length).toBe(33);
  expect(bytes[0]).toBe(0x01);
  return { privateKey: privateKeyFromSeed(bytes.subarray(1), vkey.raw), public: vkey };
}

describe("C2SP signed-note keys", () => {
  it("parses the published verifier keys with their key ids", () => {
    const peter = parseVerifierKey(PETER_VKEY);
    expect(peter.name).toBe("PeterNeumann");
    expect(peter.keyId).toBe("c74f20a3");
    expect(peter.raw.length).toBe(32);
    expect(peter.verifierKey).toBe(PETER_VKEY);
    expect(hex(keyIdFor("PeterNeumann", peter.raw))).toBe("c74f20a3");

    const enoch = parseVerifierKey(ENOCH_VKEY);
    expect(enoch.name).toBe("EnochRoot");
    expect(enoch.keyId).toBe("af0cfe78");
    expect(enoch.verifierKey).toBe(ENOCH_VKEY);
  });

  it("computes the key id as SHA-256(name || 0x0A || 0x01 || key)[:4]", () => {
    const peter = parseVerifierKey(PETER_VKEY);
    const expected = createHash("sha256")
      .update(Buffer.concat([Buffer.from("PeterNeumann\n\x01", "latin1"), peter.raw]))
      .digest()
      .subarray(0, 4);
    expect(hex(keyIdFor(peter.name, peter.raw))).toBe(hex(expected));
  });

  it("the published signer key's seed belongs to the published verifier key", () => {
    const peter = parseVerifierKey(PETER_VKEY);
    const signer = signerFromSumdbKey(PETER_SKEY, peter);
    expect(hex(rawPublicOf(signer.privateKey))).toBe(hex(peter.raw));
  });

  it("rejects a wrong key id, a wrong algorithm, a wrong key length and missing parts", () => {
    const bad = [
      "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", // key id off by one
      "PeterNeumann+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
      "PeterNeuman+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", // other name, same id
      // From TestNewVerifier: wrong-length key and unknown algorithm, each with a matching id.
      "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
      "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
      "PeterNeumann+c74f20a3",
      "c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
      "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
      "Peter+Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
      "",
    ];
    for (const k of bad) expect(() => parseVerifierKey(k), k).toThrow();
  });

  it("rejects every proper substring and every one-character change (TestNewVerifier)", () => {
    const b = Buffer.from(PETER_VKEY, "latin1");
    for (let i = 0; i <= b.length; i++) {
      for (let j = i + 1; j <= b.length; j++) {
        if (i === 0 && j === b.length) continue;
        const k = b.subarray(i, j).toString("latin1");
        expect(() => parseVerifierKey(k), k).toThrow();
      }
    }
    for (let i = 0; i < b.length; i++) {
      const changed = Buffer.from(b);
      changed[i] = (changed[i] as number) + 1;
      const mangled = changed.toString("latin1");
      expect(() => parseVerifierKey(mangled), mangled).toThrow();
    }
  });

  it("publicKeyFromRaw refuses bad names and key lengths", () => {
    const raw = parseVerifierKey(PETER_VKEY).raw;
    expect(() => publicKeyFromRaw("", raw)).toThrow(/name/);
    expect(() => publicKeyFromRaw("a b", raw)).toThrow(/name/);
    expect(() => publicKeyFromRaw("a+b", raw)).toThrow(/name/);
    expect(() => publicKeyFromRaw("ok", raw.subarray(0, 31))).toThrow(/32 bytes/);
  });
});

describe("C2SP signed notes (sumdb/note known answers)", () => {
  const peter = parseVerifierKey(PETER_VKEY);
  const enoch = parseVerifierKey(ENOCH_VKEY);
  const published = `${NOTE_TEXT}\n${PETER_SIG}${ENOCH_SIG}`;

  it("signNote with the published signer key reproduces the published note exactly", () => {
    const signer = signerFromSumdbKey(PETER_SKEY, peter);
    expect(signNote(NOTE_TEXT, [signer])).toBe(`${NOTE_TEXT}\n${PETER_SIG}`);
  });

  it("parses the published note: text, names, key ids, 64-byte signatures", () => {
    const note = parseNote(published);
    expect(note.text).toBe(NOTE_TEXT);
    expect(note.signatures.map((s) => [s.name, s.keyId, s.signature.length])).toEqual([
      ["PeterNeumann", "c74f20a3", 64],
      ["EnochRoot", "af0cfe78", 64],
    ]);
  });

  it("verifyNote validates the published signatures against the published keys", () => {
    const note = parseNote(published);
    const both = verifyNote(note, [peter, enoch]);
    expect(both.valid.map((k) => k.name)).toEqual(["PeterNeumann", "EnochRoot"]);
    expect(both.invalid).toEqual([]);
    expect(both.unknown).toEqual([]);

    // One trusted key: the other signature is unknown, not invalid (TestOpen).
    const one = verifyNote(note, [peter]);
    expect(one.valid.map((k) => k.name)).toEqual(["PeterNeumann"]);
    expect(one.invalid).toEqual([]);
    expect(one.unknown.map((s) => `${s.name}+${s.keyId}`)).toEqual(["EnochRoot+af0cfe78"]);

    const none = verifyNote(note, []);
    expect(none.valid).toEqual([]);
    expect(none.unknown.map((s) => s.name)).toEqual(["PeterNeumann", "EnochRoot"]);
  });

  it("a tampered note text makes a known key's signature invalid", () => {
    for (const text of [
      NOTE_TEXT.replace("cryptography", "cryptograpy"),
      NOTE_TEXT.replace("is.\n", "is!\n"),
      `x${NOTE_TEXT}`,
      `${NOTE_TEXT}more\n`,
    ]) {
      const result = verifyNote(parseNote(`${text}\n${PETER_SIG}`), [peter]);
      expect(result.valid).toEqual([]);
      expect(result.invalid.map((s) => s.name)).toEqual(["PeterNeumann"]);
    }
  });

  it("a corrupted signature from a known key is invalid (TestOpen 'ABCD' insertion)", () => {
    const corrupted = `${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`;
    const result = verifyNote(parseNote(`${NOTE_TEXT}\n${corrupted}`), [peter]);
    expect(result.valid).toEqual([]);
    expect(result.invalid.map((s) => s.name)).toEqual(["PeterNeumann"]);
  });

  it("a signature matching a trusted key's name or id but not both is unknown", () => {
    const misnamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego");
    const wrongId = PETER_SIG.replace("x08g", "xxxx");
    for (const line of [misnamed, wrongId]) {
      const result = verifyNote(parseNote(`${NOTE_TEXT}\n${line}`), [peter]);
      expect(result.valid).toEqual([]);
      expect(result.invalid).toEqual([]);
      expect(result.unknown).toHaveLength(1);
    }
  });

  it("a signature by an untrusted key is reported unknown", () => {
    const stranger = generateSigningKey("PeterNeumann");
    const result = verifyNote(parseNote(signNote(NOTE_TEXT, [stranger])), [peter, enoch]);
    expect(result.valid).toEqual([]);
    expect(result.invalid).toEqual([]);
    expect(result.unknown.map((s) => s.name)).toEqual(["PeterNeumann"]);
    expect(result.unknown[0]!.keyId).toBe(stranger.public.keyId);
  });

  it("rejects malformed notes (TestOpen bad messages)", () => {
    const bad = [
      NOTE_TEXT,
      `${NOTE_TEXT}\n`,
      `${NOTE_TEXT}\n${PETER_SIG.slice(0, -1)}`,
      `${NOTE_TEXT}\n\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
      `${NOTE_TEXT}\n${PETER_SIG}Unexpected line.\n`,
      `${NOTE_TEXT}\n- PeterNeumann ${PETER_SIG.slice(15)}`,
    ];
    for (const note of bad) expect(() => parseNote(note), JSON.stringify(note)).toThrow();
  });

  it("never validates a note whose text carries a control character", () => {
    // The spec forbids control characters other than newline; whether or not parseNote
    // refuses the note, the signature over the original text must not validate it.
    let valid: PublicKey[] = [];
    try {
      valid = verifyNote(parseNote(`\x01${NOTE_TEXT}\n${PETER_SIG}`), [peter]).valid;
    } catch {
      valid = [];
    }
    expect(valid).toEqual([]);
  });

  it("refuses to sign text without a final newline", () => {
    const signer = signerFromSumdbKey(PETER_SKEY, peter);
    expect(() => signNote(NOTE_TEXT.slice(0, -1), [signer])).toThrow(/newline/);
  });

  it("signs with several keys, one line each, in order", () => {
    const a = generateSigningKey("a.example/one");
    const b = generateSigningKey("b.example/two");
    const note = parseNote(signNote("hello\n\nworld\n", [a, b]));
    expect(note.text).toBe("hello\n\nworld\n");
    const result = verifyNote(note, [b.public, a.public]);
    expect(result.valid.map((k) => k.name)).toEqual(["a.example/one", "b.example/two"]);
  });
});

describe("private key PEM", () => {
  it("round-trips a generated key, keeping its name, key id and verifier key", () => {
    const key = generateSigningKey("audit.example/signer-1");
    const pem = privateKeyPem(key);
    expect(pem.split("\n")[0]).toBe("# audit-agent signing key: audit.example/signer-1");
    expect(pem).toContain("-----BEGIN PRIVATE KEY-----");
    const name = /^# audit-agent signing key: (\S+)$/m.exec(pem)?.[1];
    expect(name).toBe("audit.example/signer-1");
    const loaded = signingKeyFromPem(name as string, pem);
    expect(loaded.public.name).toBe(key.public.name);
    expect(loaded.public.keyId).toBe(key.public.keyId);
    expect(loaded.public.verifierKey).toBe(key.public.verifierKey);
    expect(hex(loaded.public.raw)).toBe(hex(key.public.raw));
    const msg = Buffer.from("round trip");
    expect(verifyBytes(key.public, msg, signBytes(loaded, msg))).toBe(true);
    expect(hex(signBytes(loaded, msg))).toBe(hex(signBytes(key, msg)));
  });

  it("the verifier key of any key parses back to the same key, '+' in its base64 or not", () => {
    // Standard base64 may contain '+', the verifier key's separator: TEST 1's key does.
    const test1 = publicKeyFromRaw("rfc8032.example/test1", unhex(RFC8032[0].public));
    expect(test1.verifierKey.split("+").length).toBeGreaterThan(3);
    const keys = [
      ...RFC8032.map((v) => publicKeyFromRaw("rfc8032.example/key", unhex(v.public))),
      ...Array.from({ length: 64 }, (_, i) => generateSigningKey(`audit.example/k${i}`).public),
    ];
    for (const key of keys) {
      const parsed = parseVerifierKey(key.verifierKey);
      expect(parsed.name, key.verifierKey).toBe(key.name);
      expect(parsed.keyId, key.verifierKey).toBe(key.keyId);
      expect(hex(parsed.raw), key.verifierKey).toBe(hex(key.raw));
      expect(parsed.verifierKey).toBe(key.verifierKey);
    }
  });

  it("refuses text that is not a PEM private key, and non-Ed25519 keys", () => {
    expect(() => signingKeyFromPem("k", "not a key")).toThrow(
      expect.objectContaining({ code: "KEY_BAD_PRIVATE" }),
    );
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    expect(() => signingKeyFromPem("k", ec)).toThrow(
      expect.objectContaining({ code: "KEY_BAD_PRIVATE" }),
    );
  });
});

// c2sp.org/tlog-checkpoint (C2SP/C2SP tlog-checkpoint.md): the example checkpoint.
const SPEC_CHECKPOINT_TEXT =
  "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
const SPEC_CHECKPOINT_SIG =
  "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

describe("tlog checkpoints", () => {
  it("parses the spec's example checkpoint and writes it back byte for byte", () => {
    const c = parseCheckpointText(SPEC_CHECKPOINT_TEXT);
    expect(c.origin).toBe("example.com/behind-the-sofa");
    expect(c.size).toBe(20852163);
    expect(c.rootHash.toString("base64")).toBe("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=");
    expect(c.rootHash.length).toBe(32);
    expect(c.extensions).toEqual([]);
    expect(checkpointText(c)).toBe(SPEC_CHECKPOINT_TEXT);
  });

  it("parses the spec's signed example as a note with one (unknown) signature", () => {
    const note = parseNote(`${SPEC_CHECKPOINT_TEXT}\n${SPEC_CHECKPOINT_SIG}`);
    expect(note.text).toBe(SPEC_CHECKPOINT_TEXT);
    expect(note.signatures).toHaveLength(1);
    expect(note.signatures[0]!.name).toBe("example.com/behind-the-sofa");
    // base64 "Az3g rlgt..." → key id bytes 03 3d e0 ae.
    expect(note.signatures[0]!.keyId).toBe("033de0ae");
    expect(note.signatures[0]!.signature.length).toBe(64);
    expect(verifyNote(note, [parseVerifierKey(PETER_VKEY)]).unknown).toHaveLength(1);
  });

  it("round-trips checkpoints with and without extension lines", () => {
    const root = createHash("sha256").update("root").digest();
    const cases: Checkpoint[] = [
      {
        origin: "audit.example/chain-a",
        size: 0,
        rootHash: createHash("sha256").digest(),
        extensions: [],
      },
      { origin: "audit.example/chain-a", size: 1, rootHash: root, extensions: [] },
      { origin: "o", size: 9007199254740991, rootHash: root, extensions: ["ext one", "— two"] },
    ];
    for (const c of cases) {
      const text = checkpointText(c);
      expect(text.endsWith("\n")).toBe(true);
      const back = parseCheckpointText(text);
      expect(back.origin).toBe(c.origin);
      expect(back.size).toBe(c.size);
      expect(hex(back.rootHash)).toBe(hex(c.rootHash));
      expect(back.extensions).toEqual(c.extensions);
      expect(checkpointText(back)).toBe(text);
    }
  });

  it("a signed checkpoint verifies and its parsed text is the checkpoint", () => {
    const key = generateSigningKey("audit.example/chain-a");
    const c: Checkpoint = {
      origin: "audit.example/chain-a",
      size: 42,
      rootHash: createHash("sha256").update("x").digest(),
      extensions: [],
    };
    const note = parseNote(signNote(checkpointText(c), [key]));
    expect(verifyNote(note, [key.public]).valid).toHaveLength(1);
    expect(parseCheckpointText(note.text).size).toBe(42);
  });

  it("rejects malformed checkpoints", () => {
    const origin = "example.com/behind-the-sofa";
    const root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
    const short = Buffer.alloc(31, 7).toString("base64");
    const long = Buffer.alloc(33, 7).toString("base64");
    const bad = [
      // Tree size: not a canonical decimal.
      `${origin}\n12a\n${root}\n`,
      `${origin}\n-1\n${root}\n`,
      `${origin}\n012\n${root}\n`,
      `${origin}\n1e3\n${root}\n`,
      `${origin}\n0x10\n${root}\n`,
      `${origin}\n 5\n${root}\n`,
      `${origin}\n5.0\n${root}\n`,
      `${origin}\n\n${root}\n`,
      // Root hash: bad base64, non-canonical base64, or not 32 bytes.
      `${origin}\n5\nnot base64 at all!\n`,
      `${origin}\n5\n${root.replace("/", "_")}\n`,
      `${origin}\n5\n${root.slice(0, -1)}\n`,
      `${origin}\n5\n${short}\n`,
      `${origin}\n5\n${long}\n`,
      `${origin}\n5\n\n`,
      // Missing lines, empty origin, no final newline.
      `${origin}\n5\n`,
      `\n5\n${root}\n`,
      `${origin}\n5\n${root}`,
      "",
    ];
    for (const text of bad) {
      expect(() => parseCheckpointText(text), JSON.stringify(text)).toThrow(
        expect.objectContaining({ code: "CHECKPOINT_MALFORMED" }),
      );
    }
  });
});

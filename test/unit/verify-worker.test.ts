import { describe, expect, it } from "vitest";
import { genesisHash } from "../../agent/integrity/format.js";
import { manifestHash } from "../../agent/integrity/manifest.js";
import { leavesSource } from "../../agent/integrity/merkle.js";
import { generateSigningKey } from "../../agent/integrity/signing.js";
import type { ChainData } from "../../agent/verify/types.js";
import { verifyChain } from "../../agent/verify/verify-chain.js";
import { linkRecords, sealBatch } from "../helpers/sample-log.js";

/**
 * The verifier hashes large chains on a worker thread and, when a chain is stored whole and
 * in order, takes its tree roots from there too. On a synthetic signed chain, clean and
 * tampered in each way the checks tell apart, both paths must report exactly the same.
 */

const RECORDS = 3000;
const BATCH = 250;
const key = generateSigningKey("test");
const chainId = "worker-test";

function buildChain(records = RECORDS, received = (_i: number) => "1700000000000000000") {
  const { lines, leaves } = linkRecords(
    chainId,
    Array.from({ length: records }, (_, i) => ({
      record: `{"logRecord":{"body":{"stringValue":"event ${i}"},"timeUnixNano":"${1_700_000_000_000_000_000n + BigInt(i)}"}}`,
      received: received(i),
    })),
  );
  const root = leavesSource(leaves);
  const manifests: { manifest: unknown; checkpoint: string; location: string }[] = [];
  let prevManifest = genesisHash(chainId).toString("hex");
  for (let first = 0; first < records; first += BATCH) {
    const last = Math.min(records, first + BATCH) - 1;
    const { signed, checkpoint } = sealBatch({
      chainId,
      index: manifests.length,
      first,
      last,
      leaves,
      root,
      prevManifest,
      key,
      createdAt: "2026-01-01T00:00:00.000Z",
    });
    prevManifest = manifestHash(signed);
    manifests.push({
      manifest: JSON.parse(signed),
      checkpoint,
      location: `manifests:${manifests.length + 1}`,
    });
  }
  return { records: lines, manifests };
}

const chain = buildChain();
const lastCheckpoint = chain.manifests.at(-1)?.checkpoint as string;

const TAMPERINGS: Record<string, (records: string[]) => void> = {
  clean: () => {},
  "a record edited": (r) => {
    r[1234] = (r[1234] as string).replace("event 1234", "event 4321");
  },
  "two records swapped": (r) => {
    [r[700], r[701]] = [r[701] as string, r[700] as string];
  },
  "a record copied": (r) => {
    r.splice(900, 0, r[899] as string);
  },
  "a different copy inserted": (r) => {
    r.splice(900, 0, (r[899] as string).replace("event 899", "event 0"));
  },
  "a record removed": (r) => {
    r.splice(2000, 1);
  },
  "a record respelled": (r) => {
    r[10] = (r[10] as string).replace('"seq":', '"seq" :');
  },
  "the last batch removed": (r) => {
    r.splice(RECORDS - BATCH);
  },
};

describe("verifyChain: the worker thread gives the same report as hashing in line", () => {
  for (const [name, tamper] of Object.entries(TAMPERINGS)) {
    it(name, async () => {
      const records = [...chain.records];
      tamper(records);
      const data = (): ChainData => ({
        chainId,
        records: records.map((text, i) => ({ text, location: `records:${i + 1}` })),
        manifests: chain.manifests.slice(0, name === "the last batch removed" ? -1 : undefined),
        findings: [],
        notes: [],
      });
      const known = [{ note: lastCheckpoint, location: "saved" }];
      const inLine = await verifyChain(data(), {
        trusted: [key.public],
        knownCheckpoints: known,
        hashOnWorker: false,
      });
      const onWorker = await verifyChain(data(), {
        trusted: [key.public],
        knownCheckpoints: known,
        hashOnWorker: true,
      });
      expect(onWorker).toEqual(inLine);
      if (name === "clean") {
        expect(inLine.findings).toEqual([]);
        expect(inLine.summary.records).toBe(RECORDS);
        expect(inLine.summary.checkpoints).toBe(chain.manifests.length + 1);
      } else {
        expect(inLine.findings.length).toBeGreaterThan(0);
      }
    });
  }
});

it("the summary's receive times are the earliest and latest by value", async () => {
  // By value, not as text: the leading zeros and the shorter number must not fool it.
  const times = [
    "1700000000000000005",
    "0001600000000000000000",
    "not a time",
    "999000000000000000",
    "1800000000000000000",
  ];
  const small = buildChain(8, (i) => times[i % times.length] as string);
  // Stored in order (times read while scanning), and with a copy (read again from the
  // records kept): the same range.
  for (const records of [small.records, [...small.records, small.records[7] as string]]) {
    const { summary, findings } = await verifyChain(
      {
        chainId,
        records: records.map((text, i) => ({ text, location: `records:${i + 1}` })),
        manifests: small.manifests,
        findings: [],
        notes: [],
      },
      { trusted: [key.public], knownCheckpoints: [] },
    );
    expect(findings.map((f) => f.category)).toEqual(records.length > 8 ? ["duplicate"] : []);
    expect(summary.firstReceived).toBe(new Date(999000000000).toISOString());
    expect(summary.lastReceived).toBe(new Date(1800000000000).toISOString());
  }
});

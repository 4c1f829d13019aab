import type { ChainReader } from "../exporters/source.js";
import type { Finding } from "./types.js";

/**
 * Whether there is anything to verify. A source is read back because the agent wrote to it,
 * so an empty answer is not a clean one: a chain whose every record and manifest is gone
 * (its directory or prefix kept), and a source that holds no chain at all, are findings.
 * (A chain removed with its directory is only known from a checkpoint or a state file kept
 * elsewhere: verify.ts reports that as `truncated`.)
 */

/** A chain reader that counts the manifests it hands over. */
export function countingManifests(chain: ChainReader): {
  reader: ChainReader;
  manifests: () => number;
} {
  let manifests = 0;
  const reader: ChainReader = {
    chainId: chain.chainId,
    records: (problems, fromSeq) => chain.records(problems, fromSeq),
    // Every optional method is passed on: a wrapper that dropped one would slow the reader.
    ...(chain.recordBytes
      ? {
          recordBytes: (problems, fromSeq) =>
            (chain.recordBytes as NonNullable<ChainReader["recordBytes"]>).call(
              chain,
              problems,
              fromSeq,
            ),
        }
      : {}),
    async *manifests(problems) {
      for await (const m of chain.manifests(problems)) {
        manifests++;
        yield m;
      }
    },
  };
  return { reader, manifests: () => manifests };
}

/** The finding for a chain that holds no records and no manifests. */
export function emptyChainFinding(sourceDescription: string, chainId: string): Finding {
  return {
    category: "missing",
    chainId,
    seq: 0,
    manifest: 0,
    location: `${sourceDescription} chain ${chainId}`,
    detail:
      "the chain holds no records and no manifests: every segment or object of it was removed (its directory or prefix is left), or nothing was ever delivered to it",
  };
}

/** The finding for a source that holds no chain, when nothing else explains why. */
export function noChainFinding(sourceDescription: string): Finding {
  return {
    category: "missing",
    chainId: "",
    location: sourceDescription,
    detail:
      "the source holds no audit chain: every chain was removed, the source is not the one the agent writes to, or nothing was ever delivered to it",
  };
}

// `node bench/grpc-flood.mjs [--streams 400] [--mib 3.9]`: what unauthenticated gRPC clients
// that start a large message and never finish it cost the agent (issue 14: they must stay
// within 64 MiB of extra RSS). The agent (the built CLI, its shebang's flags) requires a
// bearer token on gRPC; the flood opens raw HTTP/2 calls without one, each writing the
// start of a message of the given size, never ending it (one connection each, or
// --per-connection N). Prints
// the agent's RSS before, during (peak over 5 s) and after, and whether the calls were
// answered UNAUTHENTICATED.
import { startFlood } from "./grpc-flood-client.mjs";
import { startAgent } from "./agent-proc.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const STREAMS = arg("--streams", 400);
const MIB = arg("--mib", 3.9);
const PER_CONNECTION = arg("--per-connection", 1);

const agent = await startAgent({ grpcToken: "bench-token-0123456789abcdef" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  await sleep(1000);
  const before = agent.sample().rssMiB;
  const flood = startFlood(agent.grpc, {
    streams: STREAMS,
    bytes: Math.floor(MIB * 1024 * 1024),
    perConnection: PER_CONNECTION,
  });
  let peak = before;
  for (let t = 0; t < 20; t++) {
    await sleep(250);
    peak = Math.max(peak, agent.sample().rssMiB);
  }
  flood.close();
  const { answered, unauthenticated } = flood.counts;
  await sleep(1000);
  const after = agent.sample().rssMiB;
  const extra = peak - before;
  console.log(
    JSON.stringify({
      streams: STREAMS,
      mib: MIB,
      before,
      peak,
      after,
      extra,
      answered,
      unauthenticated,
    }),
  );
  console.log(
    `${STREAMS} unauthenticated gRPC calls of ${MIB} MiB never finished: RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MiB (+${extra.toFixed(0)} MiB; target ≤ 64), ${unauthenticated} of them answered UNAUTHENTICATED, ${answered} answered in all`,
  );
} finally {
  await agent.stop();
  agent.cleanup();
}

/** Seeded randomness for property tests, so a failing case can be replayed by its seed. */

import { createHash, randomInt } from "node:crypto";

/** mulberry32: small, fast, seedable; good enough to explore shapes reproducibly. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    chance: (p: number) => next() < p,
    pick: <T>(xs: readonly T[]): T => xs[int(xs.length)] as T,
    u32: () => (next() * 4294967296) >>> 0,
    bytes: (n: number) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = int(256);
      return b;
    },
  };
}
export type Rng = ReturnType<typeof prng>;

/** The environment variable that replays a run of the tests that draw a fresh seed. */
export const SEED_ENV = "AUDIT_TEST_SEED";

export interface TestSeed {
  seed: number;
  /** The seed as 0x-prefixed hex, as printed. */
  hex: string;
  /** How to replay: `AUDIT_TEST_SEED=0x… npx vitest run <file>`. */
  replay: string;
  /** A generator for draws made in a fixed order (one stream per independent actor: `deriveSeed`). */
  rng: Rng;
}

/**
 * The seed for a test whose random choices (timings, request shapes) should differ from run
 * to run: AUDIT_TEST_SEED when set (decimal or 0x-hex), else a fresh one. It is printed at
 * once with the command that replays it; put `hex` in the test's name, as the property tests
 * with a fixed seed do, so a failure names its seed.
 */
export function testSeed(file: string): TestSeed {
  const env = process.env[SEED_ENV];
  let seed: number;
  if (env !== undefined && env.trim() !== "") {
    seed = Number(env);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
      throw new Error(`${SEED_ENV}=${env}: expected an integer in [0, 2^32), e.g. 0x1234abcd`);
  } else {
    seed = randomInt(0x1_0000_0000);
  }
  const hex = `0x${seed.toString(16).padStart(8, "0")}`;
  const replay = `${SEED_ENV}=${hex} npx vitest run ${file}`;
  console.log(`[seed] ${file}: ${hex} (replay: ${replay})`);
  return { seed, hex, replay, rng: prng(seed) };
}

/**
 * A seed for one independent stream derived from `seed` and `keys` (an iteration, a client
 * number): its draws do not depend on how concurrent streams interleave, so a replay gives
 * every request the same shape even when their timing differs.
 */
export function deriveSeed(seed: number, ...keys: number[]): number {
  return createHash("sha256")
    .update(`${seed}/${keys.join("/")}`)
    .digest()
    .readUInt32BE(0);
}

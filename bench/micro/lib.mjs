// The micro benchmarks' harness: time functions for a fixed wall-clock budget, report
// ops/s, ns/op and MB/s, and print alternatives measured in the same process side by side.
// Each script runs alone (`node bench/micro/<name>.mjs`, after `npm run build`) and prints a
// Markdown table; with `--json` it prints its result for bench/micro/run.mjs instead.
//
// This VM's speed drifts by 15–25 % within minutes (bench/ANALYSIS.md), so the alternatives
// of a group are timed in interleaved rounds (A B C, A B C, …) and each reports its median
// round: a slow moment then costs every alternative alike instead of whichever ran in it.

/** Wall-clock budget per case in ms (MICRO_MS overrides a script's own). */
export const CASE_MS = Number(process.env.MICRO_MS ?? 400);
const ROUNDS = 5;

/** Calls fn (sync or async) for about `ms` and at least `minCalls` times; returns calls/s. */
async function rate(fn, isAsync, ms, minCalls = 1) {
  let calls = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms || calls < minCalls) {
    if (isAsync) await fn();
    else fn();
    calls++;
    t = performance.now();
  }
  return calls / ((t - t0) / 1000);
}

/**
 * A set of groups of alternatives. `group(label)` starts a group (its first case is the
 * baseline); `add(name, fn, { ops, bytes })` adds a case whose every call does `ops`
 * operations over `bytes` bytes; `run()` times them all.
 */
export function suite(
  title,
  { op = "op", ops: opsName = `${op}s`, bytesOf = "", ms: suiteMs = CASE_MS } = {},
) {
  const groups = [];
  const notes = [];
  return {
    group(label) {
      groups.push({ label, cases: [] });
    },
    add(name, fn, { ops = 1, bytes = 0 } = {}) {
      if (groups.length === 0) groups.push({ label: null, cases: [] });
      groups[groups.length - 1].cases.push({ name, fn, ops, bytes });
    },
    note(text) {
      notes.push(text);
    },
    async run(ms = process.env.MICRO_MS ? CASE_MS : suiteMs) {
      const rows = [];
      for (const g of groups) {
        if (g.label !== null) rows.push({ group: g.label });
        for (const c of g.cases) {
          const first = c.fn();
          c.isAsync = first instanceof Promise;
          if (c.isAsync) await first;
          // Warm-up, so the rounds time optimized code: slow calls (a huge group) get 5.
          await rate(c.fn, c.isAsync, ms / 5, 5);
          c.rates = [];
        }
        for (let round = 0; round < ROUNDS; round++)
          for (const c of g.cases) c.rates.push(await rate(c.fn, c.isAsync, ms / ROUNDS));
        let baseline = null;
        for (const c of g.cases) {
          const calls = c.rates.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)];
          const opsPerSec = calls * c.ops;
          baseline ??= opsPerSec;
          rows.push({
            name: c.name,
            opsPerSec,
            nsPerOp: 1e9 / opsPerSec,
            mbPerSec: c.bytes > 0 ? (calls * c.bytes) / 1e6 : null,
            vs: opsPerSec / baseline,
          });
        }
        if (!process.argv.includes("--json")) process.stderr.write(".");
      }
      return { title, op, opsName, bytesOf, rows, notes };
    },
  };
}

const fmt = (n, d = 0) =>
  n === null || n === undefined || !Number.isFinite(n)
    ? "–"
    : Number(n).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

/** A suite's result as a Markdown section: title, table, notes. */
export function markdown({ title, op, opsName, bytesOf, rows, notes }) {
  const lines = [
    `### ${title}`,
    "",
    `| case | ${opsName}/s | ns/${op} | MB/s${bytesOf ? ` (${bytesOf})` : ""} | vs first of group |`,
    "| --- | ---: | ---: | ---: | ---: |",
    ...rows.map((r) =>
      r.group !== undefined
        ? `| **${r.group}** | | | | |`
        : `| ${r.name} | ${fmt(r.opsPerSec)} | ${fmt(r.nsPerOp, r.nsPerOp < 100 ? 1 : 0)} | ${fmt(r.mbPerSec, 1)} | ${fmt(r.vs, 2)}× |`,
    ),
  ];
  if (notes.length > 0) lines.push("", ...notes.map((n) => `- ${n}`));
  return lines.join("\n");
}

/** Times the suite and prints it: JSON for run.mjs, otherwise the Markdown table. */
export async function report(s) {
  const result = await s.run();
  if (process.argv.includes("--json")) process.stdout.write(JSON.stringify(result));
  else process.stdout.write(`\n${markdown(result)}\n`);
}

/** Throws unless a and b hold the same bytes (a benchmark compares equal work only). */
export function assertSameBytes(a, b, what) {
  if (Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0)
    throw new Error(`${what}: the alternatives disagree; the comparison would be meaningless`);
}

const SECTION = "## Micro benchmarks\n";

/** The "Micro benchmarks" section of RESULTS.md's text (up to the next section), or "". */
export function microSection(text) {
  const start = text.indexOf(SECTION);
  if (start < 0) return "";
  const next = text.indexOf("\n## ", start + 1);
  return next >= 0 ? text.slice(start, next + 1) : text.slice(start);
}

/** Puts `section` in place of the Micro benchmarks section, or before "## History". */
export function replaceSection(text, section) {
  const old = microSection(text);
  const atEnd = old !== "" && text.endsWith(old);
  const body = `${section.trimEnd()}\n${atEnd ? "" : "\n"}`;
  if (old !== "") return text.replace(old, () => body);
  const history = text.indexOf("## History\n");
  if (history >= 0) return `${text.slice(0, history)}${body}${text.slice(history)}`;
  return `${text.trimEnd()}\n\n${section.trimEnd()}\n`;
}

/** Markdown as `prettier --write` leaves it: RESULTS.md is checked by `npm run lint`. */
export async function formatMarkdown(text, path) {
  const prettier = await import("prettier");
  const options = (await prettier.resolveConfig(path)) ?? {};
  return prettier.format(text, { ...options, filepath: path });
}

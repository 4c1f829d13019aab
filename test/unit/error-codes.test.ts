import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../../agent/common/error-codes.js";
import { AgentError } from "../../agent/common/errors.js";
import { refusalFor } from "../../agent/receivers/otlp/outcome.js";
import {
  CATALOGUE_PATH,
  DOC_PATH,
  loadCatalogue,
  renderErrorsDoc,
} from "../../scripts/error-codes-doc.mjs";

/**
 * The error-code catalogue (agent/common/error-codes.ts), the codes the agent raises, and
 * docs/errors.md must agree. After changing the catalogue: node scripts/error-codes-doc.mjs
 */

const ROOT = join(import.meta.dirname, "../..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const catalogue: Record<string, { summary: string; fix: string }> = ERROR_CODES;
const codes = Object.keys(catalogue);

const sources = (readdirSync(join(ROOT, "agent"), { recursive: true }) as string[])
  .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
  .map((f) => join("agent", f))
  .filter((f) => f !== CATALOGUE_PATH)
  .sort()
  .map((path) => ({ path, text: read(path) }));

/** Every string literal passed as the code to `new AgentError(…)` or to a subclass's `super(…)`. */
function raisedCodes(): Map<string, string[]> {
  const raised = new Map<string, string[]>();
  const call = /(?:\bnew\s+AgentError|\bsuper)\s*\(\s*(["'`])([A-Z][A-Z0-9_]*)\1/g;
  for (const { path, text } of sources) {
    for (const m of text.matchAll(call)) {
      const line = text.slice(0, m.index).split("\n").length;
      const at = raised.get(m[2] as string) ?? [];
      at.push(`${path}:${line}`);
      raised.set(m[2] as string, at);
    }
  }
  return raised;
}

describe("error codes", () => {
  it("lists every code raised in agent/ in the catalogue", () => {
    const raised = raisedCodes();
    expect(raised.size).toBeGreaterThan(0);
    const missing = [...raised].filter(([code]) => !(code in catalogue));
    expect(
      missing.map(([code, at]) => `${code} (${at.join(", ")})`),
      `add these codes to ${CATALOGUE_PATH}`,
    ).toEqual([]);
  });

  it("lists no code that agent/ never uses", () => {
    const unused = codes.filter(
      (code) => !sources.some(({ text }) => new RegExp(`\\b${code}\\b`).test(text)),
    );
    expect(unused, `remove these codes from ${CATALOGUE_PATH}`).toEqual([]);
  });

  it("gives every code a short summary and fix", () => {
    for (const code of codes) {
      expect(code).toMatch(/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$/);
      const { summary, fix } = catalogue[code]!;
      for (const text of [summary, fix]) {
        expect(text.trim(), code).not.toBe("");
        expect(text, code).not.toMatch(/\n/);
        expect(text.length, `${code}: keep it under 200 characters`).toBeLessThanOrEqual(200);
      }
    }
  });

  it(`keeps ${DOC_PATH} in step with the catalogue`, () => {
    let doc = "";
    try {
      doc = read(DOC_PATH);
    } catch {
      // missing: fails below
    }
    expect(doc, `${DOC_PATH} is stale: run node scripts/error-codes-doc.mjs`).toBe(
      renderErrorsDoc(catalogue),
    );
    for (const code of codes) expect(doc).toContain(`| \`${code}\` |`);
  });

  it("generates the doc from the same catalogue the agent compiles", async () => {
    expect(await loadCatalogue()).toEqual(catalogue);
  });
});

describe("refusals by error code", () => {
  const refusal = (code: keyof typeof ERROR_CODES) => refusalFor(new AgentError(code, "why"), 7);

  it("answers each code the receivers know as OTLP says", () => {
    expect(refusal("RATE_LIMITED")).toEqual({
      http: 429,
      grpc: 8,
      message: "why",
      retryAfter: 1,
      reason: "rate_limited",
    });
    expect(refusal("WAL_FULL")).toEqual({
      http: 429,
      grpc: 8,
      message: "why",
      retryAfter: 7,
      reason: "buffer_full",
    });
    for (const code of ["OTLP_BAD_PROTOBUF", "OTLP_BAD_JSON"] as const)
      expect(refusal(code)).toEqual({ http: 400, grpc: 3, message: "why", reason: "malformed" });
    for (const code of ["WAL_WRITE_FAILED", "WAL_CLOSED", "FORWARD_QUEUE_FULL"] as const)
      expect(refusal(code)).toEqual({
        http: 503,
        grpc: 14,
        message: "why",
        retryAfter: 7,
        reason: "unavailable",
      });
  });

  it("answers any other error as internal", () => {
    const internal = { http: 500, grpc: 13, message: "internal error: why", reason: "internal" };
    expect(refusal("CONFIG_INVALID")).toEqual(internal);
    expect(refusalFor(new Error("why"), 7)).toEqual(internal);
    expect(refusalFor("why", 7)).toEqual(internal);
  });
});

#!/usr/bin/env node
// Writes docs/errors.md from the error-code catalogue in agent/common/error-codes.ts.
//
//   node scripts/error-codes-doc.mjs           # (re)write docs/errors.md
//   node scripts/error-codes-doc.mjs --check   # exit 1 if docs/errors.md is out of date
//
// It reads the TypeScript source (type-stripped with the typescript package), so no build is
// needed. test/unit/error-codes.test.ts renders the same text with renderErrorsDoc and fails
// when docs/errors.md differs.

import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(import.meta.dirname, "..");
export const CATALOGUE_PATH = "agent/common/error-codes.ts";
export const DOC_PATH = "docs/errors.md";

/**
 * The ERROR_CODES object of agent/common/error-codes.ts, read from the source.
 * @returns {Promise<Record<string, { summary: string, fix: string }>>}
 */
export async function loadCatalogue() {
  const { default: ts } = await import("typescript");
  const source = readFileSync(join(ROOT, CATALOGUE_PATH), "utf8");
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
  });
  const url = `data:text/javascript;base64,${Buffer.from(outputText).toString("base64")}`;
  return (await import(url)).ERROR_CODES;
}

/** @param {string} text */
const cell = (text) => text.replace(/\|/g, "\\|").replace(/\s*\n\s*/g, " ");

/**
 * docs/errors.md for a catalogue: one table row per code, sorted by code.
 * @param {Record<string, { summary: string, fix: string }>} codes
 * @returns {string}
 */
export function renderErrorsDoc(codes) {
  const rows = Object.keys(codes)
    .sort()
    .map((code) => `| \`${code}\` | ${cell(codes[code].summary)} | ${cell(codes[code].fix)} |`);
  return [
    "# Error codes",
    "",
    "<!-- Generated from agent/common/error-codes.ts by `node scripts/error-codes-doc.mjs`:",
    "     edit the catalogue, not this file. test/unit/error-codes.test.ts checks they agree. -->",
    "",
    "Every error the agent raises on purpose carries one of these stable codes, with a message",
    "naming the file, key or value at fault. The code is the error's `code` in the agent's logs;",
    "a failing `audit-agent` command prints `CODE: message`, or the message alone (exit status 2)",
    "for a usage, config or key problem. `audit-agent verify` exits 1 for findings, and 3, not 1,",
    "when a source cannot be read (`SOURCE_UNREADABLE`): see [verify.md](verify.md).",
    "",
    "| code | what happened | what to do |",
    "| --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes("--check");
  const codes = await loadCatalogue();
  const text = renderErrorsDoc(codes);
  const path = join(ROOT, DOC_PATH);
  if (check) {
    let current = "";
    try {
      current = readFileSync(path, "utf8");
    } catch {
      // missing: out of date
    }
    if (current !== text) {
      process.stderr.write(`${DOC_PATH} is out of date: run node scripts/error-codes-doc.mjs\n`);
      process.exit(1);
    }
  } else {
    writeFileSync(path, text);
    process.stdout.write(`wrote ${DOC_PATH} (${Object.keys(codes).length} codes)\n`);
  }
}

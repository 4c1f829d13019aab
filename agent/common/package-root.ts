import { existsSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The directory holding the agent's package.json. Sources run from `agent/` (tests) and
 * from `dist/agent/` (built), at different depths, so shipped assets such as `proto/` and
 * `config/` are located by walking up rather than by a fixed relative path.
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "proto"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot locate the otel-audit-agent package root");
    dir = parent;
  }
}

/**
 * The built JavaScript file of the module at `url` (a worker's entry, given as
 * `new URL("./x.js", import.meta.url)`): that file when running from dist/, its twin under
 * dist/ when running from the TypeScript sources (tests), where no .js file sits beside it.
 */
export function builtModule(url: URL): string {
  const here = fileURLToPath(url);
  if (existsSync(here)) return here;
  const root = packageRoot();
  return join(root, "dist", relative(root, here));
}

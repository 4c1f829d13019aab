import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
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

import { resolve } from "node:path";
import { AgentError } from "../common/errors.js";
import { fileSource } from "../exporters/file/reader.js";
import type { AuditSource } from "./types.js";

/**
 * `--source` specs, one per backend reader: `file:DIR` today. Each exporter plugin
 * contributes its reader here; the checks are shared.
 */
export function sourceFromSpec(spec: string): AuditSource {
  const colon = spec.indexOf(":");
  const scheme = colon < 0 ? "" : spec.slice(0, colon);
  const rest = spec.slice(colon + 1);
  switch (scheme) {
    case "file":
      if (!rest) break;
      return fileSource(resolve(rest));
  }
  throw new AgentError(
    "VERIFY_BAD_SOURCE",
    `unknown source "${spec}": use file:DIR (the file exporter's directory)`,
  );
}

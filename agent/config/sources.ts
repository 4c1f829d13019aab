import { resolve } from "node:path";
import { AgentError } from "../common/errors.js";
import { elasticsearchSourceFromSpec } from "../exporters/elasticsearch/factory.js";
import { fileSource } from "../exporters/file/reader.js";
import { lokiSourceFromSpec } from "../exporters/loki/factory.js";
import { s3SourceFromSpec } from "../exporters/s3/factory.js";
import type { AuditSource } from "../exporters/source.js";

/**
 * `--source` specs, one per backend reader: `file:DIR`, `loki:URL`, `s3://BUCKET/PREFIX`,
 * `es:URL/INDEX`. Each exporter plugin contributes its reader; the checks are shared.
 */
export function sourceFromSpec(spec: string): AuditSource {
  const colon = spec.indexOf(":");
  const scheme = colon < 0 ? "" : spec.slice(0, colon);
  const rest = spec.slice(colon + 1);
  switch (scheme) {
    case "file":
      if (!rest) break;
      return fileSource(resolve(rest));
    case "loki":
      return lokiSourceFromSpec(rest);
    case "s3":
      return s3SourceFromSpec(spec);
    case "es":
      return elasticsearchSourceFromSpec(rest);
  }
  throw new AgentError(
    "VERIFY_BAD_SOURCE",
    `unknown source "${spec}": use file:DIR, loki:URL, s3://BUCKET/PREFIX or es:URL/INDEX (or --config FILE --exporter ID)`,
  );
}

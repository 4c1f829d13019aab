import { AgentError } from "../common/errors.js";
import type { AuditSource } from "../exporters/source.js";
import { exporterDescriptors, oneOf } from "./exporter-registry.js";

/**
 * `verify --source` specs, one form per readable exporter plugin (its descriptor's
 * `source`): `file:DIR`, `loki:URL`, `s3://BUCKET/PREFIX`, `es:URL/INDEX`. Each plugin
 * contributes its reader; the checks are shared.
 */
export async function sourceFromSpec(spec: string): Promise<AuditSource> {
  const colon = spec.indexOf(":");
  const scheme = colon < 0 ? "" : spec.slice(0, colon);
  const rest = spec.slice(colon + 1);
  const forms = exporterDescriptors.flatMap((d) => (d.source ? [d.source] : []));
  const form = forms.find((f) => f.scheme === scheme);
  if (form && rest) return form.open(spec);
  throw new AgentError(
    "VERIFY_BAD_SOURCE",
    `unknown source "${spec}": use ${oneOf(forms.map((f) => f.usage))} (or --config FILE --exporter ID)`,
  );
}

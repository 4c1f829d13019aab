import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";

/** A client's TLS settings as configs spell them (exporters, witnesses). */
export interface ClientTlsConfig {
  ca_file?: string;
  cert_file?: string;
  key_file?: string;
  insecure_skip_verify?: boolean;
  min_version?: "1.2" | "1.3";
}

/** The connect options of an HTTP client pool for `tls` (files read now), or undefined. */
export function tlsConnectOptions(tls: ClientTlsConfig | undefined): ConnectionOptions | undefined {
  if (!tls) return undefined;
  return {
    ca: tls.ca_file ? readFileSync(tls.ca_file) : undefined,
    cert: tls.cert_file ? readFileSync(tls.cert_file) : undefined,
    key: tls.key_file ? readFileSync(tls.key_file) : undefined,
    rejectUnauthorized: !tls.insecure_skip_verify,
    minVersion: tls.min_version === "1.3" ? "TLSv1.3" : "TLSv1.2",
  };
}

import { createHash, X509Certificate } from "node:crypto";
import { sourceJson } from "../../integrity/format.js";
import type { ClientPeer } from "../api.js";
import type { SourceConfig } from "./config.js";

/**
 * Makes the canonical text of each request's `source` (docs/integrity-format.md §2.4) from
 * the configured facts and what the receiver saw of the client. Once per request, not per
 * record: every record of a request shares its sender. The text of the last request is
 * kept, so a client's requests on one connection reuse it.
 */
export class SourceStamp {
  private readonly fixed: Readonly<Record<string, string>>;
  private last: { address: string | null; certificate: Uint8Array | null; text: string | null } = {
    address: null,
    certificate: null,
    text: null,
  };
  /** Subject and fingerprint by certificate: clients are few, and parsing one costs ~50 µs. */
  private readonly certificates = new Map<string, CertificateFacts>();

  constructor(private readonly config: SourceConfig) {
    this.fixed = Object.fromEntries(Object.entries(config.attributes).filter(([, v]) => v !== ""));
  }

  /** The `source` text of a request from `peer`, or null when there is nothing to stamp. */
  render(peer: ClientPeer | null): string | null {
    const address = this.config.client_address ? (peer?.address() ?? null) : null;
    const certificate = this.config.client_certificate
      ? (peer?.verifiedCertificate() ?? null)
      : null;
    const last = this.last;
    if (address === last.address && sameBytes(certificate, last.certificate)) return last.text;
    const members: Record<string, string> = { ...this.fixed };
    if (address !== null) members["client.address"] = address;
    if (certificate !== null) {
      const facts = this.facts(certificate);
      members["tls.client.subject"] = facts.subject;
      members["tls.client.hash.sha256"] = facts.sha256;
    }
    const text = sourceJson(members);
    this.last = { address, certificate, text };
    return text;
  }

  private facts(der: Uint8Array): CertificateFacts {
    const sha256 = createHash("sha256").update(der).digest("hex").toUpperCase();
    let facts = this.certificates.get(sha256);
    if (facts === undefined) {
      if (this.certificates.size >= 256) this.certificates.clear();
      facts = { subject: distinguishedName(new X509Certificate(der)), sha256 };
      this.certificates.set(sha256, facts);
    }
    return facts;
  }
}

interface CertificateFacts {
  subject: string;
  sha256: string;
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === b) return true;
  return a !== null && b !== null && Buffer.compare(a, b) === 0;
}

/**
 * The subject in RFC 4514 string form ("CN=client,O=Example"): OpenSSL prints it (as Node's
 * X509Certificate.subject) one RDN a line, most significant first, with RFC 2253 escapes
 * (a comma in a value is "\,", a newline "\0A"), so the lines reversed and joined with
 * commas are the RFC 4514 text. Multi-valued RDNs print as "a=1 + b=2", RFC 4514 "a=1+b=2".
 */
export function distinguishedName(cert: X509Certificate): string {
  return cert.subject
    .split("\n")
    .filter((rdn) => rdn !== "")
    .reverse()
    .map((rdn) => rdn.replaceAll(" + ", "+"))
    .join(",");
}

import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import type { ClientPeer } from "../../agent/processing/api.js";
import { sourceConfigSchema } from "../../agent/processing/source/config.js";
import { distinguishedName, SourceStamp } from "../../agent/processing/source/stamp.js";
import { makeTempDir, testConfigYaml } from "../helpers/agent.js";
import { selfSigned } from "../helpers/certs.js";
import { configProblems } from "../helpers/config.js";

/**
 * The source processor's config and what it stamps (docs/integrity-format.md §2.4): only
 * the documented names, from the connection or configured; empty values left out; one text
 * per request, canonical.
 */

const tmp = makeTempDir("source-unit-");
afterAll(() => tmp.cleanup());

function yaml(source: string, processors = "[audit_filter, source]"): string {
  return testConfigYaml({ dir: tmp.path })
    .replace("processors:\n", `processors:\n${source}`)
    .replace("processors: [audit_filter]", `processors: ${processors}`);
}

const peer = (address: string | null, certificate: Uint8Array | null = null): ClientPeer => ({
  address: () => address,
  verifiedCertificate: () => certificate,
});

describe("source processor config", () => {
  it("is off unless the pipeline lists it, and takes ${env:…} values", () => {
    const text = yaml(
      "  source:\n    client_address: true\n    attributes:\n      k8s.pod.name: ${env:POD}\n",
    );
    expect(parseConfig(text, "x.yaml", { POD: "p-1" }).source).toEqual({
      client_address: true,
      client_certificate: false,
      attributes: { "k8s.pod.name": "p-1" },
    });
    const unlisted = parseConfig(
      yaml("  source:\n    client_address: true\n", "[audit_filter]"),
      "x.yaml",
      {},
    );
    expect(unlisted.source).toBeNull();
    expect(unlisted.warnings.join("\n")).toMatch(/processors.source is configured but not used/);
  });

  it("refuses names it does not document, connection names, and two source processors", () => {
    expect(
      configProblems(yaml("  source:\n    attributes:\n      k8s.pod_name: x\n")).join("\n"),
    ).toMatch(/"k8s.pod_name" is not a source attribute \(use .*k8s.pod.name/);
    expect(
      configProblems(yaml("  source:\n    attributes:\n      client.address: 10.0.0.1\n")).join(
        "\n",
      ),
    ).toMatch(
      /client.address is taken from the connection, not configured: set client_address: true/,
    );
    expect(configProblems(yaml("  source:\n    peer: true\n")).join("\n")).toMatch(/peer/);
    const two = yaml(
      "  source:\n    client_address: true\n  source/b:\n    client_address: true\n",
      "[audit_filter, source, source/b]",
    );
    expect(configProblems(two).join("\n")).toMatch(/a pipeline takes one source processor/);
  });
});

describe("SourceStamp", () => {
  it("renders sorted canonical text, leaves empty values out, and nothing as null (a v1 line)", () => {
    const stamp = new SourceStamp(
      sourceConfigSchema.parse({
        client_address: true,
        attributes: {
          "k8s.pod.name": 'p"1',
          "k8s.node.name": "",
          "container.image.name": "r/app:1",
        },
      }),
    );
    expect(stamp.render(peer("10.0.0.7"))).toBe(
      '{"client.address":"10.0.0.7","container.image.name":"r/app:1","k8s.pod.name":"p\\"1"}',
    );
    expect(stamp.render(null)).toBe('{"container.image.name":"r/app:1","k8s.pod.name":"p\\"1"}');
    expect(
      new SourceStamp(sourceConfigSchema.parse({ client_address: true })).render(peer(null)),
    ).toBeNull();
    expect(
      new SourceStamp(sourceConfigSchema.parse({ attributes: { "k8s.pod.name": "" } })).render(
        peer("::1"),
      ),
    ).toBeNull();
  });

  it("stamps a verified certificate's RFC 4514 subject and SHA-256 only when asked", () => {
    // A multi-valued RDN and an escaped comma: OpenSSL prints them most significant first.
    selfSigned(tmp.path, "c", "/C=DE/O=Example, Inc./OU=x+UID=7/CN=svc", ["-multivalue-rdn"]);
    const cert = new X509Certificate(readFileSync(join(tmp.path, "c.crt")));
    expect(distinguishedName(cert)).toBe("CN=svc,OU=x+UID=7,O=Example\\, Inc.,C=DE");
    const withCert = new SourceStamp(sourceConfigSchema.parse({ client_certificate: true }));
    const text = withCert.render(peer("10.0.0.7", cert.raw));
    expect(JSON.parse(text as string)).toEqual({
      "tls.client.hash.sha256": cert.fingerprint256.replaceAll(":", ""),
      "tls.client.subject": "CN=svc,OU=x+UID=7,O=Example\\, Inc.,C=DE",
    });
    expect(withCert.render(peer("10.0.0.8", null))).toBeNull();
    const without = new SourceStamp(sourceConfigSchema.parse({ client_address: true }));
    expect(without.render(peer("10.0.0.7", cert.raw))).toBe('{"client.address":"10.0.0.7"}');
  });
});

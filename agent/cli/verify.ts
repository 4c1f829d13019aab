import { existsSync, readFileSync } from "node:fs";
import { AgentError } from "../common/errors.js";
import { publicKeyPath, readTrustedKeys } from "../integrity/key-files.js";
import { loadConfigFile } from "../config/load.js";
import { crossCheck } from "../verify/cross-check.js";
import { sourceFromSpec } from "../config/sources.js";
import type { AuditSource, VerifyReport } from "../verify/types.js";
import { formatReport, verifySource } from "../verify/verify.js";

/**
 * `audit-agent verify`: from --source SPEC (repeatable) and/or --config FILE --exporter ID
 * (repeatable; reads the backend exactly as that exporter writes it: endpoint, path style,
 * credentials, TLS). With --cross-check and two sources, the two are also compared record
 * by record. Exit 0 when clean, 1 when there are findings, 2 on usage errors.
 */
export interface VerifyOptions {
  source?: string[];
  config?: string;
  exporter?: string[];
  trust?: string[];
  checkpoint?: string[];
  crossCheck?: boolean;
  json?: boolean;
}

async function sourcesFrom(
  opts: VerifyOptions,
): Promise<{ sources: AuditSource[]; defaultTrust: string[] }> {
  const sources = await Promise.all((opts.source ?? []).map(sourceFromSpec));
  const defaultTrust: string[] = [];
  if (opts.exporter?.length && !opts.config)
    throw new AgentError("VERIFY_BAD_USAGE", "--exporter needs --config FILE");
  if (opts.config) {
    const config = loadConfigFile(opts.config);
    const pub = publicKeyPath(config.signing.key_file);
    if (existsSync(pub)) defaultTrust.push(pub);
    const ids = opts.exporter?.length
      ? opts.exporter
      : config.exporters.filter((e) => e.factory.reader).map((e) => e.id);
    for (const id of ids) {
      const e = config.exporters.find((x) => x.id === id);
      if (!e) {
        throw new AgentError(
          "VERIFY_BAD_USAGE",
          `exporter "${id}" is not in the logs pipeline of ${opts.config} (exporters: ${config.exporters.map((x) => x.id).join(", ")})`,
        );
      }
      if (!e.factory.reader)
        throw new AgentError(
          "VERIFY_BAD_USAGE",
          `exporter "${id}" (type ${e.factory.type}) cannot be read back`,
        );
      sources.push(await e.factory.reader(e.config));
    }
  }
  if (sources.length === 0)
    throw new AgentError(
      "VERIFY_BAD_USAGE",
      "say what to verify: --source SPEC, or --config FILE [--exporter ID]",
    );
  if (opts.crossCheck && sources.length !== 2)
    throw new AgentError(
      "VERIFY_BAD_USAGE",
      `--cross-check compares exactly two sources (got ${sources.length})`,
    );
  return { sources, defaultTrust };
}

export async function verifyCommand(opts: VerifyOptions): Promise<number> {
  const { sources, defaultTrust } = await sourcesFrom(opts);
  const trustFiles = opts.trust?.length ? opts.trust : defaultTrust;
  if (trustFiles.length === 0)
    throw new AgentError("VERIFY_BAD_USAGE", "give the public key(s) to trust: --trust KEYFILE");
  const trusted = readTrustedKeys(trustFiles);
  const known = (opts.checkpoint ?? []).map((path) => {
    try {
      return { note: readFileSync(path, "utf8"), location: path };
    } catch (err) {
      throw new AgentError(
        "VERIFY_BAD_CHECKPOINT",
        `cannot read checkpoint ${path}: ${(err as Error).message}`,
      );
    }
  });
  const reports: VerifyReport[] = [];
  for (const source of sources) reports.push(await verifySource(source, trusted, known));
  if (opts.crossCheck) {
    const findings = await crossCheck(sources[0] as AuditSource, sources[1] as AuditSource);
    reports.push({
      source: `cross-check ${sources[0]?.description} ↔ ${sources[1]?.description}`,
      chains: [],
      findings,
      ok: findings.length === 0,
    });
  }
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify(reports.length === 1 ? reports[0] : reports, null, 2)}\n`,
    );
  } else {
    process.stdout.write(
      reports
        .map((r) =>
          r.chains.length === 0 && r.source.startsWith("cross-check")
            ? formatCross(r)
            : formatReport(r),
        )
        .join("\n"),
    );
  }
  return reports.every((r) => r.ok) ? 0 : 1;
}

function formatCross(r: VerifyReport): string {
  const lines = [
    r.source,
    r.ok ? "OK: both hold the same records" : `FAILED: ${r.findings.length} differences`,
  ];
  for (const f of r.findings) lines.push(`  ${f.category.padEnd(13)} ${f.location}: ${f.detail}`);
  return `${lines.join("\n")}\n`;
}

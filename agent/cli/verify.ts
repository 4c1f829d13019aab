import { readFileSync } from "node:fs";
import { AgentError } from "../common/errors.js";
import { readTrustedKeys } from "../chain/key-files.js";
import { sourceFromSpec } from "../verify/sources.js";
import { formatReport, verifySource } from "../verify/verify.js";

/**
 * `audit-agent verify --source SPEC --trust KEYFILE... [--checkpoint FILE...] [--json]`.
 * Exit 0 when clean, 1 when there are findings, 2 on usage errors.
 */
export async function verifyCommand(opts: {
  source: string;
  trust: string[];
  checkpoint?: string[];
  json?: boolean;
}): Promise<number> {
  const trusted = readTrustedKeys(opts.trust);
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
  const report = await verifySource(sourceFromSpec(opts.source), trusted, known);
  process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.ok ? 0 : 1;
}

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { AgentConfig } from "../config/load.js";
import { exporterDescriptors } from "../config/exporter-registry.js";
import { publicKeyPath } from "../integrity/key-files.js";
import type { SigningKey } from "../integrity/signing.js";
import type { ReceiverEndpoint } from "../receivers/api.js";

/**
 * What `audit-agent run` says once it is serving, so that nobody has to read the config
 * and the docs to find out: where to send logs, where records go, where the WAL and the
 * public key are, and the command that checks each exporter's output. One block of text on
 * a terminal, one structured log line otherwise (cli/main.ts).
 */
export interface StartupSummary {
  config: string;
  chainId: string;
  /** Each receiver endpoint, by receiver id, with the address it actually bound. */
  receivers: Array<ReceiverEndpoint & { receiver: string }>;
  /** health_check, metrics and the checkpoint server, where configured: their URLs. */
  endpoints: Record<string, string>;
  exporters: ExporterSummary[];
  wal: string;
  publicKey: SignerFacts;
  /** Checks every readable exporter as configured (its credentials and TLS included), from the agent's working directory. */
  verifyAll: string;
}

export interface ExporterSummary {
  id: string;
  type: string;
  destination: Readonly<Record<string, string>>;
  /** `audit-agent verify --source … --trust …` for what this exporter wrote; absent for pass-through exporters. */
  verify?: string;
}

/** The signing key as verifiers need it. */
export interface SignerFacts {
  /** The `.pub` file beside key_file (what `verify --trust` takes); null when there is none. */
  file: string | null;
  /** The environment variable the private key came from (signing.key_env), if it did. */
  keyEnv?: string;
  /** The C2SP verifier key line that the .pub file holds. */
  verifierKey: string;
  keyId: string;
  /** SHA256:<base64 of SHA-256 of the raw public key>, the form `ssh-keygen -l` shows. */
  fingerprint: string;
  /** Every public key file `verify` must trust: this key's, a rotation's outgoing key's, verification.trust. */
  trust: string[];
}

export function signerFacts(config: AgentConfig, key: SigningKey): SignerFacts {
  const { signing } = config;
  const own = signing.key_env ? null : publicKeyPath(signing.key_file);
  const file = own && existsSync(own) ? own : null;
  const previous = signing.previous_key_file && publicKeyPath(signing.previous_key_file);
  const trust = [
    file,
    previous && existsSync(previous) ? previous : null,
    ...(config.verification?.trust ?? []).map((t) => resolve(t)),
  ].filter((t): t is string => t !== null);
  const digest = createHash("sha256").update(key.public.raw).digest("base64");
  return {
    file,
    ...(signing.key_env ? { keyEnv: signing.key_env } : {}),
    verifierKey: key.public.verifierKey,
    keyId: key.public.keyId,
    fingerprint: `SHA256:${digest.replace(/=+$/, "")}`,
    trust: [...new Set(trust)],
  };
}

export function startupSummary(
  config: AgentConfig,
  facts: {
    chainId: string;
    receivers: Record<string, ReceiverEndpoint[]>;
    addresses: Record<string, Record<string, string>>;
    signer: SignerFacts;
  },
): StartupSummary {
  const { signer } = facts;
  // Without a .pub file (a key from the environment) the command names the file to write.
  const trustArgs = (signer.trust.length > 0 ? signer.trust : ["KEY.pub"]).flatMap((t) => [
    "--trust",
    t,
  ]);
  const configFile = resolve(config.file);
  const exporters = config.exporters.map((e): ExporterSummary => {
    const descriptor = exporterDescriptors.find((d) => d.type === e.factory.type);
    const where = descriptor?.describe(e.config) ?? { destination: {} };
    const env = Object.entries(where.sourceEnv ?? {}).map(([k, v]) => `${k}=${shellQuote(v)}`);
    const verify = where.source
      ? [...env, command(["verify", "--source", where.source, ...trustArgs])].join(" ")
      : undefined;
    return { id: e.id, type: e.factory.type, destination: where.destination, verify };
  });
  const endpoints: Record<string, string> = {};
  for (const [name, id, path] of [
    ["health_check", "health_check", config.healthCheck?.path ?? "/"],
    ["metrics", "metrics", "/metrics"],
    ["checkpoints", "signing", "/checkpoint"],
  ] as const) {
    const address = facts.addresses[id]?.http;
    if (address) endpoints[name] = `http://${address}${path}`;
  }
  return {
    config: configFile,
    chainId: facts.chainId,
    receivers: Object.entries(facts.receivers).flatMap(([receiver, list]) =>
      list.map((r) => ({ receiver, ...r })),
    ),
    endpoints,
    exporters,
    wal: config.wal.directory,
    publicKey: signer,
    // Relative paths in the config are the working directory's, for verify as for run.
    verifyAll: `cd ${shellQuote(process.cwd())} && ${command(["verify", "--config", configFile])}`,
  };
}

/** The summary as a block of text for a terminal. */
export function formatStartupSummary(s: StartupSummary): string {
  const lines = [`audit agent started (chain ${s.chainId}, config ${s.config})`, "", "Receiving:"];
  const rows = s.receivers.map((r) => {
    const tls = r.tls === "off" ? "no TLS" : r.tls === "mutual" ? "mTLS" : "TLS";
    const auth = r.auth === "none" ? "no auth" : r.auth;
    return [`${r.receiver}/${r.protocol}`, r.url ?? r.address, `${tls}, ${auth}`];
  });
  const names = [...rows.map((r) => r[0] as string), ...Object.keys(s.endpoints)];
  const width = Math.max(...names.map((n) => n.length + 2));
  const urlWidth = Math.max(...rows.map((r) => (r[1] as string).length + 2));
  for (const [name, where, how] of rows)
    lines.push(`  ${name?.padEnd(width)}${where?.padEnd(urlWidth)}${how}`);
  if (Object.keys(s.endpoints).length > 0) lines.push("", "Serving:");
  for (const [name, url] of Object.entries(s.endpoints))
    lines.push(`  ${name.padEnd(width)}${url}`);
  lines.push("", "Records go to:");
  for (const e of s.exporters) {
    const where = Object.entries(e.destination)
      .filter(([, v]) => v !== "")
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    lines.push(`  ${e.id}: ${where}${e.verify ? "" : " (pass-through: not verifiable)"}`);
  }
  lines.push(`  write-ahead log: ${s.wal}`);
  const key = s.publicKey;
  lines.push("", "Public key (give it to verifiers):");
  lines.push(
    key.file
      ? `  ${key.file}`
      : `  no .pub file (key from ${key.keyEnv ? `$${key.keyEnv}` : "the environment"}): save this line as KEY.pub:`,
  );
  if (!key.file) lines.push(`  ${key.verifierKey}`);
  lines.push(`  key id ${key.keyId}, fingerprint ${key.fingerprint}`);
  lines.push("", "Check what was written:");
  for (const e of s.exporters) if (e.verify) lines.push(`  ${e.verify}`);
  lines.push(`  (or every exporter as configured: ${s.verifyAll})`, "");
  return `${lines.join("\n")}\n`;
}

/** `audit-agent ARGS` as a POSIX shell command line. */
function command(args: string[]): string {
  return ["audit-agent", ...args].map(shellQuote).join(" ");
}

/** A word the shell reads back unchanged: as it is when it is safe, else in single quotes. */
export function shellQuote(word: string): string {
  if (/^[\w@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

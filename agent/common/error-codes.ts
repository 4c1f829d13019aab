/**
 * Every code an AgentError can carry, with what happened and what the operator should do,
 * in the manner of fastify's FST_ERR_* catalogue. `AgentError` only takes a code listed
 * here, so a misspelt code does not compile.
 *
 * docs/errors.md is generated from this object: after changing it, run
 * `node scripts/error-codes-doc.mjs` (test/unit/error-codes.test.ts fails until you do).
 * Keep entries short: `summary` says what happened, `fix` what to do about it.
 */
export interface ErrorCodeInfo {
  readonly summary: string;
  readonly fix: string;
}

export const ERROR_CODES = {
  AUTH_TOKEN_UNREADABLE: {
    summary: "An OTLP receiver could not read the file named by `auth.bearer_token_file`.",
    fix: "Check the path and that the agent's user may read it, or set `auth.bearer_token` instead.",
  },
  AUTH_TOKEN_UNSAFE: {
    summary:
      "The file named by `auth.bearer_token_file` is readable by every user of the host: anyone there could send records as a trusted client. The receiver refuses to start.",
    fix: "Make it owner-only (`chmod 600`), or group-readable at most (on Kubernetes, `defaultMode: 0440` with fsGroup).",
  },
  AUTH_TOKEN_WEAK: {
    summary: "The bearer token in `auth.bearer_token_file` is shorter than 16 characters.",
    fix: "Put a random token of 16 characters or more in the file (e.g. `openssl rand -hex 32`).",
  },
  CHECKPOINT_MALFORMED: {
    summary:
      "A checkpoint is not an origin line, a decimal tree size (at most 2^53), a base64 32-byte root hash and non-empty extension lines.",
    fix: "Use the checkpoint exactly as the agent served or stored it; it was truncated or edited.",
  },
  CLI_BAD_OPTION: {
    summary:
      "A numeric option (or its variable, e.g. `AUDIT_AGENT_GRACE_SECONDS`) is not a number, negative, a fraction where a whole number is needed, or out of range. Exit 2.",
    fix: "Give the value in the form the message states, e.g. `--grace 30` (seconds ≥ 0) or `--threads 4` (0 to 64).",
  },
  CLI_BAD_PATH: {
    summary:
      "A directory given on the command line (`keygen --out`, `wal … --dir`) is a file, sits under a file or a missing directory, or is not writable. Nothing is created.",
    fix: "Fix the path the message names, or create the directory first (`mkdir -p DIR`) for the user that runs the command.",
  },
  CONFIG_DIR_UNUSABLE: {
    summary:
      "A directory the config names (`extensions.wal.directory`, a file exporter's `directory`, a generated key's) is a file, sits under a file, or is not writable.",
    fix: "Point the setting at a directory the agent's user can write, or create it for that user; `validate` names the setting.",
  },
  CONFIG_FILE_MISSING: {
    summary:
      "A file the config names (a key, certificate, CA, token or trusted key file) does not exist. `validate` and `run` refuse it before changing anything.",
    fix: "Fix the path in the setting the message names, or create the file (signing keys: `audit-agent keygen --out DIR`).",
  },
  CONFIG_FILE_UNREADABLE: {
    summary:
      "A file the config names exists but is not a file (a directory) or cannot be read by the agent's user.",
    fix: "Give the file's own path, and make it readable by the agent's user (`chown`, `chmod u+r`).",
  },
  CONFIG_FILE_UNSAFE: {
    summary:
      "A secret the config names (a TLS private key, a witness bearer token) is readable by every user of the host. `validate` and `run` refuse it.",
    fix: "Run `chmod 600 FILE` (group-readable at most: on Kubernetes, mount the Secret with `defaultMode: 0440` or tighter).",
  },
  CONFIG_INVALID: {
    summary:
      "The config file failed validation; the message lists every problem as `file:line:col: key.path: what is wrong`.",
    fix: "Fix each listed key (docs/configuration.md) and check with `audit-agent validate --config FILE`.",
  },
  ENDPOINT_LISTEN_FAILED: {
    summary:
      "The health_check, metrics or checkpoint endpoint could not listen on its address (port in use, address not local, no permission).",
    fix: "Free the port or change `extensions.health_check.endpoint`, `service.telemetry.metrics.address` or `extensions.signing.endpoint`.",
  },
  EVIDENCE_USAGE: {
    summary: "`audit-agent check-evidence` got no `--trust` key, or cannot read the evidence file.",
    fix: "Give the bundle's path and the agent's public key file: `audit-agent check-evidence FILE --trust KEYFILE`.",
  },
  EXPORT_PERMANENT: {
    summary:
      "An exporter's backend refused a batch in a way retrying cannot fix; the exporter stops and its records stay in the WAL.",
    fix: "Fix the backend or the exporter's config as the logged message says, then restart the agent: delivery resumes where it stopped.",
  },
  EXPORT_RETRYABLE: {
    summary:
      "An exporter's backend was unreachable, overloaded or failed; the batch is retried with backoff (`retry_on_failure`).",
    fix: "Nothing if it clears. If it persists, check the backend and the network to it; records wait in the WAL, so watch its fill level.",
  },
  FORWARD_QUEUE_FULL: {
    summary:
      "The pass-through queue of an otlp exporter with `sending_queue.on_full: refuse` is full; the whole request is refused with HTTP 503 / gRPC UNAVAILABLE, nothing stored.",
    fix: "Check the upstream Collector, which is behind or down; raise `sending_queue.queue_size`, or use `on_full: drop` if non-audit records may be dropped.",
  },
  KEY_BAD_NAME: {
    summary: "A key name is empty or contains a space or '+'.",
    fix: "Choose a name without spaces or '+' (`signing.key_name`, `keygen --name`, or the name part of a verifier key).",
  },
  KEY_BAD_PRIVATE: {
    summary: "The signing key is not a PEM private key, or not an Ed25519 one.",
    fix: "Point `signing.key_file` or `signing.key_env` at a PKCS#8 Ed25519 PEM key, such as one made by `audit-agent keygen`.",
  },
  KEY_BAD_PUBLIC: {
    summary: "An Ed25519 public key does not have 32 bytes.",
    fix: "The verifier key is truncated or corrupted: copy the agent's `.pub` file again.",
  },
  KEY_BAD_WITNESS: {
    summary:
      "A witness key is not a cosigner verifier key `name+keyid+base64(0x04 || key)` (C2SP tlog-cosignature), or its key id does not match the key.",
    fix: "Use the `.pub` file `audit-agent keygen --witness` wrote for the witness, unchanged.",
  },
  KEY_BAD_VERIFIER: {
    summary:
      "A trusted key is not a verifier key `name+keyid+base64key`, is not Ed25519, or its key id does not match the key.",
    fix: "Use the agent's `.pub` file unchanged: one verifier key per line, `#` comments allowed.",
  },
  KEY_ENV_MISSING: {
    summary: "`signing.key_env` names an environment variable that is unset or empty.",
    fix: "Set the variable to the PEM private key (e.g. from a Kubernetes Secret), or use `signing.key_file`.",
  },
  KEY_FILE_MISSING: {
    summary: "`signing.key_file` does not exist and `signing.generate_if_missing` is false.",
    fix: "Create a key with `audit-agent keygen --out DIR` and set `signing.key_file` to it, or enable `generate_if_missing`.",
  },
  KEY_FILE_UNSAFE: {
    summary: "A private signing key file is readable by group or others.",
    fix: "Run `chmod 600` on it; on Kubernetes copy the mounted Secret to an owner-only file or use `signing.key_env` (deploy/kubernetes/README.md).",
  },
  KEYGEN_EXISTS: {
    summary: "`audit-agent keygen` found a key at the target path; keys are never overwritten.",
    fix: "Choose another `--out` or `--name`, or move the old key away on purpose first.",
  },
  KEYGEN_WRITE_FAILED: {
    summary:
      "A new key's public key file (`NAME.pub`) could not be written (a directory is there, no space); the private key just written is removed again.",
    fix: "Move what is at `NAME.pub` away or fix the directory the message names, then run the command again.",
  },
  NOTE_BAD_TEXT: {
    summary: "The agent was asked to sign note text that does not end with a newline.",
    fix: "This is a bug in the agent: report it with the log line.",
  },
  NOTE_MALFORMED: {
    summary:
      "A signed note (checkpoint) is not its text, a blank line and one or more `— name signature` lines.",
    fix: "Use the checkpoint exactly as the agent served or stored it; it was truncated or edited.",
  },
  OTLP_BAD_JSON: {
    summary:
      "An OTLP/HTTP JSON request body is not valid JSON or not an ExportLogsServiceRequest; refused with HTTP 400, nothing stored.",
    fix: "Fix the client to send OTLP/JSON as the OTLP specification defines it; retrying the same body cannot succeed.",
  },
  OTLP_BAD_PROTOBUF: {
    summary:
      "A protobuf request is not a valid ExportLogsServiceRequest (bad wire data, trace/span id lengths, values nested over 64 levels: integrity-format §3.11): HTTP 400 / INVALID_ARGUMENT.",
    fix: "Fix the client or its SDK (and its Content-Type); retrying the same body cannot succeed.",
  },
  PROOF_BAD_PARAM: {
    summary:
      "A `/proof/*` query parameter of the checkpoint endpoint is not a non-negative integer; answered HTTP 400.",
    fix: "Pass decimal numbers: `/proof/inclusion?seq=N[&size=M]`, `/proof/consistency?old=A[&new=B]`.",
  },
  PROOF_BAD_SEQ: {
    summary: "An inclusion proof was asked for a record number outside the sealed tree.",
    fix: "Use a seq from 0 to the tree size minus 1; a record can be proved only once its batch is sealed.",
  },
  PROOF_BAD_SIZE: {
    summary:
      "A proof was asked against a tree size that is not sealed (larger than the sealed tree), or with an old size above the new one.",
    fix: "Use sizes from 0 to the latest checkpoint's size, with old ≤ new.",
  },
  PROVE_AGENT_ERROR: {
    summary:
      "`audit-agent prove --agent URL` got an error answer from the agent's checkpoint endpoint.",
    fix: "Read the error passed on (often a bad seq or size) and check the URL is the agent's `extensions.signing.endpoint`.",
  },
  PROVE_AGENT_BAD_ANSWER: {
    summary:
      "`audit-agent prove --agent URL` got an answer that is not a proof (not JSON, or not the proof asked for): the URL is not the agent's checkpoint endpoint.",
    fix: "Point `--agent` at the agent's `extensions.signing.endpoint` (e.g. http://127.0.0.1:8890), not its OTLP, metrics or health port.",
  },
  PROVE_AGENT_UNREACHABLE: {
    summary:
      "`audit-agent prove --agent URL` could not reach the URL (connection refused, unknown host, no answer within 30 s): exit 3.",
    fix: "Start the agent with `extensions.signing.endpoint` set and give that address, or stop the agent and run `prove` without `--agent` to read its WAL.",
  },
  PROVE_BAD_CHECKPOINT: {
    summary: "The checkpoint file given to `audit-agent prove --checkpoint` could not be read.",
    fix: "Check the path and permissions; give a checkpoint the agent served (`GET /checkpoint`) or stored.",
  },
  PROVE_CHECKPOINT_UNTRUSTED: {
    summary:
      "The checkpoint given to `prove --checkpoint` is not signed by a trusted key, or a trusted key's signature over it does not verify.",
    fix: "Pass the signer's public key with `--trust KEYFILE`; if a trusted signature fails, treat the checkpoint as tampered with.",
  },
  PROVE_NO_WAL: {
    summary:
      "`audit-agent prove` without `--agent` found no write-ahead log at the config's `extensions.wal.directory` (relative to the working directory). Nothing is created.",
    fix: "Run it with the agent's `--config` from the agent's working directory, or ask the running agent: `--agent URL`.",
  },
  PROVE_ROOT_MISMATCH: {
    summary:
      "The stored tree's root at the checkpoint's size differs from the checkpoint's root hash.",
    fix: "Do not trust the proof: the stored log or the checkpoint was altered, or they are from different chains. Run `audit-agent verify` and investigate.",
  },
  PROVE_USAGE: {
    summary:
      "`audit-agent prove` got neither or both of `--seq` and `--consistency`, or `--checkpoint` with no key to check it.",
    fix: "Give exactly one of `--seq N` or `--consistency OLD NEW`; with `--checkpoint`, give `--trust KEYFILE`.",
  },
  RATE_LIMITED: {
    summary:
      "A client went over the receiver's `rate_limit`; answered HTTP 429 (`Retry-After: 1`) / gRPC RESOURCE_EXHAUSTED, nothing stored.",
    fix: "Clients retry by themselves; if it persists, raise `rate_limit.requests_per_second` and `burst`, or spread the load.",
  },
  RECEIVER_LISTEN_FAILED: {
    summary:
      "An OTLP receiver (gRPC or HTTP) could not listen on its endpoint (port in use, address not local, no permission).",
    fix: "Free the port or change `receivers.otlp.protocols.grpc.endpoint` or `receivers.otlp.protocols.http.endpoint`.",
  },
  RELOAD_FAILED: {
    summary:
      "On SIGHUP the new config was valid but the agent could not start on it (port taken, TLS or token file unreadable); it runs on the previous config.",
    fix: "Fix what the logged cause names, check with `audit-agent validate --config FILE`, and send SIGHUP again.",
  },
  RELOAD_REFUSED: {
    summary:
      "On SIGHUP the config changed what a reload may not: the WAL directory (its path, or the directory the path now names) or chain id, or the signing key, its name or origin. Nothing changed.",
    fix: "Put the old value back and send SIGHUP again; to move the WAL or rotate the key on purpose, restart the agent.",
  },
  REPORT_USAGE: {
    summary:
      "`audit-agent report` (or `search`) got no `--source` or no `--trust`, an unknown `--format`, or a `--limit` below 1.",
    fix: "Give `--source SPEC --trust KEYFILE`, and `--format html|md|json` (or an `--out` file ending in .html, .md or .json).",
  },
  SEARCH_UNPROVABLE: {
    summary:
      "`audit-agent search` matched records it cannot prove: no checkpoint signed by a trusted key, or the stored records do not reproduce the signed tree.",
    fix: "Run `audit-agent verify` (or `report`) on the source: its findings say what was altered or lost. Evidence is only given for records the signed tree holds.",
  },
  SEARCH_USAGE: {
    summary:
      "`audit-agent search` got no query, a `--where` that is not KEY=VALUE, a `--from`/`--to` that is not an ISO 8601 time, more than one `--source`, or a `--limit` below 1.",
    fix: "E.g. `audit-agent search --source file:DIR --trust KEYFILE --where enduser.id=42 --from 2026-01-01T00:00:00Z`.",
  },
  SOURCE_UNREADABLE: {
    summary:
      "An audit source (file directory, Loki, S3 or Elasticsearch) could not be read back for verification.",
    fix: "Check the address, credentials and permissions the message names (S3 reads need s3:ListBucketVersions, s3:GetObject, s3:GetObjectVersion), then retry.",
  },
  TRUST_FILE_EMPTY: {
    summary:
      "A trusted key file (`--trust`, `extensions.verification.trust`) holds no verifier key, only blank lines or comments.",
    fix: "Give the agent's `.pub` file, which holds its verifier key.",
  },
  TRUST_FILE_PRIVATE: {
    summary: "A trusted key file (`--trust`, `extensions.verification.trust`) holds a private key.",
    fix: "Give the public key file (`.pub`) instead, and keep the private key off verifier hosts.",
  },
  TRUST_FILE_UNREADABLE: {
    summary: "A trusted key file (`--trust`, `extensions.verification.trust`) could not be read.",
    fix: "Check the path and that the user running the agent or command may read it.",
  },
  VERIFY_BAD_CHECKPOINT: {
    summary: "A checkpoint file given to `verify --checkpoint` could not be read.",
    fix: "Check the path and that the user running the command may read it.",
  },
  VERIFY_BAD_SOURCE: {
    summary:
      "A `--source` is not file:DIR, loki:URL, s3://BUCKET/PREFIX or es:URL/INDEX, or its parameters are invalid.",
    fix: "Write the source as the message shows, e.g. `loki:http://HOST:3100?tenant=ID` or `es:https://HOST:9200/INDEX`.",
  },
  VERIFY_BAD_STATE: {
    summary:
      "The file given to `verify --state` is not a verifier state file, or could not be read.",
    fix: "Give the state file an earlier `verify --state` wrote, or a new path for a full run (a missing file starts one).",
  },
  VERIFY_BAD_USAGE: {
    summary:
      "`audit-agent verify` got nothing to verify, no key to trust, an `--exporter` missing from the config or not readable back, or `--cross-check` without two sources.",
    fix: "Give `--source SPEC` or `--config FILE [--exporter ID]`, and `--trust KEYFILE` unless the config's key has its `.pub` beside it.",
  },
  WAL_BAD_CHAIN_ID: {
    summary: "The chain id for a new write-ahead log does not match the allowed pattern.",
    fix: "Set `extensions.wal.chain_id` to 1–128 letters, digits, `.`, `_` or `-` starting with a letter or digit, or leave it unset.",
  },
  WAL_CHAIN_MISMATCH: {
    summary:
      "The existing write-ahead log holds another chain than `extensions.wal.chain_id` names.",
    fix: "Remove `chain_id` from the config to keep the existing chain, or point `extensions.wal.directory` at a new directory.",
  },
  WAL_CLOSED: {
    summary:
      "A request arrived while the agent was shutting down; answered HTTP 503 / gRPC UNAVAILABLE, nothing stored.",
    fix: "None: clients retry, against the restarted agent or another replica.",
  },
  WAL_FULL: {
    summary:
      "The write-ahead log reached `extensions.wal.max_size_mib` because exporters are behind; requests are refused with HTTP 429 / gRPC RESOURCE_EXHAUSTED, not dropped.",
    fix: "Find why exporters lag (`audit_agent_exporter_lag_*` metrics, logs); raise `max_size_mib` if the backlog is expected.",
  },
  WAL_DAMAGED: {
    summary:
      "The WAL's LevelDB files are damaged: no CURRENT file (opening would start an empty database over the tables), or a corrupt table. The agent refuses to start and changes nothing.",
    fix: "No CURRENT: run the command the error gives, then start. A corrupt table: keep the directory, inspect it with `audit-agent wal check`, restore it or start anew.",
  },
  WAL_OPEN_FAILED: {
    summary:
      "The write-ahead log could not be opened: another agent process holds it, or the directory is unwritable or damaged.",
    fix: "Give each agent its own `extensions.wal.directory`, writable by the agent's user, on a disk with free space.",
  },
  WAL_RECORDS_LOST: {
    summary:
      "The WAL lost acknowledged records: its head is below what AUDIT-HEAD or the anchor beside it recorded, or the directory was deleted or replaced. The agent will not reuse those seqs.",
    fix: "Keep the directory as evidence (`audit-agent wal check --dir DIR`); try `audit-agent wal repair --dir DIR`; else `audit-agent wal new-chain --dir DIR --reason TEXT` declares the loss in a new chain.",
  },
  WAL_IN_USE: {
    summary:
      "The WAL's LevelDB lock is held: another process (an agent) has the directory open. `wal check`, `wal repair` and `wal new-chain` refuse to touch it.",
    fix: "Stop the agent that uses the directory first; give each agent its own `extensions.wal.directory`.",
  },
  WAL_NOTHING_LOST: {
    summary:
      "`audit-agent wal new-chain` found no loss to declare: no acknowledged head is recorded for the directory, or the WAL still holds everything acknowledged.",
    fix: "Start the agent as it is: a sound WAL goes on, and an empty directory with no anchor starts a new chain by itself.",
  },
  WAL_NEW_CHAIN_USAGE: {
    summary:
      "`audit-agent wal new-chain` needs a --reason that says what happened (1 to 1000 characters); it is signed into the new chain's first entry.",
    fix: 'Run it again with --reason "disk failure on node X, see incident 123", for example.',
  },
  WAL_REPAIR_FAILED: {
    summary:
      "LevelDB's repair could not rebuild the WAL; the directory as it was is copied beside it first.",
    fix: "Restore the WAL from a backup, or declare the loss and go on: `audit-agent wal new-chain --dir DIR --reason TEXT`.",
  },
  WAL_RECORD_ALTERED: {
    summary:
      "A record read back from the WAL does not match its stored leaf hash or link (bit rot, or an edit). It is not exported; requests are refused (503) and the agent is not ready.",
    fix: "Keep the WAL directory as evidence; replace the disk if it is failing. Restore the WAL from a backup, or start a new chain in a new directory.",
  },
  WAL_WRITE_FAILED: {
    summary:
      "A write to the write-ahead log failed (disk full, I/O error); the request is answered HTTP 503 / gRPC UNAVAILABLE, not acknowledged.",
    fix: "Check the disk under `extensions.wal.directory` for space, errors and permissions; clients retry.",
  },
  WITNESS_CONFIG_INVALID: {
    summary:
      "The witness config failed validation, or a file it names (TLS) cannot be read; each problem is listed as `file:line:col: key.path: what is wrong`.",
    fix: "Fix each listed key (docs/witness.md) and start the witness again.",
  },
  WITNESS_KEY_UNREADABLE: {
    summary: "The witness cannot read its private key (`witness.key_file`).",
    fix: "Create one with `audit-agent keygen --witness --out DIR --name NAME`, or fix the path or the file's owner.",
  },
  WITNESS_LISTEN_FAILED: {
    summary:
      "The witness could not listen on `witness.listen` (port in use, address not local, no permission).",
    fix: "Free the port or change `witness.listen`.",
  },
  WITNESS_STATE_DAMAGED: {
    summary:
      "A witness state file is not what the witness wrote (bad JSON, fields, name, or a note that does not match). It will not start: that would forget what it cosigned.",
    fix: "Restore the file from a backup, or fetch the log's cosigned checkpoint from another witness and restore it; never delete it to start over (docs/witness.md).",
  },
  WITNESS_STATE_UNWRITABLE: {
    summary:
      "The witness cannot create, read or write its `witness.state_dir`; at start it stops, while running it answers 500 and cosigns nothing.",
    fix: "Check the directory's path, owner, permissions and free space.",
  },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

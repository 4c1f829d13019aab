// Realistic audit log requests for the benchmarks: ~8 attributes, a 200-byte body, a
// resource with service attributes, as an SDK would send them.
import { otlpTypes } from "../dist/agent/otlp/protobuf-codec.js";

// Values vary per record the way real audit events do (users, accounts, addresses, ids,
// free text), so that anything sensitive to repetition — the WAL compresses its chunks —
// is measured on realistic data, not on 512 copies of one record.
const NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"];
const ROLES = ["viewer", "editor", "admin", "owner", "auditor", "billing"];
const ACTIONS = ["changed role of", "reset MFA for", "exported data of", "suspended", "invited"];
const METHODS = ["POST", "PUT", "PATCH", "DELETE"];

/** A seeded linear congruential generator (Numerical Recipes): every run sends the same records. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 4294967296;
  };
}

function hex(next, bytes) {
  let out = "";
  for (let i = 0; i < bytes; i++)
    out += Math.floor(next() * 256)
      .toString(16)
      .padStart(2, "0");
  return out;
}

/** One ExportLogsServiceRequest (OTLP/JSON shape) with `size` records, `auditRatio` of them audit. */
export function buildRequest(size, auditRatio = 1) {
  const next = rng(size * 7919 + Math.round(auditRatio * 1000));
  const pick = (xs) => xs[Math.floor(next() * xs.length)];
  const now = BigInt(Date.now()) * 1_000_000n;
  const logRecords = [];
  const auditEvery = auditRatio > 0 ? Math.round(1 / auditRatio) : 0;
  for (let i = 0; i < size; i++) {
    const audit = auditEvery > 0 && i % auditEvery === 0;
    const actor = `${pick(NAMES)}.${hex(next, 2)}@example.com`;
    const account = 100000 + Math.floor(next() * 900000);
    const [oldRole, newRole] = [pick(ROLES), pick(ROLES)];
    const body =
      `User ${actor} ${pick(ACTIONS)} account ${account} from ${oldRole} to ${newRole} via the admin console; reason: access review ticket SEC-${1000 + Math.floor(next() * 9000)}, approved by ${pick(NAMES)}. Session ${hex(next, 6)}. `.padEnd(
        200,
        ".",
      );
    logRecords.push({
      timeUnixNano: String(now + BigInt(i * 1000 + Math.floor(next() * 1000))),
      observedTimeUnixNano: String(now + BigInt(i * 1000) + 1_000_000n),
      severityNumber: 9,
      severityText: "INFO",
      eventName: audit ? "audit.user.role_changed" : "app.request",
      body: { stringValue: body },
      attributes: [
        { key: "audit", value: { boolValue: audit } },
        { key: "user.id", value: { stringValue: `u-${hex(next, 4)}` } },
        { key: "user.email", value: { stringValue: actor } },
        { key: "account.id", value: { intValue: String(account) } },
        { key: "role.old", value: { stringValue: oldRole } },
        { key: "role.new", value: { stringValue: newRole } },
        {
          key: "client.address",
          value: {
            stringValue: `10.${Math.floor(next() * 256)}.${Math.floor(next() * 256)}.${Math.floor(next() * 256)}`,
          },
        },
        { key: "http.request.method", value: { stringValue: pick(METHODS) } },
      ],
      traceId: hex(next, 16),
      spanId: hex(next, 8),
      flags: 1,
    });
  }
  return {
    resourceLogs: [
      {
        resource: {
          attributes: [
            { key: "service.name", value: { stringValue: "accounts-api" } },
            { key: "service.version", value: { stringValue: "4.12.0" } },
            { key: "service.namespace", value: { stringValue: "identity" } },
            { key: "deployment.environment.name", value: { stringValue: "prod" } },
            { key: "k8s.pod.name", value: { stringValue: "accounts-api-7d9f8b6c5-x2k4p" } },
          ],
        },
        scopeLogs: [{ scope: { name: "com.example.audit", version: "1.3.0" }, logRecords }],
      },
    ],
  };
}

export function encodeProto(request) {
  // OTLP/JSON writes ids in hex; protobufjs' fromObject would read them as base64.
  const copy = structuredClone(request);
  for (const rl of copy.resourceLogs)
    for (const sl of rl.scopeLogs)
      for (const lr of sl.logRecords) {
        lr.traceId = Buffer.from(lr.traceId, "hex");
        lr.spanId = Buffer.from(lr.spanId, "hex");
      }
  return Buffer.from(otlpTypes.RequestType.encode(otlpTypes.RequestType.fromObject(copy)).finish());
}

export function encodeJson(request) {
  return Buffer.from(JSON.stringify(request));
}

// Realistic audit log requests for the benchmarks: ~8 attributes, a 200-byte body, a
// resource with service attributes, as an SDK would send them.
import { otlpTypes } from "../dist/agent/receivers/otlp/protobuf-codec.js";

const BODY =
  "User alice@example.com changed role of account 4711 from viewer to admin via the admin console; reason: quarterly access review ticket SEC-2231, approved by bob. Session 9f2c1e. ".padEnd(
    200,
    ".",
  );

/** One ExportLogsServiceRequest (OTLP/JSON shape) with `size` records, `auditRatio` of them audit. */
export function buildRequest(size, auditRatio = 1) {
  const now = BigInt(Date.now()) * 1_000_000n;
  const logRecords = [];
  const auditEvery = auditRatio > 0 ? Math.round(1 / auditRatio) : 0;
  for (let i = 0; i < size; i++) {
    const audit = auditEvery > 0 && i % auditEvery === 0;
    logRecords.push({
      timeUnixNano: String(now + BigInt(i)),
      observedTimeUnixNano: String(now + BigInt(i) + 1000n),
      severityNumber: 9,
      severityText: "INFO",
      eventName: audit ? "audit.user.role_changed" : "app.request",
      body: { stringValue: BODY },
      attributes: [
        { key: "audit", value: { boolValue: audit } },
        { key: "user.id", value: { stringValue: `u-${1000 + (i % 97)}` } },
        { key: "user.email", value: { stringValue: "alice@example.com" } },
        { key: "account.id", value: { intValue: String(4711 + i) } },
        { key: "role.old", value: { stringValue: "viewer" } },
        { key: "role.new", value: { stringValue: "admin" } },
        { key: "client.address", value: { stringValue: "10.12.4.87" } },
        { key: "http.request.method", value: { stringValue: "POST" } },
      ],
      traceId: "5b8efff798038103d269b633813fc60c",
      spanId: "eee19b7ec3c1b174",
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

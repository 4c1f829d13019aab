import { describe, expect, it } from "vitest";
import { compileAuditFilter } from "../../agent/processing/audit-filter/predicate.js";
import { auditFilterConfigSchema } from "../../agent/processing/audit-filter/config.js";
import { contextSuffix, recordJson } from "../../agent/otlp/canonical-record.js";
import { ProtobufCanonicalizer } from "../../agent/otlp/protobuf-canonical.js";
import { decodeLogsRequest } from "../../agent/otlp/protobuf-codec.js";

/**
 * A bool whose varint is wider than 32 bits (2^32: any value but 0 is true) must decode the
 * same on the fast path and through protobufjs (the path taken when a pass-through exporter
 * is configured), or one request would be stored differently depending on the config.
 */

/** A protobuf length-delimited field. */
const field = (tag: number, body: number[]) => [tag, body.length, ...body];

describe("bool values wider than 32 bits", () => {
  it("are true on both decoding paths, and the stored records are identical", () => {
    // AnyValue { bool_value (2) = varint 2^32 } in KeyValue { key "audit" value }
    const value = [0x10, 0x80, 0x80, 0x80, 0x80, 0x10];
    const keyValue = [...field(0x0a, [...Buffer.from("audit")]), ...field(0x12, value)];
    const logRecord = field(0x32, keyValue); // LogRecord.attributes (6)
    const scopeLogs = field(0x12, logRecord); // ScopeLogs.log_records (2)
    const resourceLogs = field(0x12, scopeLogs); // ResourceLogs.scope_logs (2)
    const body = Uint8Array.from(field(0x0a, resourceLogs)); // request.resource_logs (1)

    const isAudit = compileAuditFilter(auditFilterConfigSchema.parse({}));
    const fast = new ProtobufCanonicalizer(isAudit, 1 << 20).canonicalize(body);
    expect(fast.records).toHaveLength(1);
    const fastText = Buffer.from(fast.records[0] as string | Uint8Array).toString("utf8");
    expect(fastText).toContain('"boolValue":true');

    const decoded = decodeLogsRequest(body);
    const rl = decoded.resourceLogs[0]!;
    const sl = rl.scopeLogs[0]!;
    const lr = sl.logRecords[0]!;
    expect(lr.attributes[0]?.value?.boolValue).toBe(true);
    const suffix = contextSuffix(rl.resource, rl.schemaUrl, sl.scope, sl.schemaUrl);
    expect(recordJson(lr, suffix)).toBe(fastText);
  });
});

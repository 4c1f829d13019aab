// OTLP/protobuf request → canonical `record` texts of its audit records, two ways:
// the fast path the agent runs (ProtobufCanonicalizer: straight from the wire bytes, the
// audit filter reading a view over them) and the general path (protobufjs decode, then the
// filter on the decoded record and canonical-record.ts), as agent/processing/pipeline.ts
// calls each. Realistic 512-record requests from bench/records.mjs, all audit and 10 %.
import { contextSuffix, recordJson } from "../../dist/agent/otlp/canonical-record.js";
import { ProtobufCanonicalizer } from "../../dist/agent/otlp/protobuf-canonical.js";
import { decodeLogsRequest } from "../../dist/agent/otlp/protobuf-codec.js";
import { modelRecordView } from "../../dist/agent/otlp/record-view.js";
import { DEFAULT_CONDITIONS } from "../../dist/agent/processing/audit-filter/config.js";
import { compileAuditFilter } from "../../dist/agent/processing/audit-filter/predicate.js";
import { buildRequest, encodeProto } from "../records.mjs";
import { assertSameBytes, report, suite } from "./lib.mjs";

const MAX_RECORD_BYTES = 1024 * 1024; // wal.max_record_size_kib's default
const isAudit = compileAuditFilter({ match: "any", conditions: DEFAULT_CONDITIONS });

/** The general path: LogsPipeline.consume's loop over a decoded request. */
function generalPath(body) {
  const request = decodeLogsRequest(body);
  const records = [];
  for (const rl of request.resourceLogs)
    for (const sl of rl.scopeLogs) {
      let suffix = null;
      for (const lr of sl.logRecords) {
        if (!isAudit(modelRecordView(lr), sl.scope, rl.resource)) continue;
        suffix ??= contextSuffix(rl.resource, rl.schemaUrl, sl.scope, sl.schemaUrl);
        records.push(recordJson(lr, suffix));
      }
    }
  return records;
}

const s = suite("Protobuf request → canonical records: fast path vs protobufjs path", {
  op: "record",
  bytesOf: "request bytes",
});
const fast = new ProtobufCanonicalizer(isAudit, MAX_RECORD_BYTES);
for (const auditRatio of [1, 0.1]) {
  const body = encodeProto(buildRequest(512, auditRatio));
  const fastOut = fast.canonicalize(body).records;
  const generalOut = generalPath(body);
  assertSameBytes(Buffer.concat(fastOut), Buffer.from(generalOut.join("")), "canonical text");
  const outBytes = fastOut.reduce((n, r) => n + r.length, 0);
  const per = { ops: 512, bytes: body.length };
  s.group(`512 records, ${auditRatio === 1 ? "all" : "10 %"} audit (${body.length} B in)`);
  s.add("fast path: ProtobufCanonicalizer.canonicalize", () => fast.canonicalize(body), per);
  s.add("general path: decode + filter + recordJson", () => generalPath(body), per);
  s.add("… of which protobufjs decodeLogsRequest alone", () => decodeLogsRequest(body), per);
  s.add(
    "general path + UTF-8 encoding of each text (what the WAL then writes)",
    () => {
      for (const t of generalPath(body)) Buffer.from(t, "utf8");
    },
    per,
  );
  s.note(
    `${auditRatio === 1 ? "all" : "10 %"} audit: ${fastOut.length} audit records, ${Math.round(outBytes / fastOut.length)} B of canonical JSON each; both paths' output checked byte-identical before timing.`,
  );
}
s.note("Records/s counts every record of the request, audit or not (the filter reads them all).");
await report(s);

import { isUtf8 } from "node:buffer";
import { AgentError } from "../common/errors.js";
import { contextSuffix } from "./canonical-record.js";
import { int64Decimal, InvalidUtf8Error, JsonBytesWriter } from "../integrity/json-bytes.js";
import type { AuditPredicate, AuditRecordView } from "./record-view.js";
import {
  type AnyValue,
  type InstrumentationScope,
  type KeyValue,
  MAX_ANY_VALUE_DEPTH,
  type Resource,
} from "./model.js";
import { otlpTypes } from "./protobuf-codec.js";

/**
 * The OTLP/protobuf fast path: reads an ExportLogsServiceRequest straight from its wire
 * bytes, asks the audit filter about each LogRecord through a view over those bytes, and
 * writes each audit record's canonical `record` JSON (docs/integrity-format.md §3) into one
 * buffer, byte for byte what canonical-record.ts writes from a decoded message. No object
 * per record, attribute or value is built, which is where decoding with protobufjs spent
 * most of its time (and the garbage collector most of the rest).
 *
 * Strictness matches the protobufjs path or exceeds it: truncated or overlong fields,
 * wrong wire types for known fields, invalid UTF-8 in strings and wrong-length ids are
 * refused with OTLP_BAD_PROTOBUF. Unknown fields are skipped, and for a field that
 * appears twice the last occurrence wins, as proto3 parsers do for scalars. Every value
 * read is held to the rules of every transport (docs/integrity-format.md §3.11): at most
 * MAX_ANY_VALUE_DEPTH levels of nesting, and one member of the AnyValue oneof (protobufjs
 * and this reader would otherwise disagree on which of several wins).
 *
 * Resources and scopes are few per request, so they are decoded with protobufjs and
 * written by canonical-record.ts once per ScopeLogs.
 */

export interface CanonicalRecords {
  /** Each audit record's canonical `record` text (UTF-8), views into one buffer. */
  records: Buffer[];
  /** Non-audit records. */
  filtered: number;
  /** Audit records over the size limit, not stored. */
  rejected: number;
  /** Canonical size of the first rejected record. */
  firstRejectedBytes: number;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

// LogRecord field numbers (opentelemetry/proto/logs/v1/logs.proto).
const F_TIME = 1;
const F_SEVERITY_NUMBER = 2;
const F_SEVERITY_TEXT = 3;
const F_BODY = 5;
const F_ATTRIBUTES = 6;
const F_DROPPED = 7;
const F_FLAGS = 8;
const F_TRACE_ID = 9;
const F_SPAN_ID = 10;
const F_OBSERVED_TIME = 11;
const F_EVENT_NAME = 12;

const ResourceType = otlpTypes.RequestType.root.lookupType(
  "opentelemetry.proto.collector.logs.v1.Resource",
);
const ScopeType = otlpTypes.RequestType.root.lookupType(
  "opentelemetry.proto.collector.logs.v1.InstrumentationScope",
);
const AnyValueType = otlpTypes.RequestType.root.lookupType(
  "opentelemetry.proto.collector.logs.v1.AnyValue",
);

class WireError extends Error {}

/** What a ValueCheck finds wrong with a value (0: nothing). */
const VALUE_OK = 0;
const VALUE_TOO_DEEP = 1;
const VALUE_TWO_MEMBERS = 2;
const VALUE_PROBLEMS = [
  "",
  `values nested deeper than ${MAX_ANY_VALUE_DEPTH} levels`,
  "an AnyValue with more than one of its value fields set",
];

/** A value breaks a rule of every transport; the refusal names its path (ValueCheck). */
class ValueRuleError extends Error {
  constructor(readonly problem: number) {
    super(VALUE_PROBLEMS[problem]);
  }
}

/**
 * A cursor over one protobuf message's bytes. Field readers leave the field's value in
 * `lo`/`hi` (numbers) or `start`/`end` (length-delimited) instead of returning objects.
 */
class Reader {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  limit = 0;
  field = 0;
  wire = 0;
  lo = 0;
  hi = 0;
  start = 0;
  end = 0;

  at(buf: Uint8Array, pos: number, limit: number): this {
    this.buf = buf;
    this.pos = pos;
    this.limit = limit;
    return this;
  }

  /** Reads the next field's tag and value; false at the end of the message. */
  next(): boolean {
    if (this.pos >= this.limit) return false;
    this.varint();
    const tag = this.lo;
    if (this.hi !== 0 || tag > 0xffffffff)
      throw new WireError(`bad field tag at offset ${this.pos}`);
    this.field = tag >>> 3;
    this.wire = tag & 7;
    if (this.field === 0) throw new WireError(`field number 0 at offset ${this.pos}`);
    switch (this.wire) {
      case WIRE_VARINT:
        this.varint();
        break;
      case WIRE_I64:
        this.need(8);
        this.lo = readU32(this.buf, this.pos);
        this.hi = readU32(this.buf, this.pos + 4);
        this.pos += 8;
        break;
      case WIRE_LEN: {
        this.varint();
        if (this.hi !== 0) throw new WireError(`length too large at offset ${this.pos}`);
        const n = this.lo;
        this.need(n);
        this.start = this.pos;
        this.end = this.pos + n;
        this.pos = this.end;
        break;
      }
      case WIRE_I32:
        this.need(4);
        this.lo = readU32(this.buf, this.pos);
        this.hi = 0;
        this.pos += 4;
        break;
      default:
        // Groups (3, 4) are not used by OTLP; 6 and 7 do not exist.
        throw new WireError(`unsupported wire type ${this.wire} at offset ${this.pos}`);
    }
    return true;
  }

  /** Checks the wire type of a known field. */
  expect(wire: number): void {
    if (this.wire !== wire) {
      throw new WireError(
        `field ${this.field} has wire type ${this.wire}, expected ${wire} (offset ${this.pos})`,
      );
    }
  }

  private need(n: number): void {
    if (this.pos + n > this.limit) throw new WireError(`truncated field at offset ${this.pos}`);
  }

  /** A base-128 varint of up to 64 bits into lo/hi (uint32 halves). */
  private varint(): void {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.limit) throw new WireError(`truncated varint at offset ${this.pos}`);
      const b = buf[this.pos++] as number;
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >>> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      if (b < 0x80) {
        this.lo = lo >>> 0;
        this.hi = hi >>> 0;
        return;
      }
      shift += 7;
    }
    throw new WireError(`varint longer than 10 bytes at offset ${this.pos}`);
  }
}

function readU32(buf: Uint8Array, at: number): number {
  return (
    ((buf[at] as number) |
      ((buf[at + 1] as number) << 8) |
      ((buf[at + 2] as number) << 16) |
      ((buf[at + 3] as number) << 24)) >>>
    0
  );
}

/** Where a KeyValue's key and value are (value −1: absent; key empty when absent). */
class KeyValueScan {
  keyStart = 0;
  keyEnd = 0;
  valueStart = -1;
  valueEnd = -1;

  scan(r: Reader): this {
    this.keyStart = this.keyEnd = 0;
    this.valueStart = this.valueEnd = -1;
    while (r.next()) {
      if (r.field === 1) {
        r.expect(WIRE_LEN);
        this.keyStart = r.start;
        this.keyEnd = r.end;
      } else if (r.field === 2) {
        r.expect(WIRE_LEN);
        this.valueStart = r.start;
        this.valueEnd = r.end;
      }
    }
    return this;
  }
}

/**
 * The fields of one AnyValue: which oneof member is set (its field number, the last one on
 * the wire winning; 0 for none), and its value as lo/hi (bool, int, double) or as a
 * start/end range (string, array, kvlist, bytes). Shared by the writer and the filter's view.
 */
class AnyValueScan {
  kind = 0;
  lo = 0;
  hi = 0;
  start = 0;
  end = 0;

  scan(r: Reader): this {
    this.kind = 0;
    while (r.next()) {
      switch (r.field) {
        case 1:
        case 5:
        case 6:
        case 7:
          r.expect(WIRE_LEN);
          this.start = r.start;
          this.end = r.end;
          break;
        case 2:
        case 3:
          r.expect(WIRE_VARINT);
          this.lo = r.lo;
          this.hi = r.hi;
          break;
        case 4:
          r.expect(WIRE_I64);
          this.lo = r.lo;
          this.hi = r.hi;
          break;
        default:
          continue;
      }
      if (this.kind !== 0 && this.kind !== r.field) throw new ValueRuleError(VALUE_TWO_MEMBERS);
      this.kind = r.field;
    }
    return this;
  }
}

/** The LogRecord being classified: the audit filter's view of it, read from the wire. */
class WireLogRecord implements AuditRecordView {
  buf: Uint8Array = new Uint8Array(0);
  timeLo = 0;
  timeHi = 0;
  observedLo = 0;
  observedHi = 0;
  severity = 0;
  dropped = 0;
  flags = 0;
  /** Start and end of each length-delimited singular field, by field number (−1: absent). */
  readonly ranges = new Int32Array(2 * (F_EVENT_NAME + 1));
  attrCount = 0;
  /** Attribute KeyValue ranges as start, end pairs. */
  attrs = new Int32Array(64);
  private readonly reader = new Reader();
  private readonly valueReader = new Reader();
  private readonly valueScan = new AnyValueScan();
  private readonly kv = new KeyValueScan();
  private readonly keys = new Map<string, Buffer>();

  constructor(private readonly check: ValueCheck) {}

  reset(buf: Uint8Array): void {
    this.buf = buf;
    this.timeLo = this.timeHi = this.observedLo = this.observedHi = 0;
    this.severity = this.dropped = this.flags = 0;
    this.ranges.fill(-1);
    this.attrCount = 0;
  }

  start(field: number): number {
    return this.ranges[field * 2] as number;
  }

  end(field: number): number {
    return this.ranges[field * 2 + 1] as number;
  }

  /** Byte length of a length-delimited field, 0 when absent. */
  size(field: number): number {
    const start = this.ranges[field * 2] as number;
    return start < 0 ? 0 : (this.ranges[field * 2 + 1] as number) - start;
  }

  addAttribute(start: number, end: number): void {
    if (this.attrCount * 2 + 2 > this.attrs.length) {
      const grown = new Int32Array(this.attrs.length * 2);
      grown.set(this.attrs);
      this.attrs = grown;
    }
    this.attrs[this.attrCount * 2] = start;
    this.attrs[this.attrCount * 2 + 1] = end;
    this.attrCount++;
  }

  get eventName(): string {
    return this.text(F_EVENT_NAME);
  }

  get severityText(): string {
    return this.text(F_SEVERITY_TEXT);
  }

  private text(field: number): string {
    return this.size(field) === 0 ? "" : this.string(this.start(field), this.end(field));
  }

  private string(start: number, end: number): string {
    const buf = this.buf;
    return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString("utf8");
  }

  get severityNumber(): number {
    return this.severity;
  }

  /** The first attribute with this key, decoded; only the filter's keys are ever decoded. */
  attribute(key: string): KeyValue | undefined {
    let wanted = this.keys.get(key);
    if (wanted === undefined) {
      wanted = Buffer.from(key, "utf8");
      if (this.keys.size < 64) this.keys.set(key, wanted);
    }
    const kv = this.kv;
    for (let i = 0; i < this.attrCount; i++) {
      kv.scan(
        this.reader.at(this.buf, this.attrs[i * 2] as number, this.attrs[i * 2 + 1] as number),
      );
      if (!bytesEqual(this.buf, kv.keyStart, kv.keyEnd, wanted)) continue;
      if (kv.valueStart < 0) return { key, value: null };
      const value =
        this.scalarValue(kv.valueStart, kv.valueEnd) ??
        this.compositeValue(kv.valueStart, kv.valueEnd);
      return { key, value };
    }
    return undefined;
  }

  /** An array, kvlist or bytes value, decoded by protobufjs once it is known to be in bounds. */
  private compositeValue(start: number, end: number): AnyValue {
    const problem = this.check.anyValue(this.buf, start, end, 1, null);
    if (problem !== VALUE_OK) throw new ValueRuleError(problem);
    return AnyValueType.decode(this.buf.subarray(start, end)) as unknown as AnyValue;
  }

  /**
   * A scalar AnyValue (string, bool, int, double: what filter conditions compare) read
   * straight from the wire, the last oneof member winning; null for composite values,
   * which protobufjs decodes. A protobufjs message per audit record was the filter's
   * largest allocation.
   */
  private scalarValue(start: number, end: number): AnyValue | null {
    const { kind, lo, hi } = this.valueScan.scan(this.valueReader.at(this.buf, start, end));
    switch (kind) {
      case 1:
        return {
          value: "stringValue",
          stringValue: this.string(this.valueScan.start, this.valueScan.end),
        };
      case 2:
        return { value: "boolValue", boolValue: lo !== 0 || hi !== 0 };
      case 3:
        return { value: "intValue", intValue: int64Decimal(lo, hi) };
      case 4:
        f64Words[0] = lo;
        f64Words[1] = hi;
        return { value: "doubleValue", doubleValue: f64[0] as number };
      case 0:
        return {};
      default:
        return null; // array, kvlist or bytes: decoded in full
    }
  }
}

function bytesEqual(buf: Uint8Array, start: number, end: number, wanted: Buffer): boolean {
  if (end - start !== wanted.length) return false;
  for (let i = 0; i < wanted.length; i++) if (buf[start + i] !== wanted[i]) return false;
  return true;
}

/**
 * Decodes `body`, classifies every LogRecord with `isAudit`, and writes each audit
 * record's canonical text. Records whose canonical text exceeds `maxRecordBytes` are
 * counted as rejected and not returned. Throws AgentError OTLP_BAD_PROTOBUF for
 * malformed input, before anything is stored.
 */
export class ProtobufCanonicalizer {
  private readonly out = new JsonBytesWriter();
  private readonly check = new ValueCheck();
  private readonly record = new WireLogRecord(this.check);
  /** The LogRecord being read: its indices and bytes, to name it when a value is refused. */
  private readonly current = { r: 0, s: 0, i: 0, start: 0, end: 0 };
  private readonly top = new Reader();
  private readonly rl = new Reader();
  private readonly sl = new Reader();
  private readonly lr = new Reader();
  private readonly ends: number[] = [];
  private readonly keyValueReaders = new ReaderPool();
  private readonly keyValue = new KeyValueScan();
  private readonly anyValueScan = new AnyValueScan();
  private readonly anyValueReaders = new ReaderPool();
  private readonly listReaders = new ReaderPool();
  private firstMember = true;

  constructor(
    private readonly isAudit: AuditPredicate,
    private readonly maxRecordBytes: number,
  ) {}

  canonicalize(body: Uint8Array): CanonicalRecords {
    try {
      return this.run(body);
    } catch (err) {
      if (err instanceof AgentError) throw err;
      if (err instanceof ValueRuleError) throw this.recordValueRefusal(body, err);
      const why = err instanceof Error ? err.message : String(err);
      throw new AgentError(
        "OTLP_BAD_PROTOBUF",
        `request body is not a valid protobuf ExportLogsServiceRequest: ${why}`,
      );
    }
  }

  /** The refusal of the current record's value, found again with its path. */
  private recordValueRefusal(body: Uint8Array, err: ValueRuleError): AgentError {
    const { r, s, i, start, end } = this.current;
    const where = `resourceLogs[${r}].scopeLogs[${s}].logRecords[${i}]`;
    return this.check.refusal(body, start, end, LOG_RECORD_SHAPE, where, err.problem);
  }

  private run(body: Uint8Array): CanonicalRecords {
    const out = this.out;
    out.reset();
    const ends = this.ends;
    ends.length = 0;
    const result: CanonicalRecords = {
      records: [],
      filtered: 0,
      rejected: 0,
      firstRejectedBytes: 0,
    };
    const top = this.top.at(body, 0, body.length);
    let r = 0;
    while (top.next()) {
      if (top.field !== 1) continue;
      top.expect(WIRE_LEN);
      this.resourceLogs(body, top.start, top.end, r++, result);
    }
    const stored = Buffer.allocUnsafeSlow(out.pos);
    out.buf.copy(stored, 0, 0, out.pos);
    let from = 0;
    for (const end of ends) {
      result.records.push(stored.subarray(from, end));
      from = end;
    }
    return result;
  }

  private resourceLogs(
    buf: Uint8Array,
    start: number,
    end: number,
    r: number,
    result: CanonicalRecords,
  ): void {
    const rl = this.rl.at(buf, start, end);
    let resourceStart = -1;
    let resourceEnd = -1;
    let schemaStart = 0;
    let schemaEnd = 0;
    const scopes: number[] = [];
    while (rl.next()) {
      if (rl.field > 3) continue;
      rl.expect(WIRE_LEN);
      if (rl.field === 1) {
        resourceStart = rl.start;
        resourceEnd = rl.end;
      } else if (rl.field === 2) scopes.push(rl.start, rl.end);
      else {
        schemaStart = rl.start;
        schemaEnd = rl.end;
      }
    }
    // The resource's values are held to every transport's rules before protobufjs reads them.
    if (resourceStart >= 0) {
      const where = () => `resourceLogs[${r}].resource`;
      this.check.check(buf, resourceStart, resourceEnd, RESOURCE_SHAPE, where);
    }
    const resource =
      resourceStart < 0
        ? null
        : (ResourceType.decode(buf.subarray(resourceStart, resourceEnd)) as unknown as Resource);
    const schemaUrl = checkedString(buf, schemaStart, schemaEnd);
    for (let s = 0; s < scopes.length; s += 2) {
      this.scopeLogs(
        buf,
        scopes[s] as number,
        scopes[s + 1] as number,
        r,
        s / 2,
        resource,
        schemaUrl,
        result,
      );
    }
  }

  private scopeLogs(
    buf: Uint8Array,
    start: number,
    end: number,
    r: number,
    s: number,
    resource: Resource | null,
    resourceSchemaUrl: string,
    result: CanonicalRecords,
  ): void {
    const sl = this.sl.at(buf, start, end);
    let scopeStart = -1;
    let scopeEnd = -1;
    let schemaStart = 0;
    let schemaEnd = 0;
    while (sl.next()) {
      if (sl.field === 1) {
        sl.expect(WIRE_LEN);
        scopeStart = sl.start;
        scopeEnd = sl.end;
      } else if (sl.field === 3) {
        sl.expect(WIRE_LEN);
        schemaStart = sl.start;
        schemaEnd = sl.end;
      }
    }
    if (scopeStart >= 0) {
      const where = () => `resourceLogs[${r}].scopeLogs[${s}].scope`;
      this.check.check(buf, scopeStart, scopeEnd, SCOPE_SHAPE, where);
    }
    const scope =
      scopeStart < 0
        ? null
        : (ScopeType.decode(buf.subarray(scopeStart, scopeEnd)) as unknown as InstrumentationScope);
    const schemaUrl = checkedString(buf, schemaStart, schemaEnd);
    // Written once per scope, copied after each of its audit records.
    let suffix: Buffer | null = null;
    const record = this.record;
    const out = this.out;
    const current = this.current;
    current.r = r;
    current.s = s;
    sl.at(buf, start, end);
    let i = 0;
    while (sl.next()) {
      if (sl.field !== 2) continue;
      sl.expect(WIRE_LEN);
      current.i = i;
      current.start = sl.start;
      current.end = sl.end;
      this.scanLogRecord(buf, sl.start, sl.end);
      const traceLen = record.size(F_TRACE_ID);
      const spanLen = record.size(F_SPAN_ID);
      if ((traceLen !== 0 && traceLen !== 16) || (spanLen !== 0 && spanLen !== 8)) {
        throw new AgentError(
          "OTLP_BAD_PROTOBUF",
          `resourceLogs[${r}].scopeLogs[${s}].logRecords[${i}]: trace_id must be 16 bytes and span_id 8 bytes (got ${traceLen} and ${spanLen})`,
        );
      }
      i++;
      if (!this.isAudit(record, scope, resource)) {
        result.filtered++;
        continue;
      }
      suffix ??= Buffer.from(contextSuffix(resource, resourceSchemaUrl, scope, schemaUrl), "utf8");
      const from = out.pos;
      out.ascii('{"logRecord":');
      this.writeLogRecord();
      out.bytes(suffix);
      const size = out.pos - from;
      if (size > this.maxRecordBytes) {
        out.pos = from;
        if (result.rejected === 0) result.firstRejectedBytes = size;
        result.rejected++;
        continue;
      }
      this.ends.push(out.pos);
    }
  }

  /** Records where each LogRecord field is; values are read when written. */
  private scanLogRecord(buf: Uint8Array, start: number, end: number): void {
    const rec = this.record;
    rec.reset(buf);
    const lr = this.lr.at(buf, start, end);
    while (lr.next()) {
      switch (lr.field) {
        case F_SEVERITY_TEXT:
        case F_BODY:
        case F_TRACE_ID:
        case F_SPAN_ID:
        case F_EVENT_NAME:
          lr.expect(WIRE_LEN);
          rec.ranges[lr.field * 2] = lr.start;
          rec.ranges[lr.field * 2 + 1] = lr.end;
          break;
        case F_ATTRIBUTES:
          lr.expect(WIRE_LEN);
          rec.addAttribute(lr.start, lr.end);
          break;
        case F_TIME:
          lr.expect(WIRE_I64);
          rec.timeLo = lr.lo;
          rec.timeHi = lr.hi;
          break;
        case F_OBSERVED_TIME:
          lr.expect(WIRE_I64);
          rec.observedLo = lr.lo;
          rec.observedHi = lr.hi;
          break;
        case F_SEVERITY_NUMBER:
          lr.expect(WIRE_VARINT);
          rec.severity = lr.lo | 0;
          break;
        case F_DROPPED:
          lr.expect(WIRE_VARINT);
          rec.dropped = lr.lo;
          break;
        case F_FLAGS:
          lr.expect(WIRE_I32);
          rec.flags = lr.lo;
          break;
        default:
          break; // unknown or reserved: skipped, as proto3 requires
      }
    }
  }

  /** The LogRecord's members in RFC 8785 order; zero values are omitted (proto3 JSON). */
  private writeLogRecord(): void {
    const rec = this.record;
    const out = this.out;
    const buf = rec.buf;
    this.firstMember = true;
    if (rec.attrCount > 0) {
      this.member('"attributes":[');
      for (let i = 0; i < rec.attrCount; i++) {
        if (i > 0) out.byte(0x2c);
        this.writeKeyValue(buf, rec.attrs[i * 2] as number, rec.attrs[i * 2 + 1] as number, 1);
      }
      out.byte(0x5d);
    }
    if (rec.start(F_BODY) >= 0) {
      this.member('"body":');
      this.writeAnyValue(buf, rec.start(F_BODY), rec.end(F_BODY), 1);
    }
    if (rec.dropped !== 0) {
      this.member('"droppedAttributesCount":');
      out.uint64(rec.dropped, 0);
    }
    this.stringMember('"eventName":', F_EVENT_NAME);
    if (rec.flags !== 0) {
      this.member('"flags":');
      out.uint64(rec.flags, 0);
    }
    if (rec.observedLo !== 0 || rec.observedHi !== 0) {
      this.member('"observedTimeUnixNano":"');
      out.uint64(rec.observedLo, rec.observedHi);
      out.byte(0x22);
    }
    if (rec.severity !== 0) {
      this.member('"severityNumber":');
      out.int64(rec.severity, rec.severity < 0 ? 0xffffffff : 0);
    }
    this.stringMember('"severityText":', F_SEVERITY_TEXT);
    if (rec.size(F_SPAN_ID) > 0) {
      this.member('"spanId":');
      out.hex(buf, rec.start(F_SPAN_ID), rec.end(F_SPAN_ID));
    }
    if (rec.timeLo !== 0 || rec.timeHi !== 0) {
      this.member('"timeUnixNano":"');
      out.uint64(rec.timeLo, rec.timeHi);
      out.byte(0x22);
    }
    if (rec.size(F_TRACE_ID) > 0) {
      this.member('"traceId":');
      out.hex(buf, rec.start(F_TRACE_ID), rec.end(F_TRACE_ID));
    }
    out.ascii(this.firstMember ? "{}" : "}");
  }

  /** Opens a member of the LogRecord object: `{` or `,`, then `text`. */
  private member(text: string): void {
    this.out.byte(this.firstMember ? 0x7b : 0x2c);
    this.out.ascii(text);
    this.firstMember = false;
  }

  /** A string member, omitted when empty. */
  private stringMember(name: string, field: number): void {
    const rec = this.record;
    if (rec.size(field) === 0) return;
    this.member(name);
    this.out.string(rec.buf, rec.start(field), rec.end(field));
  }

  /** `{"key":…,"value":…}`, the value at nesting `level`; no value member when absent. */
  private writeKeyValue(buf: Uint8Array, start: number, end: number, level: number): void {
    const kv = this.keyValue.scan(this.keyValueReaders.at(level, buf, start, end));
    // Read before recursing: nested KeyValues reuse the same scan.
    const { keyStart, keyEnd, valueStart, valueEnd } = kv;
    const out = this.out;
    out.ascii('{"key":');
    out.string(buf, keyStart, keyEnd);
    if (valueStart >= 0) {
      out.ascii(',"value":');
      this.writeAnyValue(buf, valueStart, valueEnd, level);
    }
    out.byte(0x7d);
  }

  /**
   * One AnyValue at nesting `level` (1: a body or a top-level attribute's value): its one
   * oneof member (the same member repeated: the last), or `{}` when none is set.
   */
  private writeAnyValue(buf: Uint8Array, start: number, end: number, level: number): void {
    if (level > MAX_ANY_VALUE_DEPTH) throw new ValueRuleError(VALUE_TOO_DEEP);
    // Read into locals before writing: nested values reuse the same scan.
    const scan = this.anyValueScan.scan(this.anyValueReaders.at(level, buf, start, end));
    const { kind, lo, hi } = scan;
    const vStart = scan.start;
    const vEnd = scan.end;
    const out = this.out;
    switch (kind) {
      case 1:
        out.ascii('{"stringValue":');
        out.string(buf, vStart, vEnd);
        out.byte(0x7d);
        return;
      case 2:
        out.ascii(lo !== 0 || hi !== 0 ? '{"boolValue":true}' : '{"boolValue":false}');
        return;
      case 3:
        out.ascii('{"intValue":"');
        out.int64(lo, hi);
        out.ascii('"}');
        return;
      case 4:
        out.ascii(`{"doubleValue":${doubleJson(lo, hi)}}`);
        return;
      case 5:
        this.writeList(buf, vStart, vEnd, level, '{"arrayValue":', false);
        return;
      case 6:
        this.writeList(buf, vStart, vEnd, level, '{"kvlistValue":', true);
        return;
      case 7:
        out.ascii('{"bytesValue":');
        out.base64(buf, vStart, vEnd);
        out.byte(0x7d);
        return;
      default:
        out.ascii("{}");
    }
  }

  /** ArrayValue or KeyValueList of the value at `level`: `{}` when empty, else `{"values":[…]}`. */
  private writeList(
    buf: Uint8Array,
    start: number,
    end: number,
    level: number,
    head: string,
    keyValues: boolean,
  ): void {
    const out = this.out;
    out.ascii(head);
    const r = this.listReaders.at(level, buf, start, end);
    let n = 0;
    while (r.next()) {
      if (r.field !== 1) continue;
      r.expect(WIRE_LEN);
      out.ascii(n === 0 ? '{"values":[' : ",");
      if (keyValues) this.writeKeyValue(buf, r.start, r.end, level + 1);
      else this.writeAnyValue(buf, r.start, r.end, level + 1);
      n++;
    }
    out.ascii(n === 0 ? "{}}" : "]}}");
  }
}

const f64 = new Float64Array(1);
const f64Words = new Uint32Array(f64.buffer);

/** A double from its two little-endian words, as canonical-record.ts writes doubles. */
function doubleJson(lo: number, hi: number): string {
  f64Words[0] = lo;
  f64Words[1] = hi;
  const d = f64[0] as number;
  if (Number.isFinite(d)) return JSON.stringify(d);
  return Number.isNaN(d) ? '"NaN"' : d > 0 ? '"Infinity"' : '"-Infinity"';
}

/** A string field decoded to JS, refusing invalid UTF-8 as every stored string is. */
function checkedString(buf: Uint8Array, start: number, end: number): string {
  if (start === end) return "";
  const bytes = Buffer.from(buf.buffer, buf.byteOffset + start, end - start);
  if (!isUtf8(bytes))
    throw new InvalidUtf8Error(`invalid UTF-8 in a string field at offset ${start}`);
  return bytes.toString("utf8");
}

/** Readers for nested values, one per nesting depth and kind, reused across records. */
class ReaderPool {
  private readonly readers: Reader[] = [];
  at(depth: number, buf: Uint8Array, start: number, end: number): Reader {
    let r = this.readers[depth];
    if (r === undefined) {
      r = new Reader();
      this.readers[depth] = r;
    }
    return r.at(buf, start, end);
  }
}

/** `a.b[0].c`, shortened in the middle when long. */
function joinPath(where: string, segments: string[]): string {
  const out = segments.length === 0 ? where : `${where}.${segments.join(".")}`;
  return out.length > 240 ? `${out.slice(0, 160)}…${out.slice(-70)}` : out;
}

/**
 * A message ValueCheck reads: the wire type of each known field (by field number; −1 or
 * past the end: unknown, skipped), and its AnyValue and KeyValue fields (0: none).
 */
interface MessageShape {
  wires: Int8Array;
  body: number;
  attributes: number;
}

function shape(wires: Record<number, number>, body: number, attributes: number): MessageShape {
  const table = new Int8Array(16).fill(-1);
  for (const [field, wire] of Object.entries(wires)) table[Number(field)] = wire;
  return { wires: table, body, attributes };
}

const LOG_RECORD_SHAPE = shape(
  {
    [F_TIME]: WIRE_I64,
    [F_SEVERITY_NUMBER]: WIRE_VARINT,
    [F_SEVERITY_TEXT]: WIRE_LEN,
    [F_BODY]: WIRE_LEN,
    [F_ATTRIBUTES]: WIRE_LEN,
    [F_DROPPED]: WIRE_VARINT,
    [F_FLAGS]: WIRE_I32,
    [F_TRACE_ID]: WIRE_LEN,
    [F_SPAN_ID]: WIRE_LEN,
    [F_OBSERVED_TIME]: WIRE_I64,
    [F_EVENT_NAME]: WIRE_LEN,
  },
  F_BODY,
  F_ATTRIBUTES,
);
const RESOURCE_SHAPE = shape({ 1: WIRE_LEN, 2: WIRE_VARINT, 3: WIRE_LEN }, 0, 1);
const SCOPE_SHAPE = shape({ 1: WIRE_LEN, 2: WIRE_LEN, 3: WIRE_LEN, 4: WIRE_VARINT }, 0, 3);
/** AnyValue: string, bool, int, double, array, kvlist, bytes. */
const ANY_VALUE_WIRES = [
  -1,
  WIRE_LEN,
  WIRE_VARINT,
  WIRE_VARINT,
  WIRE_I64,
  WIRE_LEN,
  WIRE_LEN,
  WIRE_LEN,
];

/**
 * Checks the rules every transport applies to AnyValues (nesting at most
 * MAX_ANY_VALUE_DEPTH levels, one oneof member) straight on the wire, for the values that
 * protobufjs decodes (resources, scopes, composite values the audit filter reads, and whole
 * requests on the pass-through path) and to name a refused record value's path. Recursion
 * stops at the limit, so no body can exhaust the stack. It also refuses (WireError) a known
 * field with the wrong wire type, as the fast path does: protobufjs would read it by its
 * declared type and could then see bytes that were never checked. Without `path` it
 * allocates nothing; with one, it leaves there the segments leading to the value it refuses.
 */
class ValueCheck {
  private readonly values = new ReaderPool();
  private readonly lists = new ReaderPool();
  private readonly keyValues = new ReaderPool();
  private readonly fields = new Reader();

  /** The problem (VALUE_*) of the AnyValue in buf[start, end) at nesting `level`. */
  anyValue(
    buf: Uint8Array,
    start: number,
    end: number,
    level: number,
    path: string[] | null,
  ): number {
    if (level > MAX_ANY_VALUE_DEPTH) return VALUE_TOO_DEEP;
    const r = this.values.at(level, buf, start, end);
    let kind = 0;
    while (r.next()) {
      if (r.field > 7) continue;
      r.expect(ANY_VALUE_WIRES[r.field] as number);
      if (kind !== 0 && kind !== r.field) return VALUE_TWO_MEMBERS;
      kind = r.field;
      if (kind !== 5 && kind !== 6) continue;
      const list = this.lists.at(level, buf, r.start, r.end);
      for (let i = 0; list.next();) {
        if (list.field !== 1) continue;
        list.expect(WIRE_LEN);
        path?.push(kind === 5 ? `arrayValue.values[${i}]` : `kvlistValue.values[${i}].value`);
        const problem =
          kind === 5
            ? this.anyValue(buf, list.start, list.end, level + 1, path)
            : this.keyValue(buf, list.start, list.end, level + 1, path);
        if (problem !== VALUE_OK) return problem;
        path?.pop();
        i++;
      }
    }
    return VALUE_OK;
  }

  /** The problem of the value of the KeyValue in buf[start, end), at nesting `level`. */
  keyValue(
    buf: Uint8Array,
    start: number,
    end: number,
    level: number,
    path: string[] | null,
  ): number {
    const r = this.keyValues.at(level, buf, start, end);
    while (r.next()) {
      if (r.field !== 1 && r.field !== 2) continue;
      r.expect(WIRE_LEN);
      if (r.field === 1) continue;
      const problem = this.anyValue(buf, r.start, r.end, level, path);
      if (problem !== VALUE_OK) return problem;
    }
    return VALUE_OK;
  }

  /** The problem of the values of a LogRecord, Resource or InstrumentationScope. */
  message(
    buf: Uint8Array,
    start: number,
    end: number,
    of: MessageShape,
    path: string[] | null,
  ): number {
    const r = this.fields.at(buf, start, end);
    let attribute = 0;
    while (r.next()) {
      const wire = of.wires[r.field] ?? -1;
      if (wire < 0) continue;
      r.expect(wire);
      let problem = VALUE_OK;
      if (r.field === of.attributes) {
        path?.push(`attributes[${attribute++}].value`);
        problem = this.keyValue(buf, r.start, r.end, 1, path);
      } else if (r.field === of.body) {
        path?.push("body");
        problem = this.anyValue(buf, r.start, r.end, 1, path);
      } else continue;
      if (problem !== VALUE_OK) return problem;
      path?.pop();
    }
    return VALUE_OK;
  }

  /**
   * The refusal of a message (at `where`) holding a value that breaks a rule, with its path;
   * `found`: the problem already found there, if the walk does not find it again.
   */
  refusal(
    buf: Uint8Array,
    start: number,
    end: number,
    of: MessageShape,
    where: string,
    found = VALUE_OK,
  ): AgentError {
    const path: string[] = [];
    let problem: number;
    try {
      problem = this.message(buf, start, end, of, path) || found;
    } catch (err) {
      // A malformed field met before the value: that is the refusal, as the request's.
      const why = err instanceof Error ? err.message : String(err);
      return new AgentError(
        "OTLP_BAD_PROTOBUF",
        `request body is not a valid protobuf ExportLogsServiceRequest: ${why}`,
      );
    }
    return new AgentError(
      "OTLP_BAD_PROTOBUF",
      `request is not a valid protobuf ExportLogsServiceRequest: ${joinPath(where, path)}: ${VALUE_PROBLEMS[problem]}`,
    );
  }

  /** Throws the refusal of the message at `where` when its values break a rule. */
  check(buf: Uint8Array, start: number, end: number, of: MessageShape, where: () => string) {
    if (this.message(buf, start, end, of, null) === VALUE_OK) return;
    throw this.refusal(buf, start, end, of, where());
  }
}

const requestCheck = new ValueCheck();

/**
 * Checks every AnyValue of a whole request (every record's, audit or not, and every
 * resource's and scope's) against the rules of every transport, and the wire types of the
 * fields around them, as the general path needs before protobufjs decodes the request.
 * Throws AgentError OTLP_BAD_PROTOBUF naming the value's path, or for a malformed request.
 */
export function checkProtobufNesting(body: Uint8Array): void {
  const check = requestCheck;
  try {
    const top = new Reader().at(body, 0, body.length);
    const rl = new Reader();
    const sl = new Reader();
    for (let r = 0; top.next(); r++) {
      if (top.field !== 1) continue;
      top.expect(WIRE_LEN);
      rl.at(body, top.start, top.end);
      for (let s = 0; rl.next();) {
        if (rl.field > 3) continue;
        rl.expect(WIRE_LEN);
        if (rl.field === 1)
          check.check(body, rl.start, rl.end, RESOURCE_SHAPE, () => `resourceLogs[${r}].resource`);
        if (rl.field !== 2) continue;
        sl.at(body, rl.start, rl.end);
        for (let i = 0; sl.next();) {
          if (sl.field > 3) continue;
          sl.expect(WIRE_LEN);
          const at = `resourceLogs[${r}].scopeLogs[${s}]`;
          if (sl.field === 1) check.check(body, sl.start, sl.end, SCOPE_SHAPE, () => `${at}.scope`);
          if (sl.field !== 2) continue;
          check.check(body, sl.start, sl.end, LOG_RECORD_SHAPE, () => `${at}.logRecords[${i}]`);
          i++;
        }
        s++;
      }
    }
  } catch (err) {
    if (err instanceof AgentError) throw err;
    const why = err instanceof Error ? err.message : String(err);
    throw new AgentError(
      "OTLP_BAD_PROTOBUF",
      `request body is not a valid protobuf ExportLogsServiceRequest: ${why}`,
    );
  }
}

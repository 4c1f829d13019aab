import { nanosToIso } from "../verify-findings.js";

/**
 * What the report and `audit-agent search` show of a record line (docs/integrity-format.md
 * §2, §3): read from the line, never trusted. A line is attacker-controlled text: its
 * fields are only ever shown escaped (render-html.ts) and compared as text.
 */

/** The envelope's last members, in their fixed canonical order (§2). */
const ENVELOPE_TAIL = /,"seq":"(0|[1-9]\d{0,15})","timeReceivedUnixNano":"(\d{1,20})","v":1\}$/;

/** A line's seq and receive time (unix ns), read without parsing the line; null when not one. */
export function envelopeTail(line: string): { seq: number; received: bigint } | null {
  const m = ENVELOPE_TAIL.exec(line.slice(-80));
  return m ? { seq: Number(m[1]), received: BigInt(m[2] as string) } : null;
}

interface KeyValueJson {
  key?: unknown;
  value?: unknown;
}

interface RecordJson {
  logRecord?: {
    attributes?: KeyValueJson[];
    body?: unknown;
    eventName?: unknown;
    severityText?: unknown;
    severityNumber?: unknown;
    timeUnixNano?: unknown;
  };
  resource?: { attributes?: KeyValueJson[] };
  scope?: { attributes?: KeyValueJson[] };
}

/** One record as the report's table and the search show it. */
export interface RecordView {
  chainId: string;
  seq: number;
  /** The agent's receive time, ISO 8601. */
  received: string;
  /** The record's own time (timeUnixNano), ISO 8601, when it has one. */
  time: string | null;
  /** The resource's service.name. */
  service: string | null;
  eventName: string | null;
  severity: string | null;
  /** The log record's attributes, as key and value text, in order. */
  attributes: Array<[string, string]>;
  body: string | null;
  /** Resource and scope attributes (what --where matches besides the record's own). */
  context: Array<[string, string]>;
}

/** An AnyValue (§3.9) as text: strings as they are, other values as JSON. */
export function anyValueText(value: unknown): string {
  if (typeof value !== "object" || value === null) return "";
  const v = value as Record<string, unknown>;
  if (typeof v.stringValue === "string") return v.stringValue;
  if (typeof v.intValue === "string") return v.intValue;
  if (typeof v.boolValue === "boolean") return String(v.boolValue);
  if (v.doubleValue !== undefined) return String(v.doubleValue);
  return JSON.stringify(value);
}

function keyValues(list: unknown): Array<[string, string]> {
  if (!Array.isArray(list)) return [];
  return (list as KeyValueJson[]).map((kv) => [String(kv.key ?? ""), anyValueText(kv.value)]);
}

const text = (v: unknown) => (typeof v === "string" && v !== "" ? v : null);

/** The view of a stored line, or null when it is not a record line (the verifier says why). */
export function viewRecord(chainId: string, line: string): RecordView | null {
  const tail = envelopeTail(line);
  if (!tail) return null;
  let record: RecordJson;
  try {
    record = (JSON.parse(line) as { record?: RecordJson }).record ?? {};
  } catch {
    return null;
  }
  const log = record.logRecord ?? {};
  const time = typeof log.timeUnixNano === "string" && /^\d+$/.test(log.timeUnixNano);
  const resource = keyValues(record.resource?.attributes);
  return {
    chainId,
    seq: tail.seq,
    received: nanosToIso(tail.received),
    time: time ? nanosToIso(BigInt(log.timeUnixNano as string)) : null,
    service: resource.find(([k]) => k === "service.name")?.[1] ?? null,
    eventName: text(log.eventName),
    severity:
      text(log.severityText) ??
      (typeof log.severityNumber === "number" ? String(log.severityNumber) : null),
    attributes: keyValues(log.attributes),
    body: log.body === undefined ? null : anyValueText(log.body),
    context: [
      ...resource,
      ...keyValues(record.scope?.attributes).map(([k, v]): [string, string] => [k, v]),
    ],
  };
}

/** `--where KEY=VALUE`: a record attribute (its own, its resource's or scope's) or field. */
export interface WhereClause {
  key: string;
  value: string;
}

/** Fields --where can name besides attributes. */
const FIELDS: Record<string, (r: RecordView) => string | null> = {
  eventName: (r) => r.eventName,
  severity: (r) => r.severity,
  body: (r) => r.body,
};

/** Whether the record meets every clause (an attribute named twice: either value). */
export function matches(r: RecordView, where: readonly WhereClause[]): boolean {
  return where.every(({ key, value }) => {
    const field = Object.hasOwn(FIELDS, key) ? FIELDS[key] : undefined;
    if (field && field(r) === value) return true;
    return [...r.attributes, ...r.context].some(([k, v]) => k === key && v === value);
  });
}

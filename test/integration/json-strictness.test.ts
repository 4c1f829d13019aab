import * as grpc from "@grpc/grpc-js";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { otlpTypes } from "../../agent/otlp/protobuf-codec.js";
import {
  attr,
  type InProcessAgent,
  makeTempDir,
  readOutput,
  startInProcessAgent,
  waitFor,
} from "../helpers/agent.js";
import { grpcExport } from "../helpers/otlp-grpc.js";

/**
 * The record stored is exactly what the client sent, or the request (or the record) is
 * refused: docs/integrity-format.md §3.11, against the real agent over OTLP/HTTP JSON,
 * OTLP/HTTP protobuf and gRPC.
 *
 * - One nesting limit (64 levels of AnyValues) on every transport, refused with 400 /
 *   INVALID_ARGUMENT naming the path, never a 500 or a stack overflow, even 100,000 deep.
 * - OTLP/JSON values the decoder used to alter (ill-formed UTF-8, numbers through JS
 *   Number(), repeated members) refuse the request; numbers that cannot be stored
 *   exactly (1e400, integers beyond int64 or beyond ±(2^53−1) as JSON numbers) refuse
 *   only their records, as OTLP partial success.
 * - Protobuf: an AnyValue with two different value fields set is refused, as in JSON.
 */

const JSON_CT = { "content-type": "application/json" };
const PROTOBUF = { "content-type": "application/x-protobuf" };
const { ResponseType } = otlpTypes;

interface Reply {
  status: number;
  body: string;
  bytes: Buffer;
}

async function post(url: string, headers: Record<string, string>, body: string | Buffer) {
  const res = await request(url, { method: "POST", headers, body });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, body: bytes.toString("utf8"), bytes } satisfies Reply;
}

function jsonError(reply: Reply): { code: number; message: string } {
  return JSON.parse(reply.body) as { code: number; message: string };
}

function partialSuccess(reply: Reply) {
  return (
    JSON.parse(reply.body) as {
      partialSuccess?: { rejectedLogRecords: string; errorMessage: string };
    }
  ).partialSuccess;
}

/** An audit LogRecord (JSON text) tagged `marker`, with an attribute "v" holding `value`. */
function record(marker: string, value = '{"boolValue":true}', more = ""): string {
  return `{"eventName":"audit.strict","attributes":[{"key":"case","value":{"stringValue":"${marker}"}},{"key":"v","value":${value}}]${more}}`;
}

/** One ResourceLogs (JSON text) holding `records` in the "strictness" scope. */
function resourceLogs(records: string[], resource = ""): string {
  return `{${resource}"scopeLogs":[{"scope":{"name":"strictness"},"logRecords":[${records.join(",")}]}]}`;
}

function jsonRequest(records: string[], resource = ""): string {
  return `{"resourceLogs":[${resourceLogs(records, resource)}]}`;
}

/** An AnyValue (JSON) nested `levels` deep through arrayValues, "x" at the bottom. */
function deepJsonArray(levels: number): string {
  return `${'{"arrayValue":{"values":['.repeat(levels - 1)}{"stringValue":"x"}${"]}}".repeat(levels - 1)}`;
}

/** An AnyValue (JSON) nested `levels` deep through kvlistValues. */
function deepJsonKvlist(levels: number): string {
  return `${'{"kvlistValue":{"values":[{"key":"k","value":'.repeat(levels - 1)}{"stringValue":"x"}${"}]}}".repeat(levels - 1)}`;
}

// --- Protobuf built by hand (protobufjs has its own limits): length-delimited layers ---

interface Layer {
  tag: number;
  /** Bytes inside this layer's message before the next layer's field. */
  head?: Buffer;
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/** `layers`, outermost first, each a length-delimited field holding the next, then `leaf`. */
function nest(layers: Layer[], leaf: Buffer): Buffer {
  const contents: number[] = new Array(layers.length);
  let inner = leaf.length;
  for (let k = layers.length - 1; k >= 0; k--) {
    contents[k] = (layers[k]?.head?.length ?? 0) + inner;
    inner = 1 + varintLength(contents[k] as number) + (contents[k] as number);
  }
  const out = Buffer.alloc(inner);
  let at = 0;
  layers.forEach((layer, k) => {
    out[at++] = layer.tag;
    let n = contents[k] as number;
    while (n >= 0x80) {
      out[at++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    out[at++] = n;
    if (layer.head) at += layer.head.copy(out, at);
  });
  leaf.copy(out, at);
  return out;
}

const field = (tag: number, text: string) => {
  const bytes = Buffer.from(text, "utf8");
  return Buffer.from([tag, bytes.length, ...bytes]);
};
const LEAF = field(0x0a, "x"); // AnyValue{string_value: "x"}
const repeatLayers = (n: number, layers: Layer[]) => Array.from({ length: n }, () => layers).flat();
const ARRAY_LEVEL: Layer[] = [{ tag: 0x2a }, { tag: 0x0a }]; // array_value, values
const KVLIST_LEVEL: Layer[] = [{ tag: 0x32 }, { tag: 0x0a, head: field(0x0a, "k") }, { tag: 0x12 }];
/** ExportLogsServiceRequest → ResourceLogs → ScopeLogs → an audit LogRecord tagged `marker`. */
const recordLayers = (marker: string): Layer[] => [
  { tag: 0x0a },
  { tag: 0x12, head: nest([{ tag: 0x0a }], field(0x0a, "strictness")) }, // scope.name
  {
    tag: 0x12,
    head: Buffer.concat([
      field(0x62, "audit.strict"), // event_name
      nest([{ tag: 0x32, head: field(0x0a, "case") }, { tag: 0x12 }], field(0x0a, marker)),
    ]),
  },
];

/** A request whose record's body is nested `levels` deep through arrayValues. */
function protobufDeepBody(marker: string, levels: number): Buffer {
  return nest(
    [...recordLayers(marker), { tag: 0x2a }, ...repeatLayers(levels - 1, ARRAY_LEVEL)],
    LEAF,
  );
}

/** A request whose record's attribute "v" is nested `levels` deep through kvlistValues. */
function protobufDeepAttribute(marker: string, levels: number): Buffer {
  return nest(
    [
      ...recordLayers(marker),
      { tag: 0x32, head: field(0x0a, "v") },
      { tag: 0x12 },
      ...repeatLayers(levels - 1, KVLIST_LEVEL),
    ],
    LEAF,
  );
}

/** A request whose only ResourceLogs has a resource attribute nested `levels` deep. */
function protobufDeepResource(levels: number): Buffer {
  return nest(
    [
      { tag: 0x0a },
      { tag: 0x0a },
      { tag: 0x0a, head: field(0x0a, "r") },
      { tag: 0x12 },
      ...repeatLayers(levels - 1, ARRAY_LEVEL),
    ],
    LEAF,
  );
}

/** A request whose record's body AnyValue bytes are `value`. */
function protobufBody(marker: string, value: Buffer): Buffer {
  return nest([...recordLayers(marker), { tag: 0x2a }], value);
}

/**
 * An in-process agent for the tests of one describe block, started before them and stopped
 * after, and with `grpcToo` a raw gRPC client to it.
 */
function agentForBlock(
  grpcToo: boolean,
  use: (a: InProcessAgent, client: grpc.Client | null) => void,
): void {
  const tmp = makeTempDir();
  let a: InProcessAgent | undefined;
  let client: grpc.Client | null = null;
  beforeAll(async () => {
    a = await startInProcessAgent({ dir: tmp.path, ...(grpcToo ? {} : { grpc: false }) });
    if (grpcToo) client = new grpc.Client(a.grpcAddress, grpc.credentials.createInsecure());
    use(a, client);
  });
  afterAll(async () => {
    client?.close();
    await a?.stop();
    tmp.cleanup();
  });
}

async function delivered(a: InProcessAgent): Promise<void> {
  await waitFor(
    () => a.agent.deliveries[0]?.deliveredThrough === a.agent.wal.headSeq,
    20_000,
    "the file exporter to deliver every stored record",
  );
}

/** The `record` text of each stored line, by case marker (each case stored once). */
async function storedRecords(a: InProcessAgent): Promise<Map<string, string>> {
  await delivered(a);
  const { chain, records, findings } = await readOutput(a.outDir);
  expect(findings).toEqual([]);
  const out = new Map<string, string>();
  chain.lines.forEach((line, i) => {
    const start = line.text.indexOf(',"record":') + ',"record":'.length;
    const text = line.text.slice(start, line.text.lastIndexOf(',"seq":"'));
    const marker = String(
      attr((records[i] as (typeof records)[number]).record, "case")?.stringValue,
    );
    out.set(marker, text);
  });
  return out;
}

describe("one nesting limit on every transport (item 3)", () => {
  let a: InProcessAgent;
  let client: grpc.Client;
  agentForBlock(true, (started, c) => {
    a = started;
    client = c as grpc.Client;
  });

  const ARRAY_PATH = "resourceLogs[0].scopeLogs[0].logRecords[0].body.arrayValue.values[0]";
  const KV_PATH = "resourceLogs[0].scopeLogs[0].logRecords[0].attributes[1].value.kvlistValue";

  it("64 levels (arrays in a body, kvlists in an attribute) are stored, byte for byte alike, over JSON, HTTP/protobuf and gRPC", async () => {
    const json = jsonRequest([
      record("json-array-64", '{"boolValue":true}', `,"body":${deepJsonArray(64)}`),
      record("json-kvlist-64", deepJsonKvlist(64)),
    ]);
    expect((await post(a.httpUrl, JSON_CT, json)).status).toBe(200);
    for (const [transport, send] of [
      ["http", (b: Buffer) => post(a.httpUrl, PROTOBUF, b).then((r) => r.status === 200)],
      ["grpc", (b: Buffer) => grpcExport(client, b).then((r) => r.err === null)],
    ] as const) {
      expect(await send(protobufDeepBody(`${transport}-array-64`, 64))).toBe(true);
      expect(await send(protobufDeepAttribute(`${transport}-kvlist-64`, 64))).toBe(true);
    }
    const stored = await storedRecords(a);
    const array = stored.get("json-array-64") as string;
    const kvlist = stored.get("json-kvlist-64") as string;
    expect(array.split('"arrayValue"').length - 1).toBe(63);
    expect(kvlist.split('"kvlistValue"').length - 1).toBe(63);
    // The same values, whichever transport carried them (only the marker differs).
    for (const t of ["http", "grpc"]) {
      const same = (text: string | undefined, from: string) =>
        (text ?? "").replace(`"${t}-${from}"`, `"json-${from}"`);
      expect(same(stored.get(`${t}-array-64`), "array-64")).toBe(
        array.replace(',{"key":"v","value":{"boolValue":true}}', ""),
      );
      expect(same(stored.get(`${t}-kvlist-64`), "kvlist-64")).toBe(kvlist);
    }
  });

  it.each([
    ["65 levels of arrays in a body", deepJsonArray(65), ARRAY_PATH, "body"],
    ["65 levels of kvlists in an attribute", deepJsonKvlist(65), KV_PATH, "attr"],
    ["100,000 levels of arrays in a body", deepJsonArray(100_000), ARRAY_PATH, "body"],
  ])("JSON: %s → 400 naming the path", async (_what, value, path, where) => {
    const before = a.agent.wal.headSeq;
    const rec =
      where === "body"
        ? record("json-deep", '{"boolValue":true}', `,"body":${value}`)
        : record("json-deep", value);
    const reply = await post(a.httpUrl, JSON_CT, jsonRequest([rec]));
    expect(reply.status).toBe(400);
    const { code, message } = jsonError(reply);
    expect(code).toBe(3);
    expect(message).toContain(`: ${path}`);
    expect(message).toMatch(/nested deeper than (64|\d+) levels/);
    expect(message).toContain("64 levels");
    expect(message.length).toBeLessThan(600);
    expect(a.agent.wal.headSeq).toBe(before);
  });

  it("JSON: 100,000 nested arrays, anywhere in the body (even an unknown member) → 400, not a 500", async () => {
    const before = a.agent.wal.headSeq;
    for (const body of [
      `${"[".repeat(100_000)}${"]".repeat(100_000)}`,
      jsonRequest([
        record(
          "unknown-deep",
          '{"boolValue":true}',
          `,"future":${"[".repeat(100_000)}${"]".repeat(100_000)}`,
        ),
      ]),
    ]) {
      const reply = await post(a.httpUrl, JSON_CT, body);
      expect(reply.status).toBe(400);
      expect(jsonError(reply).message).toMatch(/JSON nested deeper than \d+ levels/);
    }
    expect(a.agent.wal.headSeq).toBe(before);
  });

  it.each([
    ["65 levels of arrays in a body", protobufDeepBody("pb-deep", 65), ARRAY_PATH],
    ["65 levels of kvlists in an attribute", protobufDeepAttribute("pb-deep", 65), KV_PATH],
    ["100,000 levels of arrays in a body", protobufDeepBody("pb-deep", 100_000), ARRAY_PATH],
    [
      "100,000 levels in a resource attribute",
      protobufDeepResource(100_000),
      "resourceLogs[0].resource.attributes[0].value.arrayValue.values[0]",
    ],
  ])(
    "HTTP/protobuf and gRPC: %s → 400 / INVALID_ARGUMENT naming the path",
    async (_what, body, path) => {
      const before = a.agent.wal.headSeq;
      const http = await post(a.httpUrl, PROTOBUF, body);
      expect(http.status).toBe(400);
      const status = otlpTypes.StatusType.decode(http.bytes) as unknown as {
        code: number;
        message: string;
      };
      expect(status.code).toBe(3);
      expect(status.message).toContain(`: ${path}`);
      expect(status.message).toContain("values nested deeper than 64 levels");
      const { err } = await grpcExport(client, body);
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err?.details).toContain(`: ${path}`);
      expect(err?.details).toContain("values nested deeper than 64 levels");
      expect(a.agent.wal.headSeq).toBe(before);
    },
  );

  it("the agent still serves, and everything stored verifies", async () => {
    const reply = await post(a.httpUrl, JSON_CT, jsonRequest([record("after-deep")]));
    expect(reply.status).toBe(200);
    expect([...(await storedRecords(a)).keys()]).toContain("after-deep");
  });
});

describe("OTLP/JSON values that used to be altered refuse the request (item 6)", () => {
  let a: InProcessAgent;
  agentForBlock(false, (started) => {
    a = started;
  });

  const V = "resourceLogs[0].scopeLogs[0].logRecords[0].attributes[1].value";

  /** A request whose attribute "v" string holds raw (non-UTF-8) bytes. */
  function withRawBytes(bytes: number[]): Buffer {
    const text = Buffer.from(jsonRequest([record("utf8", '{"stringValue":"a@@@b"}')]));
    const at = text.indexOf("@@@");
    return Buffer.concat([text.subarray(0, at), Buffer.from(bytes), text.subarray(at + 3)]);
  }

  it.each([
    ["a byte that is never UTF-8 (0xff)", [0xff], "0xff"],
    ["a truncated sequence (0xc3 then ASCII)", [0xc3, 0x28], "0xc3"],
    ["a surrogate encoded in UTF-8 (ed a0 80)", [0xed, 0xa0, 0x80], "0xed"],
    ["an overlong encoding (c0 af)", [0xc0, 0xaf], "0xc0"],
  ])(
    "ill-formed UTF-8 in the body: %s → 400 naming the string, not U+FFFD",
    async (_w, bytes, hex) => {
      const reply = await post(a.httpUrl, JSON_CT, withRawBytes(bytes));
      expect(reply.status).toBe(400);
      const { code, message } = jsonError(reply);
      expect(code).toBe(3);
      expect(message).toContain(`not valid UTF-8 (byte ${hex} at offset`);
      expect(message).toContain(`in a string at ${V}.stringValue`);
      expect(a.agent.wal.headSeq).toBe(-1);
    },
  );

  it.each([
    ['intValue "0x10"', '{"intValue":"0x10"}', "intValue", "expected an integer"],
    ['intValue "+1"', '{"intValue":"+1"}', "intValue", "expected an integer"],
    ['intValue "1.0"', '{"intValue":"1.0"}', "intValue", "expected an integer"],
    ['intValue " 2"', '{"intValue":" 2"}', "intValue", "expected an integer"],
    ['intValue "1e3"', '{"intValue":"1e3"}', "intValue", "expected an integer"],
    ['intValue ""', '{"intValue":""}', "intValue", "expected an integer"],
    ["intValue 1.5 (a JSON number)", '{"intValue":1.5}', "intValue", "expected an integer"],
    [
      "intValue 1.0000000000000001 (rounds to 1 as a double)",
      '{"intValue":1.0000000000000001}',
      "intValue",
      "expected an integer",
    ],
    ['doubleValue "0x10"', '{"doubleValue":"0x10"}', "doubleValue", "expected a number"],
    ['doubleValue " 2.5\\n"', '{"doubleValue":" 2.5\\n"}', "doubleValue", "expected a number"],
    ['doubleValue "+1"', '{"doubleValue":"+1"}', "doubleValue", "expected a number"],
    ['doubleValue ".5"', '{"doubleValue":".5"}', "doubleValue", "expected a number"],
    ['doubleValue "inf"', '{"doubleValue":"inf"}', "doubleValue", "expected a number"],
    ['doubleValue ""', '{"doubleValue":""}', "doubleValue", "expected a number"],
  ])("%s → 400 saying what and where", async (_what, value, member, expected) => {
    const reply = await post(a.httpUrl, JSON_CT, jsonRequest([record("bad-number", value)]));
    expect(reply.status).toBe(400);
    const { code, message } = jsonError(reply);
    expect(code).toBe(3);
    expect(message).toContain(`${V}.${member}: ${expected}`);
    expect(a.agent.wal.headSeq).toBe(-1);
  });

  it.each([
    [
      "a LogRecord member",
      jsonRequest([record("dup", '{"boolValue":true}', ',"eventName":"audit.other"')]),
      'resourceLogs[0].scopeLogs[0].logRecords[0]: member "eventName" appears more than once',
    ],
    [
      "an AnyValue member",
      jsonRequest([record("dup", '{"stringValue":"a","stringValue":"b"}')]),
      `${V}: member "stringValue" appears more than once`,
    ],
    [
      "a top-level member",
      `{"resourceLogs":[],${jsonRequest([record("dup")]).slice(1)}`,
      'request: member "resourceLogs" appears more than once',
    ],
    [
      "one field in both spellings",
      jsonRequest([record("dup", '{"boolValue":true}', ',"event_name":"audit.other"')]),
      "resourceLogs[0].scopeLogs[0].logRecords[0]: both eventName and event_name are present",
    ],
  ])("a repeated JSON member (%s) → 400, not last-wins", async (_what, body, message) => {
    const reply = await post(a.httpUrl, JSON_CT, body);
    expect(reply.status).toBe(400);
    expect(jsonError(reply).message).toContain(message);
    expect(a.agent.wal.headSeq).toBe(-1);
  });

  it("spellings of the same value are accepted and stored in canonical form", async () => {
    const reply = await post(
      a.httpUrl,
      JSON_CT,
      jsonRequest([
        record("leading-zeros", '{"intValue":"007"}'),
        record("minus-zero", '{"intValue":"-0"}'),
        record("int-exponent", '{"intValue":1e3}'),
        record("safe-max", '{"intValue":9007199254740991}'),
        record("int64-min", '{"intValue":"-9223372036854775808"}'),
        record("double-string", '{"doubleValue":"2.5e-3"}'),
        record("double-inf", '{"doubleValue":"-Infinity"}'),
        record("double-underflow", '{"doubleValue":1e-400}'),
      ]),
    );
    expect(reply.status).toBe(200);
    expect(reply.body).toBe("{}");
    const stored = await storedRecords(a);
    const v = (marker: string) =>
      /"key":"v","value":(\{[^}]*\})/.exec(stored.get(marker) ?? "")?.[1];
    expect(v("leading-zeros")).toBe('{"intValue":"7"}');
    expect(v("minus-zero")).toBe('{"intValue":"0"}');
    expect(v("int-exponent")).toBe('{"intValue":"1000"}');
    expect(v("safe-max")).toBe('{"intValue":"9007199254740991"}');
    expect(v("int64-min")).toBe('{"intValue":"-9223372036854775808"}');
    expect(v("double-string")).toBe('{"doubleValue":0.0025}');
    expect(v("double-inf")).toBe('{"doubleValue":"-Infinity"}');
    expect(v("double-underflow")).toBe('{"doubleValue":0}');
  });
});

describe("OTLP/JSON numbers that cannot be stored exactly refuse only their records (item 7)", () => {
  let a: InProcessAgent;
  agentForBlock(false, (started) => {
    a = started;
  });

  it("each such record is refused through partial success, naming the path; the others are stored", async () => {
    const reply = await post(
      a.httpUrl,
      JSON_CT,
      jsonRequest([
        record("ok-0"),
        record("int-1e21", '{"intValue":1e21}'),
        record("int-2^53", '{"intValue":9007199254740992}'),
        record("ok-3", '{"intValue":"9007199254740993"}'),
        record("int-2^63", '{"intValue":"9223372036854775808"}'),
        record("int-below-min", '{"arrayValue":{"values":[{"intValue":"-9223372036854775809"}]}}'),
        record("double-1e400", '{"doubleValue":1e400}'),
        record("double-string", '{"doubleValue":"-1e400"}'),
        record("ok-8", '{"doubleValue":1.7976931348623157e308}'),
      ]),
    );
    expect(reply.status).toBe(200);
    const partial = partialSuccess(reply);
    expect(partial?.rejectedLogRecords).toBe("6");
    expect(partial?.errorMessage).toBe(
      "6 log record(s) refused: resourceLogs[0].scopeLogs[0].logRecords[1].attributes[1].value.intValue: 1e21 is outside the int64 range (-9223372036854775808 to 9223372036854775807)",
    );
    const stored = await storedRecords(a);
    expect([...stored.keys()]).toEqual(["ok-0", "ok-3", "ok-8"]);
    expect(stored.get("ok-3")).toContain('{"intValue":"9007199254740993"}');
    expect(stored.get("ok-8")).toContain('{"doubleValue":1.7976931348623157e+308}');
    expect(a.agent.counters.receiverRefused.get("unrepresentable_value")).toBe(6);
  });

  it.each([
    [
      "int-2^53",
      '{"intValue":9007199254740992}',
      "intValue: the JSON number 9007199254740992 is beyond ±(2^53−1)",
    ],
    [
      "int-2^63",
      '{"intValue":"9223372036854775808"}',
      'intValue: "9223372036854775808" is outside the int64 range',
    ],
    ["double-1e400", '{"doubleValue":1e400}', "doubleValue: 1e400 is beyond the range of a double"],
  ])("the message says what is wrong with %s", async (marker, value, message) => {
    const reply = await post(a.httpUrl, JSON_CT, jsonRequest([record(marker, value)]));
    expect(reply.status).toBe(200);
    expect(partialSuccess(reply)?.errorMessage).toContain(
      `resourceLogs[0].scopeLogs[0].logRecords[0].attributes[1].value.${message}`,
    );
  });

  it("such a value in a resource refuses every record of that resource; other resources are stored", async () => {
    const bad = '"resource":{"attributes":[{"key":"big","value":{"intValue":1e21}}]},';
    const body = `{"resourceLogs":[${resourceLogs([record("res-bad-0"), record("res-bad-1")], bad)},${resourceLogs([record("res-good")])}]}`;
    const reply = await post(a.httpUrl, JSON_CT, body);
    expect(reply.status).toBe(200);
    expect(partialSuccess(reply)).toEqual({
      rejectedLogRecords: "2",
      errorMessage:
        "2 log record(s) refused: resourceLogs[0].resource.attributes[0].value.intValue: 1e21 is outside the int64 range (-9223372036854775808 to 9223372036854775807); it refuses every record of resourceLogs[0]",
    });
    const stored = await storedRecords(a);
    expect(stored.has("res-good")).toBe(true);
    expect(stored.has("res-bad-0")).toBe(false);
  });

  it("a request that is also malformed elsewhere is refused whole (400), nothing stored", async () => {
    const before = a.agent.wal.headSeq;
    const reply = await post(
      a.httpUrl,
      JSON_CT,
      jsonRequest([
        record("mixed-big", '{"intValue":1e21}'),
        record("mixed-bad", '{"intValue":"0x10"}'),
      ]),
    );
    expect(reply.status).toBe(400);
    expect(jsonError(reply).message).toContain(
      "resourceLogs[0].scopeLogs[0].logRecords[1].attributes[1].value.intValue: expected an integer",
    );
    expect(a.agent.wal.headSeq).toBe(before);
  });

  it("partial success and a record too large combine in one answer", async () => {
    const reply = await post(
      a.httpUrl,
      JSON_CT,
      jsonRequest([
        record("combo-ok"),
        record("combo-big", '{"intValue":1e21}'),
        record("combo-large", `{"stringValue":"${"z".repeat(1_100_000)}"}`),
      ]),
    );
    expect(reply.status).toBe(200);
    const partial = partialSuccess(reply);
    expect(partial?.rejectedLogRecords).toBe("2");
    expect(partial?.errorMessage).toMatch(
      /^1 log record\(s\) refused: .*logRecords\[1\]\.attributes\[1\]\.value\.intValue: 1e21 .*; 1 audit record\(s\) refused: audit record of \d+ bytes exceeds the limit/,
    );
    expect((await storedRecords(a)).has("combo-ok")).toBe(true);
  });
});

describe("protobuf: an AnyValue with two value fields is refused, as in JSON", () => {
  let a: InProcessAgent;
  let client: grpc.Client;
  agentForBlock(true, (started, c) => {
    a = started;
    client = c as grpc.Client;
  });

  // string_value "a", int_value 5, string_value "b": protobufjs and the fast path disagreed.
  const twoMembers = Buffer.concat([field(0x0a, "a"), Buffer.from([0x18, 5]), field(0x0a, "b")]);
  const sameTwice = Buffer.concat([field(0x0a, "a"), field(0x0a, "b")]);

  it("→ 400 / INVALID_ARGUMENT naming the path", async () => {
    const body = protobufBody("two-members", twoMembers);
    const http = await post(a.httpUrl, PROTOBUF, body);
    expect(http.status).toBe(400);
    const status = otlpTypes.StatusType.decode(http.bytes) as unknown as { message: string };
    expect(status.message).toContain(
      "resourceLogs[0].scopeLogs[0].logRecords[0].body: an AnyValue with more than one of its value fields set",
    );
    const { err } = await grpcExport(client, body);
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toContain("logRecords[0].body: an AnyValue with more than one");
    expect(a.agent.wal.headSeq).toBe(-1);
  });

  it("the same field twice is proto3's last-wins, on both transports", async () => {
    const http = await post(a.httpUrl, PROTOBUF, protobufBody("same-twice-http", sameTwice));
    expect(http.status).toBe(200);
    expect(ResponseType.toObject(ResponseType.decode(http.bytes)).partialSuccess).toBeUndefined();
    expect((await grpcExport(client, protobufBody("same-twice-grpc", sameTwice))).err).toBeNull();
    const stored = await storedRecords(a);
    expect(stored.get("same-twice-http")).toContain('"body":{"stringValue":"b"}');
    expect(stored.get("same-twice-grpc")).toContain('"body":{"stringValue":"b"}');
  });
});

import pino from "pino";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import {
  formatStartupSummary,
  type SignerFacts,
  shellQuote,
  startupSummary,
} from "../../agent/service/startup-summary.js";
import { ThrottledEvents } from "../../agent/telemetry/event-log.js";
import { consoleLine, logEncoding } from "../../agent/telemetry/logger.js";

/** A logger whose lines land in `lines`, parsed. */
function memoryLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { base: null, timestamp: false },
    { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  );
  return { logger, lines };
}

describe("ThrottledEvents", () => {
  it("logs a kind's first event at once, then one line per interval carrying what it left out", () => {
    let now = 1_000;
    const { logger, lines } = memoryLogger();
    const events = new ThrottledEvents(logger, 10_000, () => now);
    const refuse = (peer: string) =>
      events.event("http:malformed", "warn", "refused", { reason: "malformed", peer });
    refuse("a:1");
    for (let i = 0; i < 5; i++) refuse(`b:${i}`);
    expect(lines).toEqual([{ level: 40, msg: "refused", reason: "malformed", peer: "a:1" }]);
    now += 10_000;
    refuse("c:1");
    // The seventh event, with the five left out before it.
    expect(lines[1]).toMatchObject({ peer: "c:1", suppressed: 5 });
    // Another kind has its own first line.
    events.event("grpc:malformed", "warn", "refused", { reason: "malformed", peer: "d:1" });
    expect(lines).toHaveLength(3);
    expect(lines[2]).not.toHaveProperty("suppressed");
    events.stop();
  });

  it("sums records, and flushes what a burst left unreported: after the interval, or all at stop", () => {
    let now = 0;
    const { logger, lines } = memoryLogger();
    const events = new ThrottledEvents(logger, 10_000, () => now);
    const filtered = (n: number) => events.event("filtered", "info", "filtered", {}, n);
    filtered(2);
    filtered(3);
    filtered(4);
    expect(lines).toEqual([{ level: 30, msg: "filtered", records: 2 }]);
    now += 5_000;
    events.flush(false); // the interval is not over: nothing yet
    expect(lines).toHaveLength(1);
    now += 5_000;
    events.flush(false);
    expect(lines[1]).toEqual({ level: 30, msg: "filtered", records: 7, suppressed: 1 });
    filtered(1);
    events.stop(); // at shutdown, whatever the interval
    expect(lines[2]).toEqual({ level: 30, msg: "filtered", records: 1 });
    events.stop(); // nothing left: no line
    expect(lines).toHaveLength(3);
  });
});

describe("log encoding", () => {
  it("console on a terminal, json otherwise; the config and AUDIT_AGENT_TTY override", () => {
    expect(logEncoding(undefined, { isTTY: true }, {})).toBe("console");
    expect(logEncoding(undefined, { isTTY: false }, {})).toBe("json");
    expect(logEncoding(undefined, {}, {})).toBe("json");
    expect(logEncoding(undefined, {}, { AUDIT_AGENT_TTY: "1" })).toBe("console");
    expect(logEncoding(undefined, { isTTY: true }, { AUDIT_AGENT_TTY: "0" })).toBe("json");
    expect(logEncoding("json", { isTTY: true }, {})).toBe("json");
    expect(logEncoding("console", {}, {})).toBe("console");
  });

  it("a console line: time, level, message, then key=value with JSON for what is not a plain word", () => {
    const line = consoleLine(
      JSON.stringify({
        level: "warn",
        time: "2025-01-02T03:04:05.000Z",
        service: "audit-agent",
        msg: "OTLP/HTTP request refused",
        reason: "malformed",
        status: 400,
        peer: "127.0.0.1:5000",
        error: 'not "json"',
        nested: { a: 1 },
        err: { type: "Error", message: "boom", stack: "Error: boom\n    at x" },
      }),
    );
    expect(line).toBe(
      '2025-01-02T03:04:05.000Z WARN  OTLP/HTTP request refused  reason=malformed status=400 peer=127.0.0.1:5000 error="not \\"json\\"" nested={"a":1} err="boom"\n',
    );
    expect(consoleLine('{"level":"error","time":"t","msg":"m"}', true)).toBe(
      "t \u001b[31mERROR\u001b[0m m\n",
    );
    expect(consoleLine("not json")).toBe("not json");
  });

  it("text from a request cannot forge a line or reach the terminal: controls, C1 (CSI, NEL), line separators and bidi overrides are escaped everywhere", () => {
    // What a client can put in a refusal message: a header value's bytes 0x80-0xff arrive
    // as U+0080-U+00FF (0x9b: CSI, 0x85: NEL), a JSON body any code point.
    const hostile =
      "x\u009b2J\u0085\u001b]0;title\u0007\n2025-01-01T00:00:00.000Z INFO  forged\u2028\u2029\u202eevil\u200b\u00ad\r";
    const line = consoleLine(
      JSON.stringify({
        level: "warn",
        time: "t",
        msg: `refused ${hostile}`,
        error: `unsupported content type "${hostile}"`,
        [`k${hostile}`]: hostile,
        nested: { [hostile]: hostile },
        err: { message: hostile, stack: hostile },
      }),
    );
    const body = line.slice(0, -1);
    expect(line.endsWith("\n")).toBe(true);
    expect(body).not.toMatch(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u);
    // Escaped, not dropped: the line still says what the client sent.
    expect(body).toContain("x\\u009b2J\\u0085\\u001b]0;title\\u0007");
    expect(body).toContain("\\u2028\\u2029\\u202eevil\\u200b\\u00ad");
    // A quoted value stays JSON that reads back to the text.
    const quoted = /error=("(?:[^"\\]|\\.)*")/.exec(body)?.[1] as string;
    expect(JSON.parse(quoted)).toBe(`unsupported content type "${hostile}"`);
  });
});

describe("the start-up summary", () => {
  const signer: SignerFacts = {
    file: "/keys/signing.pub",
    verifierKey: "audit-agent+01020304+AQ==",
    keyId: "01020304",
    fingerprint: "SHA256:abc",
    trust: ["/keys/signing.pub", "/keys/old.pub"],
  };

  it("gives each readable exporter a verify command that reads what it writes, with no credentials", () => {
    const yaml = `receivers:
  otlp:
    protocols:
      http:
exporters:
  s3:
    bucket: audit-bucket
    prefix: /prod/eu/
    endpoint: http://127.0.0.1:9000
    region: eu-west-1
  loki:
    endpoint: http://user:secret@loki:3100/
    tenant_id: team a
  elasticsearch:
    endpoint: https://es:9200
    index: audit
    manifests_index: audit-seals
  otlp_http:
    endpoint: http://upstream:4318
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [s3, loki, elasticsearch, otlp_http]
`;
    const config = parseConfig(yaml, "/etc/agent.yaml", {});
    const s = startupSummary(config, { chainId: "c1", receivers: {}, addresses: {}, signer });
    const trust = "--trust /keys/signing.pub --trust /keys/old.pub";
    expect(s.exporters).toEqual([
      {
        id: "s3",
        type: "s3",
        destination: {
          bucket: "audit-bucket",
          prefix: "prod/eu",
          endpoint: "http://127.0.0.1:9000",
          region: "eu-west-1",
        },
        verify: `AWS_ENDPOINT_URL_S3=http://127.0.0.1:9000 AWS_REGION=eu-west-1 audit-agent verify --source s3://audit-bucket/prod/eu ${trust}`,
      },
      {
        id: "loki",
        type: "loki",
        destination: { url: "http://loki:3100", tenant: "team a" },
        verify: `audit-agent verify --source 'loki:http://loki:3100?tenant=team%20a' ${trust}`,
      },
      {
        id: "elasticsearch",
        type: "elasticsearch",
        destination: { url: "https://es:9200", index: "audit", manifests_index: "audit-seals" },
        verify: `audit-agent verify --source 'es:https://es:9200/audit?manifests_index=audit-seals' ${trust}`,
      },
      {
        id: "otlp_http",
        type: "otlp_http",
        destination: { endpoint: "http://upstream:4318" },
        verify: undefined,
      },
    ]);
    expect(JSON.stringify(s)).not.toContain("secret");
    expect(s.verifyAll).toBe(`cd ${process.cwd()} && audit-agent verify --config /etc/agent.yaml`);
    const text = formatStartupSummary(s);
    expect(text).toContain(
      "  otlp_http: endpoint http://upstream:4318 (pass-through: not verifiable)\n",
    );
    expect(text).not.toContain("secret");
  });

  it("with the key from the environment, says there is no .pub file and shows the key line to save", () => {
    const config = parseConfig(
      `receivers:
  otlp:
    protocols:
      grpc:
exporters:
  file:
    directory: /data/out
extensions:
  signing:
    key_env: AUDIT_KEY
service:
  extensions: [signing]
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
`,
      "/etc/agent.yaml",
      {},
    );
    const envSigner = { ...signer, file: null, keyEnv: "AUDIT_KEY", trust: [] };
    const s = startupSummary(config, {
      chainId: "c1",
      receivers: {
        otlp: [{ protocol: "grpc", address: "0.0.0.0:4317", tls: "mutual", auth: "bearer token" }],
      },
      addresses: {},
      signer: envSigner,
    });
    expect(s.exporters[0]?.verify).toBe(
      "audit-agent verify --source file:/data/out --trust KEY.pub",
    );
    const text = formatStartupSummary(s);
    expect(text).toContain("no .pub file (key from $AUDIT_KEY): save this line as KEY.pub:\n");
    expect(text).toContain(`  ${signer.verifierKey}\n`);
    expect(text).toMatch(/otlp\/grpc +0\.0\.0\.0:4317 +mTLS, bearer token/);
  });

  it("quotes for the shell only what needs it", () => {
    expect(shellQuote("file:/a/b-c_d.e")).toBe("file:/a/b-c_d.e");
    expect(shellQuote("/a dir/x")).toBe("'/a dir/x'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });
});

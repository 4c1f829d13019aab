import { describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import { connectionFromConfig, exportErrorFor } from "../../agent/exporters/s3/client.js";
import { type S3ExporterConfig, s3ExporterConfigSchema } from "../../agent/exporters/s3/config.js";
import { s3SourceFromSpec } from "../../agent/exporters/s3/factory.js";
import { manifestKey, parseKey, recordsKey } from "../../agent/exporters/s3/layout.js";
import { PermanentExportError, RetryableExportError } from "../../agent/exporters/api.js";
import { configProblems } from "../helpers/config.js";

/** The S3 exporter's config, key layout and error mapping (no server needed). */

function yaml(exporter: string): string {
  return `receivers:
  otlp:
    protocols:
      http:
exporters:
  s3:
${exporter
  .split("\n")
  .map((l) => `    ${l}`)
  .join("\n")}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [s3]
`;
}

function problems(exporter: string): string[] {
  return configProblems(yaml(exporter));
}

const parse = (c: Record<string, unknown>): S3ExporterConfig => s3ExporterConfigSchema.parse(c);

describe("s3 exporter config", () => {
  it("has defaults: no prefix, no compression, 30 s timeout, retry forever", () => {
    const c = parseConfig(yaml("bucket: audit-logs"), "x.yaml", {}).exporters[0]
      ?.config as S3ExporterConfig;
    expect(c).toMatchObject({
      bucket: "audit-logs",
      prefix: "",
      compression: "none",
      timeout: 30_000,
    });
    expect(c.object_lock).toBeUndefined();
    expect(c.retry_on_failure).toMatchObject({ enabled: true, max_elapsed_time: 0 });
  });

  it("says what to write instead", () => {
    expect(problems("bucket: Audit_Logs")[0]).toContain("bucket must be an S3 bucket name");
    expect(
      problems("bucket: abc\nobject_lock:\n  mode: governance\n  retain_days: 1")[0],
    ).toContain("GOVERNANCE or COMPLIANCE");
    expect(
      problems("bucket: abc\nobject_lock:\n  mode: GOVERNANCE\n  retain_days: 1.5")[0],
    ).toContain("whole number of days");
    expect(problems("bucket: abc\ncompression: zstd")[0]).toContain('"none" or "gzip"');
    expect(problems("bucket: abc\naccess_key_id: AK")[0]).toContain(
      "set access_key_id and secret_access_key together",
    );
    expect(problems("bucket: abc\nendpoint: localhost:7480")[0]).toContain(
      "endpoint must be a URL",
    );
    expect(problems("bucket: abc\nprefix: a//b")[0]).toContain("prefix must be path segments");
    expect(problems("bucket: abc\nretain_days: 3")[0]).toContain('unknown key "retain_days"');
  });

  it("normalises the prefix and derives path style and region from the endpoint", () => {
    expect(parse({ bucket: "abc", prefix: "/audit/prod/" }).prefix).toBe("audit/prod");
    const custom = connectionFromConfig(
      parse({ bucket: "abc", endpoint: "http://127.0.0.1:9000" }),
      {},
    );
    expect(custom).toMatchObject({
      forcePathStyle: true,
      region: "us-east-1",
      credentials: undefined,
    });
    const aws = connectionFromConfig(parse({ bucket: "abc" }), { AWS_REGION: "eu-west-1" });
    expect(aws).toMatchObject({ forcePathStyle: false, region: "eu-west-1", endpoint: undefined });
    const fromEnv = connectionFromConfig(parse({ bucket: "abc" }), {
      AWS_ENDPOINT_URL: "http://a:1",
      AWS_ENDPOINT_URL_S3: "http://s3:2",
    });
    expect(fromEnv).toMatchObject({ endpoint: "http://s3:2", forcePathStyle: true });
    const keys = connectionFromConfig(
      parse({
        bucket: "abc",
        access_key_id: "AK",
        secret_access_key: "SK",
        force_path_style: false,
      }),
      {},
    );
    expect(keys).toMatchObject({
      forcePathStyle: false,
      credentials: { accessKeyId: "AK", secretAccessKey: "SK" },
    });
  });
});

describe("s3 key layout", () => {
  it("pads numbers to 20 digits so listing order is seq order, and parses its own keys back", () => {
    const a = recordsKey("p/q", "c1", 9, 10, false);
    const b = recordsKey("p/q", "c1", 11, 100, true);
    expect(a).toBe("p/q/c1/records/00000000000000000009-00000000000000000010.ndjson");
    expect(a < b).toBe(true);
    expect(manifestKey("", "c1", 2)).toBe("c1/manifests/00000000000000000002.json");
    expect(parseKey("p/q", b)).toEqual({
      chainId: "c1",
      kind: "records",
      firstSeq: 11,
      lastSeq: 100,
      gzip: true,
    });
    expect(parseKey("", "c1/manifests/00000000000000000002.json")).toEqual({
      chainId: "c1",
      kind: "manifests",
      index: 2,
    });
    expect(parseKey("", "c1/records/notes.txt")).toEqual({ chainId: "c1", kind: "foreign" });
    expect(parseKey("p", "other/c1/records/x")).toBeNull();
    expect(parseKey("", "README")).toBeNull();
  });
});

describe("s3 error mapping", () => {
  const conn = connectionFromConfig(
    parse({
      bucket: "abc",
      endpoint: "http://127.0.0.1:1",
      object_lock: { mode: "COMPLIANCE", retain_days: 1 },
    }),
    {},
  );
  const sdkError = (name: string, status?: number, headers: Record<string, string> = {}) =>
    Object.assign(new Error("UnknownError"), {
      name,
      ...(status ? { $metadata: { httpStatusCode: status }, $response: { headers } } : {}),
    });

  it("retries throttling, 5xx and network failures, after Retry-After when given", () => {
    const slow = exportErrorFor(sdkError("SlowDown", 503, { "retry-after": "3" }), "PUT k", conn);
    expect(slow).toBeInstanceOf(RetryableExportError);
    expect((slow as RetryableExportError).retryAfterMs).toBe(3000);
    expect(exportErrorFor(sdkError("InternalError", 500), "PUT k", conn)).toBeInstanceOf(
      RetryableExportError,
    );
    expect(exportErrorFor(sdkError("TooManyRequests", 429), "PUT k", conn)).toBeInstanceOf(
      RetryableExportError,
    );
    const refused = exportErrorFor(
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
      "PUT k",
      conn,
    );
    expect(refused).toBeInstanceOf(RetryableExportError);
    expect(refused.message).toContain("is http://127.0.0.1:1 reachable?");
  });

  it("stops on refusals retrying cannot fix, saying what to fix", () => {
    const cases: Array<[string, number, string]> = [
      ["NoSuchBucket", 404, 'bucket "abc" does not exist'],
      ["AccessDenied", 403, "s3:PutObjectRetention"],
      ["InvalidAccessKeyId", 403, "check access_key_id and secret_access_key"],
      ["InvalidRequest", 400, "remove object_lock"],
      ["AuthorizationHeaderMalformed", 400, "set region"],
    ];
    for (const [name, status, hint] of cases) {
      const err = exportErrorFor(sdkError(name, status), "PUT s3://abc/k", conn);
      expect(err, name).toBeInstanceOf(PermanentExportError);
      expect(err.message, name).toContain(hint);
      expect(err.message, name).toContain("PUT s3://abc/k");
    }
  });
});

describe("s3 --source specs", () => {
  it("takes s3://BUCKET[/PREFIX] and explains the form otherwise", () => {
    // (followed by " at <endpoint>" when AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL is set)
    expect(s3SourceFromSpec("s3://audit-logs/a/b/").description).toMatch(
      /^s3:\/\/audit-logs\/a\/b\/( |$)/,
    );
    expect(s3SourceFromSpec("s3://audit-logs").description).toMatch(/^s3:\/\/audit-logs\/( |$)/);
    expect(() => s3SourceFromSpec("s3:audit-logs")).toThrow(
      "write s3://BUCKET or s3://BUCKET/PREFIX",
    );
  });
});

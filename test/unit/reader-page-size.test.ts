import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../agent/config/load.js";
import { elasticsearchExporterConfigSchema } from "../../agent/exporters/elasticsearch/config.js";
import { parseElasticsearchSpec } from "../../agent/exporters/elasticsearch/reader.js";
import { type S3ExporterConfig, s3ExporterConfigSchema } from "../../agent/exporters/s3/config.js";
import { parseS3Url } from "../../agent/exporters/s3/reader.js";

/** `read.page_size` of the S3 and Elasticsearch readers: config and `--source` forms. */

describe("s3 read.page_size", () => {
  it("defaults to 1000 keys a listing page, and takes 1 to 1000", () => {
    expect(s3ExporterConfigSchema.parse({ bucket: "abc" }).read).toEqual({ page_size: 1000 });
    expect(s3ExporterConfigSchema.parse({ bucket: "abc", read: { page_size: 2 } }).read).toEqual({
      page_size: 2,
    });
    const problems = (read: unknown) => {
      const yaml = `receivers:\n  otlp:\n    protocols:\n      http:\nexporters:\n  s3:\n    bucket: abc\n    read: ${JSON.stringify(read)}\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [s3]\n`;
      try {
        const c = parseConfig(yaml, "x.yaml", {}).exporters[0]?.config as S3ExporterConfig;
        return c.read;
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems.join("\n");
      }
    };
    expect(problems({ page_size: 500 })).toEqual({ page_size: 500 });
    expect(problems({ page_size: 1001 })).toMatch(
      /read.page_size must be at most 1000 \(S3 lists at most 1000 keys a page\)/,
    );
    expect(problems({ page_size: 0 })).toMatch(/read.page_size must be at least 1/);
    expect(problems({ page_size: 2.5 })).toMatch(
      /read\.page_size: read\.page_size must be a whole number, like 1000$/,
    );
    expect(problems({ size: 5 })).toMatch(/size/);
  });

  it("is ?page_size=N on s3://BUCKET/PREFIX", () => {
    expect(parseS3Url("s3://audit-logs/a/b")).toEqual({
      bucket: "audit-logs",
      prefix: "a/b",
      read: { page_size: 1000 },
    });
    expect(parseS3Url("s3://audit-logs/a/b/?page_size=3")).toEqual({
      bucket: "audit-logs",
      prefix: "a/b",
      read: { page_size: 3 },
    });
    expect(parseS3Url("s3://audit-logs?page_size=7")).toEqual({
      bucket: "audit-logs",
      prefix: "",
      read: { page_size: 7 },
    });
    expect(() => parseS3Url("s3://audit-logs/a?page_size=5000")).toThrow(
      "page_size must be at most 1000",
    );
    expect(() => parseS3Url("s3://audit-logs/a?page_size=x")).toThrow(
      "page_size must be a whole number of keys per listing page, 1 to 1000",
    );
    expect(() => parseS3Url("s3://audit-logs/a?pagesize=5")).toThrow(
      'unknown parameter "pagesize": an S3 source takes ?page_size=N',
    );
  });
});

describe("elasticsearch read.page_size", () => {
  it("defaults to 1000 hits a page, and takes 1 to 10000", () => {
    const parse = (read: unknown) =>
      elasticsearchExporterConfigSchema.safeParse({ endpoint: "http://es:9200", read });
    expect(parse(undefined).data?.read.page_size).toBe(1000);
    expect(parse({ page_size: 10_000 }).data?.read.page_size).toBe(10_000);
    expect(parse({ page_size: 10_001 }).error?.issues[0]?.message).toMatch(
      /at most 10000 \(one search page holds at most index.max_result_window hits/,
    );
    expect(parse({ page_size: 0 }).error?.issues[0]?.message).toBe(
      "read.page_size must be at least 1",
    );
  });

  it("is ?page_size=N on es:URL/INDEX, beside ?manifests_index", () => {
    expect(parseElasticsearchSpec("http://es:9200/audit-logs?page_size=25", {})).toEqual({
      endpoint: "http://es:9200",
      index: "audit-logs",
      read: { page_size: 25 },
    });
    expect(
      parseElasticsearchSpec("https://es/proxy/logs?manifests_index=m&page_size=2", {}),
    ).toEqual({
      endpoint: "https://es/proxy",
      index: "logs",
      manifests_index: "m",
      read: { page_size: 2 },
    });
    expect(() => parseElasticsearchSpec("http://es:9200/logs?page_size=-1", {})).toThrow(
      "page_size must be a whole number of hits per search page, 1 to 10000",
    );
  });
});

import { implementExporter } from "../descriptor.js";
import type { AuditSource } from "../source.js";
import { connectionFromConfig, connectionFromUrl } from "./client.js";
import { s3Exporter } from "./descriptor.js";
import { parseS3Url, S3Source } from "./reader.js";
import { S3Sink } from "./sink.js";

export const s3ExporterFactory = implementExporter(s3Exporter, {
  create(settings, config) {
    return {
      sink: new S3Sink(
        connectionFromConfig(config),
        config.compression,
        config.object_lock,
        settings.logger.child({ exporter: settings.id }),
        () => settings.counters.squatted(settings.id),
      ),
      delivery: { retry: config.retry_on_failure },
    };
  },
  reader: (config) => new S3Source(connectionFromConfig(config), config.read),
});

/**
 * `verify --source s3://BUCKET/PREFIX[?page_size=N]`: endpoint from AWS_ENDPOINT_URL_S3 or
 * AWS_ENDPOINT_URL (path-style when set), region from AWS_REGION, credentials from the
 * AWS default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY first); `page_size` as the
 * config's `read.page_size`.
 */
export function s3SourceFromSpec(spec: string): AuditSource {
  const { bucket, prefix, read } = parseS3Url(spec);
  return new S3Source(connectionFromUrl(bucket, prefix), read);
}

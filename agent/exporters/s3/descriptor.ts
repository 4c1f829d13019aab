import { type ExporterDescriptor, withoutCredentials } from "../descriptor.js";
import { s3ExporterConfigSchema } from "./config.js";

/** `exporters.s3`: batches and manifests as write-once objects (docs/exporter-s3.md). */
export const s3Exporter: ExporterDescriptor<typeof s3ExporterConfigSchema> = {
  type: "s3",
  configSchema: s3ExporterConfigSchema,
  capabilities: { durable: true, readable: true },
  source: {
    scheme: "s3",
    usage: "s3://BUCKET/PREFIX",
    open: async (spec) => (await import("./factory.js")).s3SourceFromSpec(spec),
  },
  describe(config) {
    const endpoint = config.endpoint && withoutCredentials(config.endpoint);
    return {
      destination: {
        bucket: config.bucket,
        prefix: config.prefix,
        ...(endpoint ? { endpoint } : {}),
        ...(config.region ? { region: config.region } : {}),
      },
      source: `s3://${config.bucket}${config.prefix ? `/${config.prefix}` : ""}`,
      // The reader takes the endpoint and region from the environment, as the AWS CLI does.
      sourceEnv: {
        ...(endpoint ? { AWS_ENDPOINT_URL_S3: endpoint } : {}),
        ...(config.region ? { AWS_REGION: config.region } : {}),
      },
    };
  },
  load: async () => (await import("./factory.js")).s3ExporterFactory,
};

import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  PutBucketVersioningCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { s3Exporter } from "../../agent/exporters/s3/descriptor.js";
import {
  listVersions,
  RUN_ID,
  S3_ACCESS_KEY,
  S3_AVAILABLE,
  S3_REGION,
  S3_SECRET_KEY,
  S3Proxy,
  testS3Client,
  warnIfNoS3,
} from "../helpers/s3.js";
import { type ExporterHarness, exporterContract } from "./exporter-contract.js";

/**
 * The S3 exporter against a real S3 server (Ceph RGW, AUDIT_TEST_S3_ENDPOINT; skipped
 * loudly without it), once on a plain bucket (If-None-Match) and once on a versioned one
 * (HEAD before PUT; the reader sees every version). One bucket per run and kind, a prefix
 * per case; each case talks to S3 through its own proxy, which "down" stops (connections
 * refused). The buckets are emptied and deleted at the end.
 */
warnIfNoS3("test/contract/s3.contract.test.ts");
// As createS3Client does: the SDK's Node 20 end-of-support notice is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

function s3Harness(versioned: boolean): ExporterHarness {
  const bucket = `contract-${RUN_ID}-${versioned ? "versioned" : "plain"}`;
  let client: S3Client | null = null;
  let cases = 0;
  return {
    descriptor: s3Exporter,
    skip: S3_AVAILABLE ? undefined : "no S3 server (AUDIT_TEST_S3_ENDPOINT is not set)",
    async setUp() {
      client = testS3Client();
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      if (versioned)
        await client.send(
          new PutBucketVersioningCommand({
            Bucket: bucket,
            VersioningConfiguration: { Status: "Enabled" },
          }),
        );
    },
    async backend() {
      const proxy = new S3Proxy();
      await proxy.start();
      return {
        config: {
          bucket,
          prefix: `case-${++cases}`,
          endpoint: proxy.url,
          region: S3_REGION,
          access_key_id: S3_ACCESS_KEY,
          secret_access_key: S3_SECRET_KEY,
          timeout: "5s",
        },
        down: () => proxy.down(),
        up: () => proxy.up(),
        close: () => proxy.close(),
      };
    },
    async tearDown() {
      if (client === null) return;
      try {
        const versions = await listVersions(client, bucket, "");
        for (let i = 0; i < versions.length; i += 1000) {
          await client.send(
            new DeleteObjectsCommand({
              Bucket: bucket,
              Delete: {
                Objects: versions
                  .slice(i, i + 1000)
                  .map((v) => ({ Key: v.key, VersionId: v.versionId })),
                Quiet: true,
              },
            }),
          );
        }
        await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      } finally {
        client.destroy();
      }
    },
  };
}

exporterContract("s3 (plain bucket)", s3Harness(false));
exporterContract("s3 (versioned bucket)", s3Harness(true));

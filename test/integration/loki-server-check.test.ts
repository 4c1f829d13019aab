import { afterEach, describe, expect, it } from "vitest";
import { lokiExporterConfigSchema } from "../../agent/exporters/loki/config.js";
import { httpConfig } from "../../agent/exporters/loki/factory.js";
import { checkLokiServer } from "../../agent/exporters/loki/server-check.js";
import { HttpClient } from "../../agent/exporters/http/client.js";
import { startFakeLoki } from "../helpers/fake-loki.js";

/**
 * What the Loki exporter checks of the server at start: its version, and the limits in
 * Loki's running configuration (/config) that would stop the exporter or the verifier later.
 */

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

async function check(options: Parameters<typeof startFakeLoki>[0], extra: object = {}) {
  const loki = await startFakeLoki(options);
  stops.push(() => loki.stop());
  const config = lokiExporterConfigSchema.parse({ endpoint: loki.url, ...extra });
  const client = new HttpClient(httpConfig(config));
  try {
    return await checkLokiServer(client, config, {});
  } finally {
    await client.close();
  }
}

describe("the Loki exporter's start-up check", () => {
  it("reads the version; of a stock Loki, says only that max_line_size is below the agent's records", async () => {
    const stock = await check({});
    expect(stock.version).toBe("3.6.7");
    expect(stock.warnings).toEqual([
      expect.stringMatching(
        /^Loki's limits_config.max_line_size is 262144 bytes: a longer audit record is refused/,
      ),
    ]);
    const tuned = await check({ maxLineSize: 1024 * 1024 });
    expect(tuned).toEqual({ version: "3.6.7", warnings: [] });
  });

  it("warns, naming the setting and what to set it to, for each limit that would stop it", async () => {
    const facts = await check(
      {
        maxLineSize: 64 * 1024,
        allowStructuredMetadata: false,
        maxResponseBytes: 1024 * 1024,
        rejectOldSamplesMaxAgeMs: 3_600_000,
      },
      { structured_metadata: true, max_request_size_kib: 8192 },
    );
    expect(facts.warnings).toHaveLength(5);
    expect(facts.warnings.join("\n")).toMatch(/max_line_size is 65536 bytes.*max_record_size_kib/);
    expect(facts.warnings.join("\n")).toMatch(/allow_structured_metadata is false/);
    expect(facts.warnings.join("\n")).toMatch(
      /ingestion_burst_size_mb \(6\).*max_request_size_kib \(8192\)/,
    );
    expect(facts.warnings.join("\n")).toMatch(/grpc_server_max_send_msg_size is 1048576 bytes/);
    expect(facts.warnings.join("\n")).toMatch(/reject_old_samples_max_age is 3600 s/);
  });

  it("says nothing, and does not fail, where a gateway hides /config", async () => {
    const facts = await check({}, { endpoint: "http://127.0.0.1:9/" });
    expect(facts).toEqual({ version: null, warnings: [] });
  });
});

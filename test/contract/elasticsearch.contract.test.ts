import { elasticsearchExporter } from "../../agent/exporters/elasticsearch/descriptor.js";
import { FakeElasticsearch } from "../helpers/fake-elasticsearch.js";
import { exporterContract } from "./exporter-contract.js";

/**
 * The Elasticsearch exporter against the in-test Elasticsearch
 * (test/helpers/fake-elasticsearch.ts), records in a data stream; "down" cuts every
 * connection.
 */
exporterContract("elasticsearch", {
  descriptor: elasticsearchExporter,
  async backend() {
    const es = new FakeElasticsearch({ refreshIntervalMs: 0 });
    await es.start();
    return {
      config: { endpoint: es.url, index: "audit-contract", max_request_size_kib: 64 },
      async down() {
        es.down = true;
      },
      async up() {
        es.down = false;
      },
      async close() {
        await es.close();
        if (es.internalErrors.length > 0)
          throw new Error(`the fake Elasticsearch failed: ${String(es.internalErrors[0])}`);
      },
    };
  },
});

import { lokiExporter } from "../../agent/exporters/loki/descriptor.js";
import { startFakeLoki } from "../helpers/fake-loki.js";
import { exporterContract } from "./exporter-contract.js";

/**
 * The Loki exporter against the in-test Loki (test/helpers/fake-loki.ts). Pushes are kept
 * small (16 KiB) so a batch goes out in several requests; "down" refuses connections.
 */
exporterContract("loki", {
  descriptor: lokiExporter,
  async backend() {
    const loki = await startFakeLoki();
    return {
      config: {
        endpoint: loki.url,
        labels: { static: { env: "contract" } },
        max_request_size_kib: 16,
      },
      down: () => loki.down(),
      up: () => loki.up(),
      close: () => loki.stop(),
    };
  },
});

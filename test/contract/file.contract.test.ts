import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileExporter } from "../../agent/exporters/file/descriptor.js";
import { makeTempDir } from "../helpers/agent.js";
import { exporterContract } from "./exporter-contract.js";

/**
 * The file exporter against a temp directory. "Down" replaces the output directory by a
 * regular file (its contents moved aside until up()), so creating or opening a segment
 * fails. A sink already holding open segment files only notices when it opens new ones,
 * so segments are kept tiny: every batch with records starts a new pair of segments.
 */
exporterContract("file", {
  descriptor: fileExporter,
  async backend() {
    const tmp = makeTempDir("contract-file-");
    const directory = join(tmp.path, "out");
    const aside = join(tmp.path, "out.aside");
    mkdirSync(directory);
    return {
      config: { directory, rotation: { max_megabytes: 0.0001 } },
      async down() {
        renameSync(directory, aside);
        writeFileSync(directory, "not a directory\n");
      },
      async up() {
        rmSync(directory);
        renameSync(aside, directory);
      },
      async close() {
        tmp.cleanup();
      },
    };
  },
});

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { fileExporterConfigSchema } from "../../agent/exporters/file/config.js";
import { FileSink } from "../../agent/exporters/file/file-sink.js";
import { segmentName } from "../../agent/exporters/file/segments.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { makeTempDir } from "../helpers/agent.js";

/** Torn-tail recovery of the file exporter, at sizes around its 1 MiB read chunk. */

const dirs: Array<{ cleanup(): void }> = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.cleanup();
});

function line(seq: number, pad = 10): string {
  return `{"chainId":"c","prev":"${"0".repeat(64)}","record":{"logRecord":{"body":{"stringValue":"${"x".repeat(pad)}"}}},"seq":"${seq}","timeReceivedUnixNano":"1","v":1}\n`;
}

async function recover(content: string) {
  const tmp = makeTempDir("file-sink-");
  dirs.push(tmp);
  const chainDir = join(tmp.path, "c");
  const { mkdirSync } = await import("node:fs");
  mkdirSync(chainDir);
  const segment = join(chainDir, segmentName(0));
  writeFileSync(segment, content);
  const sink = new FileSink(
    fileExporterConfigSchema.parse({ directory: tmp.path }),
    createLogger("error"),
  );
  const held = await sink.open("c");
  await sink.close();
  return { held, after: readFileSync(segment, "utf8") };
}

describe("file exporter tail recovery", () => {
  it("reports the last complete line and keeps the file when it ends cleanly", async () => {
    const content = line(0) + line(1) + line(2);
    expect(await recover(content)).toEqual({ held: 2, after: content });
  });

  it.each([1000, 1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 5, 2 * 1024 * 1024 - 1])(
    "cuts a torn final line of %i bytes and resumes after the line before it",
    async (tornBytes) => {
      const good = line(0) + line(1, 3000);
      const { held, after } = await recover(good + "z".repeat(tornBytes));
      expect(held).toBe(1);
      expect(after).toBe(good);
    },
  );

  it("finds the last line when it is longer than the read chunk", async () => {
    const good = line(0) + line(1, 3 * 1024 * 1024);
    const { held, after } = await recover(good);
    expect(held).toBe(1);
    expect(after).toBe(good);
  });

  it("returns nothing held for a segment that is only a torn line", async () => {
    expect(await recover('{"chainId":')).toEqual({ held: null, after: "" });
  });
});

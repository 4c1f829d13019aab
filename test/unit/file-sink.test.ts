import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { recoverTail } from "../../agent/exporters/file/tail.js";
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
  const segment = join(tmp.path, "records-00000000000000000000.ndjson");
  writeFileSync(segment, content);
  const { lastLine } = await recoverTail(segment);
  const held = lastLine === null ? null : Number((JSON.parse(lastLine) as { seq: string }).seq);
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

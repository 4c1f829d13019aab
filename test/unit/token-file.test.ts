import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BearerAuth } from "../../agent/receivers/otlp/security.js";
import { makeTempDir } from "../helpers/agent.js";

/** `auth.bearer_token_file`: a token every user of the host can read is refused. */

const dirs: Array<{ cleanup(): void }> = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.cleanup();
});

function tokenFile(mode: number, token = "0123456789abcdef0123"): string {
  const d = makeTempDir("token-file-");
  dirs.push(d);
  const path = join(d.path, "token");
  writeFileSync(path, `${token}\n`);
  chmodSync(path, mode);
  return path;
}

describe("bearer_token_file", () => {
  it("is read when only its owner (or its group) may read it", () => {
    for (const mode of [0o600, 0o400, 0o640, 0o440]) {
      const auth = new BearerAuth({ bearer_token_file: tokenFile(mode) });
      expect(auth.allows("Bearer 0123456789abcdef0123")).toBe(true);
      expect(auth.allows("Bearer wrong")).toBe(false);
    }
  });

  it("is refused, saying how to fix it, when every user of the host may read it", () => {
    const path = tokenFile(0o644);
    expect(() => new BearerAuth({ bearer_token_file: path })).toThrow(
      expect.objectContaining({
        code: "AUTH_TOKEN_UNSAFE",
        message: expect.stringContaining(`mode 644): run chmod 600 ${path}`),
      }),
    );
    expect(() => new BearerAuth({ bearer_token_file: tokenFile(0o604) })).toThrow(
      /AUTH_TOKEN_UNSAFE|readable by every user/,
    );
  });

  it("still refuses a short token", () => {
    expect(() => new BearerAuth({ bearer_token_file: tokenFile(0o600, "short") })).toThrow(
      /shorter than 16 characters/,
    );
  });
});

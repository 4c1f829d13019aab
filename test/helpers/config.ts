import { expect } from "vitest";
import { ConfigError, parseConfig } from "../../agent/config/load.js";

/**
 * The problems `parseConfig` reports for the config text `text` (as file "x.yaml"), after
 * checking that it refused it as the loader always does: a ConfigError coded
 * CONFIG_INVALID, naming the file, whose message holds every problem. Fails the test when
 * the config is accepted.
 */
export function configProblems(
  text: string,
  env: Record<string, string | undefined> = {},
): string[] {
  try {
    parseConfig(text, "x.yaml", env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.code).toBe("CONFIG_INVALID");
    expect(e.file).toBe("x.yaml");
    for (const p of e.problems) expect(e.message).toContain(p);
    return e.problems;
  }
  throw new Error("expected parseConfig to reject the config");
}

import { timingSafeEqual } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { type Clock, systemClock } from "../../common/clock.js";
import { AgentError } from "../../common/errors.js";
import type { ReceiverAuthConfig } from "./config.js";

/**
 * Client authentication and admission for the receivers: a bearer token compared in
 * constant time, and a token bucket that caps the request rate.
 */
export class BearerAuth {
  private readonly expected: Buffer;

  constructor(config: ReceiverAuthConfig) {
    let token = config.bearer_token;
    if (config.bearer_token_file) {
      refuseWorldReadable(config.bearer_token_file);
      try {
        token = readFileSync(config.bearer_token_file, "utf8").trim();
      } catch (err) {
        throw new AgentError(
          "AUTH_TOKEN_UNREADABLE",
          `cannot read bearer_token_file ${config.bearer_token_file}: ${(err as Error).message}`,
        );
      }
      if (token.length < 16)
        throw new AgentError(
          "AUTH_TOKEN_WEAK",
          `the token in ${config.bearer_token_file} is shorter than 16 characters`,
        );
    }
    this.expected = Buffer.from(`Bearer ${token}`, "utf8");
  }

  /** True when the Authorization header carries the configured token. */
  allows(authorization: string | undefined): boolean {
    if (!authorization) return false;
    const got = Buffer.from(authorization.trim(), "utf8");
    return got.length === this.expected.length && timingSafeEqual(got, this.expected);
  }
}

/**
 * A token file that every user of the host can read is a credential anyone there may use:
 * refused, as the signing key is. Group-readable is allowed (a Kubernetes fsGroup mount).
 */
function refuseWorldReadable(path: string): void {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return; // the read below says why it cannot be read
  }
  if ((mode & 0o007) !== 0)
    throw new AgentError(
      "AUTH_TOKEN_UNSAFE",
      `bearer_token_file ${path} is readable by every user of the host (mode ${mode.toString(8)}): run chmod 600 ${path} (on Kubernetes, mount the Secret with defaultMode: 0440 or tighter)`,
    );
}

export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly burst: number;

  constructor(
    private readonly perSecond: number,
    burst?: number,
    /** Refills by its monotonic time, which a wall-clock step cannot drain or flood. */
    private readonly clock: Clock = systemClock,
  ) {
    this.burst = burst ?? Math.max(1, Math.ceil(perSecond));
    this.tokens = this.burst;
    this.last = clock.monotonic();
  }

  /** Takes one token; false when the rate is exceeded. */
  take(): boolean {
    const now = this.clock.monotonic();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export class RateLimitedError extends AgentError {
  constructor(perSecond: number) {
    super(
      "RATE_LIMITED",
      `too many requests: this receiver accepts ${perSecond} per second; retry later`,
    );
  }
}

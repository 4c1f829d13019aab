import { z } from "../common/zod.js";
import { AgentError } from "../common/errors.js";
import type { ConsistencyProofJson, InclusionProofJson } from "../integrity/proofs.js";

/**
 * `audit-agent prove --agent URL`: a proof from a running agent's checkpoint endpoint
 * (`extensions.signing.endpoint`). Every way that can fail — a URL that is not one, no
 * endpoint listening, an error answer, an answer that is not a proof — is a coded error
 * naming the URL and what to do, never a fetch stack.
 */

/** How long one request may take: the endpoint answers from the agent's memory and WAL. */
const TIMEOUT_MS = 30_000;

const HASH = z.string().regex(/^[0-9a-f]{64}$/);
const size = z.number().int().nonnegative();
const inclusionSchema = z
  .object({
    type: z.literal("inclusion"),
    seq: size,
    treeSize: size,
    leafHash: HASH,
    rootHash: HASH,
    proof: z.array(HASH),
  })
  .passthrough();
const consistencySchema = z
  .object({
    type: z.literal("consistency"),
    oldSize: size,
    newSize: size,
    oldRootHash: HASH,
    newRootHash: HASH,
    proof: z.array(HASH),
  })
  .passthrough();

/** What to check when the endpoint cannot be reached or does not answer as one. */
const HINT =
  "check that the agent is running with extensions.signing.endpoint set and that URL is that address (e.g. http://127.0.0.1:8890), or stop the agent and prove from its WAL without --agent";

/** `url` as the base of the endpoint's paths, refused unless it is an http(s) URL. */
export function agentBase(url: string): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.search || parsed.hash)
    throw new AgentError(
      "PROVE_USAGE",
      `--agent "${url}" is not an http(s) URL: give the agent's checkpoint endpoint (extensions.signing.endpoint), e.g. --agent http://127.0.0.1:8890`,
    );
  return url.replace(/\/+$/, "");
}

/** GETs `url`; an endpoint that cannot be reached is PROVE_AGENT_UNREACHABLE. */
async function get(url: string): Promise<Response> {
  try {
    return await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why =
      (err as Error).name === "TimeoutError"
        ? `no answer within ${TIMEOUT_MS / 1000} s`
        : (cause?.code ?? cause?.message ?? (err as Error).message);
    throw new AgentError("PROVE_AGENT_UNREACHABLE", `cannot reach ${url} (${why}): ${HINT}`, {
      cause: err,
    });
  }
}

/** The proof the endpoint at `base` serves at `path` (`/proof/…?…`), checked to be one. */
export async function fetchProof(
  base: string,
  path: string,
  type: "inclusion" | "consistency",
): Promise<InclusionProofJson | ConsistencyProofJson> {
  const url = `${base}${path}`;
  const res = await get(url);
  const text = await res.text().catch(() => "");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const error = (body as { error?: unknown } | undefined)?.error;
    throw new AgentError(
      "PROVE_AGENT_ERROR",
      typeof error === "string"
        ? `${url} answered HTTP ${res.status}: ${error}`
        : `${url} answered HTTP ${res.status}, not as an audit-agent checkpoint endpoint does: ${HINT}`,
    );
  }
  const proof = (type === "inclusion" ? inclusionSchema : consistencySchema).safeParse(body);
  if (!proof.success) {
    const what = body === undefined ? "text that is not JSON" : `JSON that is not a ${type} proof`;
    throw new AgentError(
      "PROVE_AGENT_BAD_ANSWER",
      `${url} answered HTTP ${res.status} with ${what} (${JSON.stringify(text.slice(0, 60))}): ${HINT}`,
    );
  }
  return proof.data;
}

/** The endpoint's latest signed checkpoint, or null when it has none or cannot say. */
export async function fetchCheckpoint(base: string): Promise<string | null> {
  try {
    const res = await fetch(`${base}/checkpoint`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    return res.ok ? await res.text() : null;
  } catch {
    // The proof came; without its checkpoint it is printed with "checkpoint": null.
    return null;
  }
}

import { parentPort, workerData } from "node:worker_threads";
import { AgentError } from "../common/errors.js";
import type { VerifyOptions, VerifyWorkerMessage } from "./verify.js";
import { collectReports } from "./verify-run.js";

/**
 * `audit-agent verify`'s reading and judging, on a worker thread under a heap cap
 * (verify.ts collectOnWorker); the main thread prints.
 */
const port = parentPort;
const post = (m: VerifyWorkerMessage) => port?.postMessage(m);
let last = 0;
collectReports(workerData as VerifyOptions, {
  startSource: (description) => post({ type: "source", description }),
  records: (chainId, n) => {
    // A progress message per page would cost more than the page: a few a second is enough.
    const now = Date.now();
    if (now - last < 200) return;
    last = now;
    post({ type: "records", chainId, n });
  },
}).then(
  (reports) => post({ type: "done", reports }),
  (err: unknown) =>
    post({
      type: "error",
      ...(err instanceof AgentError ? { code: err.code } : {}),
      message: err instanceof Error ? err.message : String(err),
      ...(err instanceof Error && err.stack ? { stack: err.stack } : {}),
    }),
);

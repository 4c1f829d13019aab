import { parentPort } from "node:worker_threads";
import { checkLineBytes } from "./line-check.js";

/** A line-checking thread (line-checkers.ts): pages of record lines in, CheckedLines out. */
parentPort?.on("message", (m: { id: number; bytes: Uint8Array; chainId: string }) => {
  const result = checkLineBytes(m.bytes, m.chainId);
  parentPort?.postMessage({ id: m.id, result }, [
    result.seqs.buffer as ArrayBuffer,
    result.hashes.buffer as ArrayBuffer,
  ]);
});
// Code loaded: pages may come (line-checkers.ts deals them only to threads that said so).
parentPort?.postMessage("ready");

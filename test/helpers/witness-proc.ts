import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { CLI } from "./agent.js";

/** `audit-agent witness --config FILE`, the built CLI, as a child process. */
export interface WitnessChild {
  child: ChildProcess;
  /** Its log lines (JSON, stderr), as they come. */
  logs: string[];
  /** host:port once it logged "witness started"; rejects if it exits before. */
  started: Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGKILL) unless it has exited, and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnWitness(configFile: string): WitnessChild {
  const child = spawn(process.execPath, [CLI, "witness", "--config", configFile], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const logs: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const started = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => {
      logs.push(line);
      if (line.includes('"witness started"'))
        resolve((JSON.parse(line) as { address: string }).address);
    });
    void exited.then(({ code, signal }) =>
      reject(
        new Error(`the witness exited (${code ?? signal}) before serving:\n${logs.join("\n")}`),
      ),
    );
  });
  started.catch(() => undefined); // a witness killed while starting is not an unhandled rejection
  return {
    child,
    logs,
    started,
    exited,
    kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

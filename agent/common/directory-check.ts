import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

/**
 * Whether the agent or a command can use a directory it writes (the WAL, an exporter's
 * output, `keygen --out`), checked before anything is created there, so that a bad path is
 * refused with what to do and nothing half-made, instead of failing midway on ENOTDIR or
 * EACCES. A missing directory is fine when it can be created (as `mkdir -p` would).
 */

/** Why the agent could not create or write `dir`, or null when it can. */
export function directoryProblem(dir: string): string | null {
  let at = resolve(dir);
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(at);
  } catch (err) {
    return `cannot look at ${at}: ${(err as Error).message}`;
  }
  const target = resolve(dir);
  if (!stat.isDirectory())
    return at === target
      ? `${dir} is a file, not a directory: give a directory, or move the file away`
      : `${at} is a file, so ${dir} cannot be created under it: fix the path`;
  try {
    accessSync(at, constants.W_OK | constants.X_OK);
  } catch {
    return at === target
      ? `${dir} is not writable by the agent's user (uid ${process.getuid?.()}; mode ${octal(stat.mode)}, owner uid ${stat.uid}): chown it to that user, or give another directory`
      : `${dir} does not exist and cannot be created: ${at} is not writable by the agent's user (uid ${process.getuid?.()}): create ${dir} for that user (mkdir -p ${dir}; chown), or give another directory`;
  }
  return null;
}

function octal(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, "0");
}

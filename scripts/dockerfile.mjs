#!/usr/bin/env node
// Reads the Dockerfile and .dockerignore, and builds the image's file tree without Docker.
//
//   node scripts/dockerfile.mjs build --context DIR --work DIR [--dockerfile FILE]
//
// copies the build context as Docker sends it (.dockerignore applied) to WORK/context, then
// carries out each stage of the Dockerfile in its own directory WORK/stages/N-NAME standing in
// for that stage's "/": WORKDIR, ENV, ARG and COPY (from the context or --from an earlier stage)
// exactly as written, RUN in the build stages through sh in the stage's working directory
// (their commands must use relative paths only, so they cannot touch the host), and in the
// final stage the few system commands it uses (groupadd, useradd, install -d, mkdir, ln -s,
// chmod, chown) emulated inside the stage directory. Anything else fails loudly, so the
// check cannot drift from the Dockerfile. It writes WORK/image.json: the final stage's root,
// user, working directory, environment, entrypoint, cmd, volumes, ports and healthcheck.
// scripts/image-build-check.sh runs the result; test/unit/dockerfile.test.ts uses the parser.

import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, posix, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * @typedef {{ keyword: string, args: string, json: string[] | null,
 *   flags: Record<string, string>, line: number }} Instruction
 * @typedef {{ index: number, name: string | null, from: string, line: number,
 *   instructions: Instruction[] }} Stage
 * @typedef {{ globalArgs: Record<string, string | undefined>, stages: Stage[] }} Dockerfile
 */

const FLAG_KEYWORDS = new Set(["FROM", "COPY", "ADD", "RUN", "HEALTHCHECK"]);
const JSON_KEYWORDS = new Set(["RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"]);

/**
 * Parses a Dockerfile into stages of instructions: comments dropped, `\` continuations joined,
 * leading `--flag=value` options split off, exec (JSON) forms decoded. No substitution.
 * @param {string} text
 * @returns {Dockerfile}
 */
export function parseDockerfile(text) {
  /** @type {{ text: string, line: number }[]} */
  const logical = [];
  let current = null;
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith("#")) return; // comments, also inside continuations
    if (current === null && trimmed === "") return;
    const continues = /\\\s*$/.test(raw);
    const piece = continues ? raw.replace(/\\\s*$/, "") : raw;
    if (current === null) current = { text: piece.trim(), line: i + 1 };
    else if (trimmed !== "") current.text += ` ${piece.trim()}`;
    if (!continues) {
      logical.push(current);
      current = null;
    }
  });
  if (current !== null) logical.push(current);

  /** @type {Record<string, string | undefined>} */
  const globalArgs = {};
  /** @type {Stage[]} */
  const stages = [];
  for (const { text: lineText, line } of logical) {
    const m = /^(\S+)\s*(.*)$/s.exec(lineText);
    if (!m) continue;
    const keyword = m[1].toUpperCase();
    let args = m[2].trim();
    /** @type {Record<string, string>} */
    const flags = {};
    if (FLAG_KEYWORDS.has(keyword)) {
      let f;
      while ((f = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(args))) {
        flags[f[1]] = f[2] ?? "true";
        args = args.slice(f[0].length);
      }
    }
    let json = null;
    const jsonText = keyword === "HEALTHCHECK" ? args.replace(/^CMD\s+/i, "") : args;
    if ((JSON_KEYWORDS.has(keyword) || keyword === "HEALTHCHECK") && jsonText.startsWith("[")) {
      try {
        const parsed = JSON.parse(jsonText);
        if (Array.isArray(parsed) && parsed.every((s) => typeof s === "string")) json = parsed;
      } catch {
        // shell form that happens to start with "["
      }
    }
    /** @type {Instruction} */
    const instruction = { keyword, args, json, flags, line };
    if (keyword === "FROM") {
      const fm = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!fm) throw new Error(`Dockerfile:${line}: cannot read FROM ${args}`);
      stages.push({
        index: stages.length,
        name: fm[2] ? fm[2].toLowerCase() : null,
        from: fm[1],
        line,
        instructions: [],
      });
    } else if (stages.length === 0) {
      if (keyword !== "ARG") throw new Error(`Dockerfile:${line}: ${keyword} before FROM`);
      const am = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/s.exec(args);
      if (am) globalArgs[am[1]] = am[2] === undefined ? undefined : unquote(am[2]);
    } else {
      stages[stages.length - 1].instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

function unquote(s) {
  const t = s.trim();
  if (t.length >= 2 && (t[0] === '"' || t[0] === "'") && t.at(-1) === t[0]) return t.slice(1, -1);
  return t;
}

/**
 * Docker's variable substitution: $NAME, ${NAME}, ${NAME:-default}, ${NAME:+alt}.
 * @param {string} text
 * @param {Record<string, string | undefined>} vars
 */
export function substitute(text, vars) {
  return text.replace(
    /\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, braced, op, word, bare) => {
      if (match === "\\$") return "$";
      const value = vars[braced ?? bare];
      if (op === "-") return value ? value : word;
      if (op === "+") return value ? word : "";
      return value ?? "";
    },
  );
}

/** Splits `KEY=VALUE KEY2="VALUE 2"` (ENV, LABEL) into pairs; also the legacy `ENV KEY VALUE`. */
export function parsePairs(args) {
  /** @type {[string, string][]} */
  const pairs = [];
  if (!/^[^\s=]+=/.test(args)) {
    const m = /^(\S+)\s+(.*)$/s.exec(args);
    if (m) pairs.push([m[1], m[2]]);
    return pairs;
  }
  const re = /([^\s=]+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g;
  let m;
  while ((m = re.exec(args))) {
    let v = m[2];
    if (v.startsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, "$1");
    else if (v.startsWith("'")) v = v.slice(1, -1);
    pairs.push([m[1], v]);
  }
  return pairs;
}

// ---- .dockerignore ----

/** One .dockerignore pattern as a regular expression over slash-separated relative paths. */
function patternToRegExp(pattern) {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") {
      if (pattern[i + 1] === "*") {
        i++;
        if (pattern[i + 1] === "/") {
          i++;
          re += "(?:.*/)?";
        } else re += ".*";
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) re += "\\[";
      else {
        let cls = pattern.slice(i + 1, end);
        if (cls.startsWith("!")) cls = `^${cls.slice(1)}`;
        re += `[${cls.replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else if (c === "\\" && i + 1 < pattern.length) {
      i++;
      re += pattern[i].replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/**
 * A matcher for a .dockerignore file with Docker's rules: patterns are anchored at the
 * context root, `*` and `?` stay within a path segment, `**` spans segments, a path is
 * excluded when it or a parent directory matches, `!` re-includes, and the last match wins.
 * @param {string} text
 * @returns {{ excluded: (path: string) => boolean, hasExceptions: boolean }}
 */
export function dockerignore(text) {
  const patterns = [];
  for (const raw of text.split(/\r?\n/)) {
    let p = raw.trim();
    if (p === "" || p.startsWith("#")) continue;
    const negate = p.startsWith("!");
    if (negate) p = p.slice(1).trim();
    p = posix.normalize(p).replace(/^\/+/, "").replace(/\/+$/, "");
    if (p === "" || p === ".") continue;
    patterns.push({ negate, re: patternToRegExp(p) });
  }
  const matches = (re, path) => {
    if (re.test(path)) return true;
    const parts = path.split("/");
    for (let n = 1; n < parts.length; n++) if (re.test(parts.slice(0, n).join("/"))) return true;
    return false;
  };
  return {
    hasExceptions: patterns.some((p) => p.negate),
    excluded(path) {
      let out = false;
      for (const p of patterns) if (matches(p.re, path)) out = !p.negate;
      return out;
    },
  };
}

/** Copies `from` to `to` as the build context Docker would receive. Returns the file count. */
export function copyContext(from, to) {
  const ignoreFile = join(from, ".dockerignore");
  const ignore = dockerignore(existsSync(ignoreFile) ? readFileSync(ignoreFile, "utf8") : "");
  let count = 0;
  const walk = (rel) => {
    for (const entry of readdirSync(join(from, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      const excluded = ignore.excluded(path);
      if (entry.isDirectory()) {
        if (excluded && !ignore.hasExceptions) continue;
        if (!excluded) mkdirSync(join(to, path), { recursive: true });
        walk(path);
      } else if (!excluded) {
        mkdirSync(dirname(join(to, path)), { recursive: true });
        if (entry.isSymbolicLink()) symlinkSync(readlinkSync(join(from, path)), join(to, path));
        else cpSync(join(from, path), join(to, path));
        count++;
      }
    }
  };
  mkdirSync(to, { recursive: true });
  walk("");
  return count;
}

// ---- building ----

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** Where an absolute image path lives inside a stage directory. */
const inRoot = (root, imagePath) => join(root, imagePath);

function modeOf(text) {
  if (!/^[0-7]{3,4}$/.test(text)) throw new Error(`unsupported mode "${text}": use octal`);
  return parseInt(text, 8);
}

function chmodTree(path, mode) {
  chmodSync(path, mode);
  if (lstatSync(path).isDirectory())
    for (const e of readdirSync(path)) {
      const p = join(path, e);
      if (!lstatSync(p).isSymbolicLink()) chmodTree(p, mode);
    }
}

function chownTree(path, uid, gid) {
  lchownSync(path, uid, gid);
  if (lstatSync(path).isDirectory())
    for (const e of readdirSync(path)) chownTree(join(path, e), uid, gid);
}

/**
 * Builds every stage; returns the final stage's image description.
 * @param {{ dockerfile: string, context: string, work: string, log?: (s: string) => void }} o
 */
export function build(o) {
  const log = o.log ?? ((s) => process.stdout.write(`${s}\n`));
  const df = parseDockerfile(readFileSync(o.dockerfile, "utf8"));
  const contextDir = join(o.work, "context");
  const files = copyContext(o.context, contextDir);
  log(`context: ${files} files after .dockerignore`);

  /** @type {{ name: string | null, root: string, env: Record<string, string>, workdir: string, desc: Record<string, unknown> }[]} */
  const built = [];
  const users = {};
  const groups = {};
  let image = null;

  for (const stage of df.stages) {
    const last = stage.index === df.stages.length - 1;
    const label = `${stage.name ?? `stage ${stage.index}`}`;
    const from = substitute(stage.from, df.globalArgs);
    if (/(^|:)latest(@|$)/.test(from))
      throw new Error(`Dockerfile:${stage.line}: FROM ${from}: pin an exact version, not latest`);
    const root = join(o.work, "stages", `${stage.index}-${stage.name ?? "stage"}`);
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    /** @type {Record<string, string>} */
    let env = {};
    let workdir = "/";
    const parent = built.find((b) => b.name !== null && b.name === from.toLowerCase());
    if (parent) {
      cpSync(parent.root, root, { recursive: true, verbatimSymlinks: true });
      env = { ...parent.env };
      workdir = parent.workdir;
    }
    /** @type {Record<string, string | undefined>} */
    const args = {};
    const vars = () => ({ ...args, ...env });
    // What the image records (user, labels, ports…), inherited from a parent stage.
    const desc = {
      user: "0",
      labels: {},
      expose: [],
      volumes: [],
      entrypoint: null,
      cmd: null,
      healthcheck: null,
      stopsignal: null,
      ...(parent ? structuredClone(parent.desc) : {}),
      root,
      from,
    };
    log(
      `[${label}] FROM ${from}${parent ? "" : " (base image not available here: host tools stand in)"}`,
    );

    for (const ins of stage.instructions) {
      const where = `Dockerfile:${ins.line}`;
      const expanded = () => substitute(ins.args, vars());
      switch (ins.keyword) {
        case "ARG": {
          const am = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/s.exec(ins.args);
          if (!am) throw new Error(`${where}: cannot read ARG ${ins.args}`);
          args[am[1]] =
            am[2] !== undefined ? unquote(substitute(am[2], vars())) : df.globalArgs[am[1]];
          break;
        }
        case "ENV":
          for (const [k, v] of parsePairs(ins.args)) env[k] = substitute(v, vars());
          break;
        case "LABEL":
          for (const [k, v] of parsePairs(ins.args)) desc.labels[k] = substitute(v, vars());
          break;
        case "WORKDIR":
          workdir = posix.resolve(workdir, expanded());
          mkdirSync(inRoot(root, workdir), { recursive: true });
          break;
        case "USER":
          desc.user = expanded();
          break;
        case "EXPOSE":
          desc.expose.push(...expanded().split(/\s+/).filter(Boolean));
          break;
        case "VOLUME":
          desc.volumes.push(...(ins.json ?? expanded().split(/\s+/).filter(Boolean)));
          break;
        case "ENTRYPOINT":
        case "CMD": {
          const value = ins.json ?? ["/bin/sh", "-c", ins.args];
          if (ins.keyword === "ENTRYPOINT") desc.entrypoint = value;
          else desc.cmd = value;
          break;
        }
        case "HEALTHCHECK":
          desc.healthcheck = { flags: ins.flags, test: ins.json ?? ins.args };
          break;
        case "STOPSIGNAL":
          desc.stopsignal = expanded();
          break;
        case "COPY": {
          log(
            `[${label}] COPY ${Object.entries(ins.flags)
              .map(([k, v]) => `--${k}=${v} `)
              .join("")}${ins.args}`,
          );
          copyInstruction(ins, expanded(), { root, workdir, contextDir, built, users, groups });
          break;
        }
        case "RUN": {
          const command = ins.json ? ins.json.join(" ") : ins.args;
          log(`[${label}] RUN ${command.length > 100 ? `${command.slice(0, 100)}…` : command}`);
          if (last) emulateSystemRun(command, where, root, users, groups);
          else runInStage(command, where, inRoot(root, workdir), env);
          break;
        }
        default:
          throw new Error(`${where}: ${ins.keyword} is not supported by this check`);
      }
    }
    built.push({ name: stage.name, root, env, workdir, desc });
    if (last)
      image = { ...desc, env, workdir, users, groups, stages: df.stages.map((s) => s.name) };
  }
  writeFileSync(join(o.work, "image.json"), `${JSON.stringify(image, null, 2)}\n`);
  return image;
}

function copyInstruction(ins, args, s) {
  const where = `Dockerfile:${ins.line}`;
  for (const flag of Object.keys(ins.flags))
    if (!["from", "chown", "chmod", "link"].includes(flag))
      throw new Error(`${where}: COPY --${flag} is not supported by this check`);
  const parts = ins.json ?? args.split(/\s+/).filter(Boolean);
  if (parts.length < 2) throw new Error(`${where}: COPY needs a source and a destination`);
  const sources = parts.slice(0, -1);
  const destText = parts.at(-1);
  let srcRoot = s.contextDir;
  if (ins.flags.from) {
    const from = ins.flags.from.toLowerCase();
    const stage = /^\d+$/.test(from) ? s.built[Number(from)] : s.built.find((b) => b.name === from);
    if (!stage) throw new Error(`${where}: COPY --from=${from}: no such earlier stage`);
    srcRoot = stage.root;
  }
  const destImage = posix.resolve(s.workdir, destText);
  const dest = inRoot(s.root, destImage);
  const intoDir = destText.endsWith("/") || sources.length > 1;
  const done = [];
  for (const src of sources) {
    if (/[*?[]/.test(src)) throw new Error(`${where}: wildcards in COPY are not supported here`);
    const from = join(srcRoot, posix.normalize(`/${src}`));
    if (!existsSync(from))
      throw new Error(
        `${where}: COPY ${src}: not found${ins.flags.from ? ` in stage ${ins.flags.from}` : " in the build context (check .dockerignore)"}`,
      );
    let target;
    if (statSync(from).isDirectory()) {
      target = dest;
      mkdirSync(target, { recursive: true });
      cpSync(from, target, { recursive: true, verbatimSymlinks: true });
    } else {
      target = intoDir ? join(dest, basename(from)) : dest;
      mkdirSync(dirname(target), { recursive: true });
      cpSync(from, target);
    }
    done.push(target);
  }
  for (const target of done) {
    if (ins.flags.chmod) chmodTree(target, modeOf(ins.flags.chmod));
    if (ins.flags.chown && isRoot) {
      const [u, g] = ins.flags.chown.split(":");
      chownTree(target, resolveId(u, s.users, "uid"), resolveId(g ?? u, s.groups, "gid"));
    }
  }
}

function resolveId(text, table, field) {
  if (/^\d+$/.test(text)) return Number(text);
  const entry = table[text];
  if (entry === undefined) throw new Error(`unknown user or group "${text}"`);
  return typeof entry === "number" ? entry : entry[field];
}

/** A build stage's RUN: through sh in the stage's working directory, relative paths only. */
function runInStage(command, where, cwd, env) {
  const absolute = /(?:^|[\s=:'"(,;&|])\/(?!\/)/.exec(command);
  if (absolute)
    throw new Error(
      `${where}: RUN in a build stage uses an absolute path (near "${command.slice(absolute.index, absolute.index + 30)}"): this check runs it on the host, so keep build-stage commands relative to WORKDIR`,
    );
  const r = spawnSync("sh", ["-c", command], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (r.status !== 0)
    throw new Error(`${where}: RUN failed (exit ${r.status ?? r.signal}): ${command}`);
}

/** The final stage's RUN: its system commands, carried out inside the stage directory. */
function emulateSystemRun(command, where, root, users, groups) {
  if (/[|;<>`$'"\\]/.test(command.replace(/&&/g, "")))
    throw new Error(
      `${where}: the final stage's RUN may only chain simple commands with &&: ${command}`,
    );
  for (const step of command.split("&&")) {
    const argv = step.trim().split(/\s+/);
    const [cmd, ...rest] = argv;
    /** Options taking a value, per command; any other "-x" is a switch. */
    const withValue = new Set(
      {
        groupadd: ["--gid", "-g"],
        useradd: ["--uid", "-u", "--gid", "-g", "--home-dir", "-d", "--shell", "-s"],
        install: ["--owner", "-o", "--group", "-g", "--mode", "-m"],
        mkdir: ["--mode", "-m"],
      }[cmd] ?? [],
    );
    /** @type {Record<string, string | true>} */
    const opts = {};
    const operands = [];
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i];
      const eq = /^(--[a-z-]+)=(.*)$/.exec(a);
      if (eq) opts[eq[1]] = eq[2];
      else if (withValue.has(a)) opts[a] = rest[++i];
      else if (a.startsWith("-")) opts[a] = true;
      else operands.push(a);
    }
    const path = (p) => inRoot(root, p);
    switch (cmd) {
      case "groupadd":
        groups[operands[0]] = Number(opts["--gid"] ?? opts["-g"]);
        break;
      case "useradd":
        users[operands[0]] = {
          uid: Number(opts["--uid"] ?? opts["-u"]),
          gid: resolveId(String(opts["--gid"] ?? opts["-g"]), groups, "gid"),
          home: opts["--home-dir"] ?? opts["-d"] ?? `/home/${operands[0]}`,
        };
        break;
      case "install":
      case "mkdir": {
        if (cmd === "install" && !opts["-d"])
          throw new Error(`${where}: only "install -d" is emulated: ${step.trim()}`);
        const mode = opts["-m"] ?? opts["--mode"];
        const owner = opts["-o"] ?? opts["--owner"];
        const group = opts["-g"] ?? opts["--group"];
        for (const dir of operands) {
          mkdirSync(path(dir), { recursive: true });
          if (mode) chmodSync(path(dir), modeOf(mode));
          if ((owner || group) && isRoot)
            chownSync(
              path(dir),
              owner ? resolveId(owner, users, "uid") : 0,
              group ? resolveId(group, groups, "gid") : 0,
            );
        }
        break;
      }
      case "ln": {
        if (!opts["-s"] && !opts["-sf"]) throw new Error(`${where}: only "ln -s" is emulated`);
        const [target, link] = operands;
        mkdirSync(dirname(path(link)), { recursive: true });
        if (opts["-sf"]) rmSync(path(link), { force: true });
        // An absolute target means the image's path: point into the stage directory.
        symlinkSync(target.startsWith("/") ? path(target) : target, path(link));
        break;
      }
      case "chmod":
        for (const p of operands.slice(1)) chmodSync(path(p), modeOf(operands[0]));
        break;
      case "chown": {
        const [u, g] = operands[0].split(":");
        if (isRoot)
          for (const p of operands.slice(1))
            lchownSync(path(p), resolveId(u, users, "uid"), resolveId(g ?? u, groups, "gid"));
        break;
      }
      default:
        throw new Error(
          `${where}: "${cmd}" in the final stage's RUN is not emulated by scripts/dockerfile.mjs: teach it, or move the step to a build stage`,
        );
    }
  }
}

// ---- command line ----

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [command, ...rest] = process.argv.slice(2);
  const opt = (name) => {
    const i = rest.indexOf(`--${name}`);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  try {
    if (command !== "build")
      throw new Error("usage: dockerfile.mjs build --context DIR --work DIR [--dockerfile FILE]");
    const context = resolve(opt("context") ?? ".");
    const work = resolve(opt("work") ?? "");
    build({ dockerfile: resolve(opt("dockerfile") ?? join(context, "Dockerfile")), context, work });
  } catch (err) {
    process.stderr.write(`dockerfile.mjs: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}

import { existsSync, readFileSync, statSync } from "node:fs";
import { join, posix } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.js";
import {
  dockerignore,
  parseDockerfile,
  parsePairs,
  substitute,
} from "../../scripts/dockerfile.mjs";

/**
 * The container image's facts, read from the Dockerfile, .dockerignore and the image config
 * (docs/container.md). scripts/image-build-check.sh builds and runs what these describe.
 */

const ROOT = join(import.meta.dirname, "../..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const pkg = JSON.parse(read("package.json")) as {
  version: string;
  license: string;
  bin: Record<string, string>;
};

interface Instruction {
  keyword: string;
  args: string;
  json: string[] | null;
  flags: Record<string, string>;
  line: number;
}
interface Stage {
  index: number;
  name: string | null;
  from: string;
  instructions: Instruction[];
}

const df = parseDockerfile(read("Dockerfile")) as {
  globalArgs: Record<string, string | undefined>;
  stages: Stage[];
};
const stages = df.stages;
const final = stages[stages.length - 1]!;
const all = (stage: Stage, keyword: string) =>
  stage.instructions.filter((i) => i.keyword === keyword);
const lastOf = (stage: Stage, keyword: string) => all(stage, keyword).at(-1);
const fromImage = (stage: Stage) => substitute(stage.from, df.globalArgs);
/**
 * COPY's sources and destination, resolved against the WORKDIR in force; `targets` are where
 * the sources end up (a context file copied into a directory keeps its name).
 */
function copies(stage: Stage) {
  let workdir = "/";
  const out: { from?: string; sources: string[]; dest: string; targets: string[] }[] = [];
  for (const i of stage.instructions) {
    if (i.keyword === "WORKDIR") workdir = posix.resolve(workdir, i.args);
    if (i.keyword !== "COPY") continue;
    const parts = i.json ?? i.args.split(/\s+/);
    const destText = parts.at(-1)!;
    const dest = posix.resolve(workdir, destText);
    const sources = parts.slice(0, -1);
    const isContextFile = (src: string) =>
      i.flags.from === undefined &&
      existsSync(join(ROOT, src)) &&
      statSync(join(ROOT, src)).isFile();
    out.push({
      from: i.flags.from,
      sources,
      dest,
      targets: sources.map((src) =>
        isContextFile(src) && (destText.endsWith("/") || sources.length > 1)
          ? posix.join(dest, posix.basename(src))
          : dest,
      ),
    });
  }
  return out;
}

describe("Dockerfile", () => {
  it("is multi-stage, every base pinned to an exact x.y.z version, the same base throughout", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const names = new Set(stages.map((s) => s.name));
    for (const stage of stages) {
      const image = fromImage(stage);
      if (names.has(image)) continue; // FROM an earlier stage
      expect(image, `stage ${stage.name}`).not.toMatch(/(^|:)latest(@|$)/);
      expect(image, `stage ${stage.name}`).toMatch(
        /^[a-z0-9./-]+:\d+\.\d+\.\d+(-[a-z0-9.-]+)?(@sha256:[0-9a-f]{64})?$/,
      );
    }
    // The runtime is the build's base: the LevelDB binding checked in prod-deps is the one run.
    expect(new Set(stages.map(fromImage)).size).toBe(1);
    expect(fromImage(final)).toMatch(/^node:\d+\.\d+\.\d+-bookworm-slim/);
  });

  it("runs the final stage as a numeric non-root user", () => {
    const user = lastOf(final, "USER");
    expect(user, "USER in the final stage").toBeDefined();
    const [uid, gid] = user!.args.split(":");
    expect(uid).toMatch(/^\d+$/);
    expect(Number(uid)).toBeGreaterThan(0);
    if (gid !== undefined) {
      expect(gid).toMatch(/^\d+$/);
      expect(Number(gid)).toBeGreaterThan(0);
    }
    // USER comes after every RUN: nothing at run time needs root.
    const lastRun = all(final, "RUN").at(-1);
    if (lastRun) expect(user!.line).toBeGreaterThan(lastRun.line);
  });

  it("exposes OTLP gRPC and HTTP, health_check and metrics", () => {
    const ports = all(final, "EXPOSE").flatMap((i) => i.args.split(/\s+/));
    expect(new Set(ports)).toEqual(new Set(["4317", "4318", "13133", "8888"]));
  });

  it("has a HEALTHCHECK that asks the health_check extension on 127.0.0.1:13133 with node", () => {
    const hc = lastOf(final, "HEALTHCHECK");
    expect(hc).toBeDefined();
    expect(hc!.json?.[0]).toBe("node"); // slim images have no curl
    const script = hc!.json!.join(" ");
    expect(script).toContain("127.0.0.1");
    expect(script).toContain("13133");
    expect(hc!.flags.timeout).toBeDefined();
  });

  it("starts `audit-agent run --config /etc/audit-agent/config.yaml`", () => {
    expect(lastOf(final, "ENTRYPOINT")!.json).toEqual(["audit-agent"]);
    expect(lastOf(final, "CMD")!.json).toEqual(["run", "--config", "/etc/audit-agent/config.yaml"]);
    expect(lastOf(final, "STOPSIGNAL")?.args ?? "SIGTERM").toBe("SIGTERM");
  });

  it("puts audit-agent on PATH as the package's bin, next to package.json and proto/", () => {
    const run = all(final, "RUN")
      .map((i) => i.args)
      .join(" && ");
    const link = /ln -s (\S+) (\S+)/.exec(run);
    expect(link, "a symlink made in the final stage").not.toBeNull();
    expect(link![2]).toBe("/usr/local/bin/audit-agent");
    const appDir = posix.dirname(posix.dirname(posix.dirname(posix.dirname(link![1]!))));
    expect(link![1]).toBe(posix.join(appDir, pkg.bin["audit-agent"]!));
    // packageRoot() walks up from dist/ to the directory holding package.json and proto/.
    const dests = copies(final).flatMap((c) => c.targets);
    expect(dests).toEqual(
      expect.arrayContaining([
        `${appDir}/dist`,
        `${appDir}/node_modules`,
        `${appDir}/package.json`,
        `${appDir}/proto`,
        `${appDir}/config`,
      ]),
    );
  });

  it("copies config/container.yaml to /etc/audit-agent/config.yaml", () => {
    expect(copies(final)).toContainEqual(
      expect.objectContaining({
        from: undefined,
        sources: ["config/container.yaml"],
        targets: ["/etc/audit-agent/config.yaml"],
      }),
    );
  });

  it("installs no dev dependency into the final stage", () => {
    const finalRuns = all(final, "RUN").map((i) => i.args);
    for (const run of finalRuns) expect(run).not.toMatch(/\b(npm|npx|yarn|pnpm)\b/);
    const nodeModules = copies(final).find((c) => c.dest.endsWith("/node_modules"));
    expect(nodeModules?.from, "node_modules comes from another stage").toBeDefined();
    const source = stages.find((s) => s.name === nodeModules!.from)!;
    const installs = all(source, "RUN").filter((i) => /\bnpm (ci|install|i)\b/.test(i.args));
    expect(installs.length).toBeGreaterThan(0);
    for (const i of installs) {
      expect(i.args).toContain("--omit=dev");
      expect(i.args).toContain("--ignore-scripts");
    }
    // Nothing else reaches the final stage's node_modules.
    expect(copies(final).filter((c) => c.dest.includes("node_modules"))).toHaveLength(1);
  });

  it("keeps data on a volume that is the working directory, so a read-only root works", () => {
    const volumes = all(final, "VOLUME").flatMap((i) => i.json ?? i.args.split(/\s+/));
    expect(volumes).toEqual(["/var/lib/audit-agent"]);
    expect(lastOf(final, "WORKDIR")!.args).toBe("/var/lib/audit-agent");
    const run = all(final, "RUN")
      .map((i) => i.args)
      .join(" ");
    const uid = lastOf(final, "USER")!.args.split(":")[0];
    expect(run).toMatch(
      new RegExp(`install -d -o ${uid} -g \\d+ -m 0?7[0-7]0 /var/lib/audit-agent`),
    );
  });

  it("labels the image with org.opencontainers.image.* matching package.json", () => {
    const args: Record<string, string | undefined> = { ...df.globalArgs };
    for (const a of all(final, "ARG")) {
      const m = /^(\w+)(?:=(.*))?$/.exec(a.args)!;
      args[m[1]!] = m[2] ?? df.globalArgs[m[1]!];
    }
    const labels = Object.fromEntries(
      all(final, "LABEL").flatMap((i) =>
        parsePairs(i.args).map(([k, v]: [string, string]) => [k, substitute(v, args)]),
      ),
    );
    expect(labels["org.opencontainers.image.title"]).toBe("otel-audit-agent");
    expect(labels["org.opencontainers.image.version"]).toBe(pkg.version);
    expect(labels["org.opencontainers.image.licenses"]).toBe(pkg.license);
    expect(labels["org.opencontainers.image.base.name"]).toBe(fromImage(final));
    expect(labels["org.opencontainers.image.description"]).toBeTruthy();
  });

  it("copies only files that exist and that .dockerignore lets through", () => {
    const ignore = dockerignore(read(".dockerignore"));
    const fromContext = stages.flatMap((s) =>
      copies(s)
        .filter((c) => c.from === undefined)
        .flatMap((c) => c.sources),
    );
    expect(fromContext).toEqual(expect.arrayContaining(["package-lock.json", "agent/", "proto/"]));
    for (const src of fromContext) {
      const path = src.replace(/\/$/, "");
      expect(existsSync(join(ROOT, path)), `${src} exists`).toBe(true);
      expect(ignore.excluded(path), `${src} is not excluded`).toBe(false);
    }
    expect(ignore.excluded("agent/cli/main.ts")).toBe(false);
    expect(ignore.excluded("proto/otlp_logs.proto")).toBe(false);
  });
});

describe(".dockerignore", () => {
  const ignore = dockerignore(read(".dockerignore"));

  it("keeps local state, build output and VCS data out of the context", () => {
    for (const path of [
      "node_modules",
      "node_modules/zod/package.json",
      "agent/node_modules/x/index.js",
      "dist",
      "dist/agent/cli/main.js",
      ".git",
      ".git/HEAD",
      "data/wal/CURRENT",
      "data/keys/signing.key",
      "test/unit/wal.test.ts",
      "bench/RESULTS.md",
      "profile.cpuprofile",
    ])
      expect(ignore.excluded(path), path).toBe(true);
  });

  it("follows Docker's matching rules", () => {
    const m = dockerignore("dist\n**/node_modules\n*.md\n!README.md\nsrc/*/gen\n");
    expect(m.excluded("dist/a.js")).toBe(true);
    expect(m.excluded("agent/dist/a.js")).toBe(false); // anchored at the root
    expect(m.excluded("a/b/node_modules/c")).toBe(true);
    expect(m.excluded("CHANGES.md")).toBe(true);
    expect(m.excluded("docs/x.md")).toBe(false); // * stays within a segment
    expect(m.excluded("README.md")).toBe(false); // ! re-includes, last match wins
    expect(m.excluded("src/a/gen/x.ts")).toBe(true);
    expect(m.excluded("src/a/b/gen")).toBe(false);
  });
});

describe("config/container.yaml", () => {
  const config = parseConfig(read("config/container.yaml"), "config/container.yaml", {});

  it("validates, with every path on the data volume and every listener on loopback", () => {
    expect(config.warnings).toEqual([]);
    expect(config.wal.directory).toBe("/var/lib/audit-agent/wal");
    expect(config.signing.key_file).toBe("/var/lib/audit-agent/keys/signing.key");
    expect(
      config.exporters.map((e) => [e.id, (e.config as { directory: string }).directory]),
    ).toEqual([["file", "/var/lib/audit-agent/out"]]);
    const protocols = (
      config.receivers[0]!.config as { protocols: Record<string, { endpoint: string }> }
    ).protocols;
    expect(protocols.grpc!.endpoint).toBe("127.0.0.1:4317");
    expect(protocols.http!.endpoint).toBe("127.0.0.1:4318");
    expect(config.metricsAddress).toBe("127.0.0.1:8888");
  });

  it("serves the health the image's HEALTHCHECK asks for", () => {
    expect(config.healthCheck).not.toBeNull();
    expect(config.healthCheck!.endpoint).toBe("127.0.0.1:13133");
    expect(config.healthCheck!.path).toBe("/");
  });

  it("follows AUDIT_AGENT_DATA_DIR and the AUDIT_AGENT_*_ENDPOINT variables", () => {
    const moved = parseConfig(read("config/container.yaml"), "config/container.yaml", {
      AUDIT_AGENT_DATA_DIR: "/data",
      AUDIT_AGENT_HTTP_ENDPOINT: "0.0.0.0:4318",
      AUDIT_AGENT_HEALTH_ENDPOINT: "0.0.0.0:13133",
    });
    expect(moved.wal.directory).toBe("/data/wal");
    expect(moved.signing.key_file).toBe("/data/keys/signing.key");
    expect(moved.healthCheck!.endpoint).toBe("0.0.0.0:13133");
  });
});

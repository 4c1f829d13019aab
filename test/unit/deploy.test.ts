import { readdirSync, readFileSync } from "node:fs";
import { join, posix, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { splitEndpoint } from "../../agent/common/config-schema.js";
import { type AgentConfig, parseConfig } from "../../agent/config/load.js";
import { unsafeSettings } from "../../agent/config/safety.js";
import type { FileExporterConfig } from "../../agent/exporters/file/config.js";
import { cosignerKeyOf, parseCosignerKey } from "../../agent/integrity/cosignature.js";
import { writeKeyPair } from "../../agent/integrity/key-files.js";
import { generateSigningKey } from "../../agent/integrity/signing.js";
import type { OtlpReceiverConfig } from "../../agent/receivers/otlp/config.js";
import { witnessingSchema } from "../../agent/sealing/witness-config.js";
import { startAgent } from "../../agent/service/agent.js";
import { createLogger } from "../../agent/telemetry/logger.js";
import { parseWitnessConfig, type WitnessConfig } from "../../agent/witness/config.js";
import { type RunningWitness, startWitness } from "../../agent/witness/start.js";
import { makeTempDir, postAuditRecords, ROOT, waitFor } from "../helpers/agent.js";

/**
 * The deployment examples under deploy/ (Kubernetes manifests, Grafana dashboard, Prometheus
 * rules) against the agent itself: the ConfigMap's config loads, the pod wires that config's
 * paths and ports to its volumes, probes and env, the witness's manifests wire its config the
 * same way and the agents reach it, and every metric the dashboard and the alerts query is
 * one the running agent (or witness) exports.
 */

const DEPLOY = join(ROOT, "deploy");

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

const files = walk(DEPLOY).map((f) => relative(DEPLOY, f).split("\\").join("/"));
const yamlFiles = files.filter((f) => /\.ya?ml$/.test(f));

/** Every document of a YAML file, failing on any parse error (duplicate keys included). */
function yamlDocs(file: string): unknown[] {
  const docs = YAML.parseAllDocuments(readFileSync(join(DEPLOY, file), "utf8"), {
    uniqueKeys: true,
  });
  if (!Array.isArray(docs)) return [];
  return docs.map((d, i) => {
    if (d.errors.length > 0)
      throw new Error(`${file} document ${i}: ${d.errors.map((e) => e.message).join("; ")}`);
    return d.toJS() as unknown;
  });
}

// ---- minimal Kubernetes shapes ----

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Probe {
  httpGet?: { path: string; port: number | string };
  tcpSocket?: { port: number | string };
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  fsGroup?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}
interface Resources {
  requests?: Record<string, string | number>;
  limits?: Record<string, string | number>;
}
interface Container {
  name: string;
  image: string;
  restartPolicy?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: Array<{ name?: string; containerPort: number }>;
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: Resources;
  securityContext?: SecurityContext;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface Volume {
  name: string;
  configMap?: { name: string; items?: Array<{ key: string; path: string }> };
  secret?: {
    secretName: string;
    defaultMode?: number;
    items?: Array<{ key: string; path: string }>;
  };
  emptyDir?: { medium?: string; sizeLimit?: string };
  persistentVolumeClaim?: { claimName: string };
}
interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
  securityContext?: SecurityContext;
  terminationGracePeriodSeconds?: number;
}

function objects(file: string): K8sObject[] {
  return yamlDocs(file).filter((d): d is K8sObject => !!d && typeof d === "object" && "kind" in d);
}

function only(file: string, kind: string): K8sObject {
  const found = objects(file).filter((o) => o.kind === kind);
  expect(found, `${file}: one ${kind}`).toHaveLength(1);
  return found[0]!;
}

function podSpecOf(o: K8sObject): PodSpec {
  if (o.kind === "Pod") return o.spec as unknown as PodSpec;
  const template = (o.spec as { template?: { spec?: PodSpec } } | undefined)?.template;
  if (!template?.spec) throw new Error(`${o.kind} ${o.metadata.name} has no pod template`);
  return template.spec;
}

/** Kubernetes quantities ("250m", "1", "192Mi", "4Gi") as numbers, for comparing. */
function quantity(q: string | number): number {
  if (typeof q === "number") return q;
  const m = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q);
  if (!m) throw new Error(`not a quantity: ${q}`);
  const scale: Record<string, number> = {
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
  };
  return Number(m[1]) * (m[2] ? (scale[m[2]] as number) : 1);
}

/** The labels of a workload's pods. */
function podLabels(o: K8sObject): Record<string, string> {
  if (o.kind === "Pod") return o.metadata.labels ?? {};
  return (o.spec as { template: { metadata: { labels: Record<string, string> } } }).template
    .metadata.labels;
}

/**
 * The PodMonitor in `file` selects `o`'s pods (in its namespace) and scrapes `c`'s port
 * `port` by name, with the job label the rules select.
 */
function expectScraped(file: string, o: K8sObject, c: Container, port: number, job: string) {
  const declared = c.ports?.find((p) => p.containerPort === port);
  expect(declared?.name).toBeDefined();
  const monitor = only(file, "PodMonitor");
  expect(monitor.metadata.namespace).toBe(o.metadata.namespace);
  const spec = monitor.spec as {
    selector: { matchLabels: Record<string, string> };
    podMetricsEndpoints: Array<{
      port: string;
      relabelings?: Array<{ targetLabel?: string; replacement?: string }>;
    }>;
  };
  const endpoint = spec.podMetricsEndpoints.find((e) => e.port === declared!.name);
  expect(endpoint, `${file} scrapes port ${declared!.name}`).toBeDefined();
  const jobLabel = endpoint!.relabelings?.find((r) => r.targetLabel === "job");
  expect(jobLabel?.replacement).toBe(job);
  expect(podLabels(o)).toMatchObject(spec.selector.matchLabels);
}

/** Does a label selector's matchLabels select these labels? */
function matches(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Is `path` the directory `dir` or inside it? */
function under(path: string, dir: string): boolean {
  const rel = posix.relative(dir, path);
  return rel === "" || (!rel.startsWith("..") && !posix.isAbsolute(rel));
}

// ---- the example, loaded once ----

const podFile = "kubernetes/pod.yaml";
const workload = objects(podFile).find((o) =>
  ["Pod", "Deployment", "StatefulSet", "DaemonSet"].includes(o.kind),
)!;
const pod = podSpecOf(workload);
const configMap = only("kubernetes/configmap.yaml", "ConfigMap");
const secret = only("kubernetes/secret.example.yaml", "Secret");
const configText = configMap.data?.["config.yaml"] ?? "";

const agent = (pod.initContainers ?? []).find(
  (c) => c.restartPolicy === "Always" && /otel-audit-agent/.test(c.image),
)!;

/**
 * The agent container's environment as the kubelet would set it: plain values as written,
 * the pod's Downward API fields as a Deployment's pod would have them.
 */
const DOWNWARD_SAMPLES: Record<string, string> = {
  "metadata.name": `${workload.metadata.name}-7c9d8b5f4-x2x7k`,
  "metadata.uid": "0f6c8a52-3d4e-4b7a-9c1d-2e5f6a7b8c9d",
  "metadata.namespace": "payments",
  "spec.nodeName": "node-eu1-a",
};
const agentEnv: Record<string, string> = Object.fromEntries(
  (agent.env ?? []).map((e) => {
    if (e.value !== undefined) return [e.name, e.value];
    const sample = DOWNWARD_SAMPLES[e.valueFrom?.fieldRef?.fieldPath ?? ""];
    if (sample !== undefined) return [e.name, sample];
    throw new Error(`agent env ${e.name}: no sample value for ${JSON.stringify(e.valueFrom)}`);
  }),
);
const config: AgentConfig = parseConfig(configText, "configmap.yaml", agentEnv);
const app = pod.containers.find((c) =>
  (c.env ?? []).some((e) => e.name === "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
)!;
const allContainers = [...(pod.initContainers ?? []), ...pod.containers];

function env(c: Container): Record<string, string | undefined> {
  return Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
}

function volume(name: string, spec: PodSpec = pod): Volume {
  const v = (spec.volumes ?? []).find((x) => x.name === name);
  if (!v) throw new Error(`no volume ${name}`);
  return v;
}

/** The mount of `c` that holds `path` (the deepest one). */
function mountFor(c: Container, path: string) {
  return (c.volumeMounts ?? [])
    .filter((m) => under(path, m.mountPath))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
}

function argValue(c: Container, flag: string): string | undefined {
  const args = [...(c.command ?? []), ...(c.args ?? [])];
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

function probePort(c: Container, p: Probe | undefined): number | undefined {
  const port = p?.httpGet?.port ?? p?.tcpSocket?.port;
  if (typeof port === "number") return port;
  return c.ports?.find((x) => x.name === port)?.containerPort;
}

/** Pod-level settings with the container's own on top, as the kubelet applies them. */
function effectiveSecurity(c: Container, spec: PodSpec = pod): SecurityContext {
  return { ...spec.securityContext, ...c.securityContext };
}

/** Runs as the image's user (10001), read-only, without privileges ("restricted" PSS). */
function expectRestricted(c: Container, spec: PodSpec = pod): void {
  const s = effectiveSecurity(c, spec);
  expect(s.runAsNonRoot, c.name).toBe(true);
  expect(s.runAsUser, c.name).toBe(10001);
  expect(s.readOnlyRootFilesystem, c.name).toBe(true);
  expect(s.allowPrivilegeEscalation, c.name).toBe(false);
  expect(s.capabilities?.drop, c.name).toContain("ALL");
  expect(s.capabilities?.add ?? [], c.name).toEqual([]);
  expect(s.seccompProfile?.type, c.name).toBe("RuntimeDefault");
}

/**
 * A private key as the agent and the witness need it (they refuse a key group or others can
 * read): the Secret `secretName` is mounted read-only, mode 0400, only into a plain init
 * container that runs before `reader` and copies its item `item` with mode 0400 to `keyFile`,
 * on an in-memory volume that `reader` mounts read-only. fsGroup 10001 lets the copy read it.
 */
function expectKeyCopied(
  spec: PodSpec,
  reader: Container,
  keyFile: string,
  secretName: string,
  item: string,
): void {
  const secretVolumes = (spec.volumes ?? []).filter((v) => v.secret);
  expect(secretVolumes).toHaveLength(1);
  const sv = secretVolumes[0]!;
  expect(sv.secret!.secretName).toBe(secretName);
  expect(sv.secret!.defaultMode).toBe(0o400);
  expect(sv.secret!.items?.map((i) => i.key) ?? [item]).toContain(item);
  const all = [...(spec.initContainers ?? []), ...spec.containers];
  const mounts = all.flatMap((c) =>
    (c.volumeMounts ?? []).filter((m) => m.name === sv.name).map((m) => ({ c, m })),
  );
  expect(mounts.length).toBeGreaterThan(0);
  for (const { m } of mounts) expect(m.readOnly).toBe(true);
  expect(spec.securityContext?.fsGroup).toBe(10001);
  const keyMount = mountFor(reader, keyFile)!;
  expect(keyMount, `a mount holding ${keyFile}`).toBeDefined();
  expect(keyMount.readOnly).toBe(true);
  expect(volume(keyMount.name, spec).emptyDir?.medium).toBe("Memory");
  expect(mounts.map(({ c }) => c)).not.toContain(reader);
  const installer = mounts[0]!.c;
  expect(installer.restartPolicy).toBeUndefined();
  const inits = spec.initContainers ?? [];
  expect(inits).toContain(installer);
  if (inits.includes(reader)) expect(inits.indexOf(installer)).toBeLessThan(inits.indexOf(reader));
  const secretMount = installer.volumeMounts!.find((m) => m.name === sv.name)!;
  const installerKeyMount = installer.volumeMounts!.find((m) => m.name === keyMount.name)!;
  expect(installerKeyMount.mountPath).toBe(keyMount.mountPath);
  const cmd = [...(installer.command ?? []), ...(installer.args ?? [])];
  expect(cmd).toContain("0400");
  expect(cmd).toContain(posix.join(secretMount.mountPath, item));
  expect(cmd).toContain(keyFile);
  expectRestricted(installer, spec);
}

describe("deploy/: every file parses", () => {
  it("has the expected files", () => {
    for (const f of [
      "kubernetes/pod.yaml",
      "kubernetes/configmap.yaml",
      "kubernetes/secret.example.yaml",
      "kubernetes/witness.yaml",
      "kubernetes/witness-secret.example.yaml",
      "kubernetes/README.md",
      "grafana/audit-agent-dashboard.json",
      "prometheus/audit-agent-rules.yaml",
      "prometheus/witness-podmonitor.yaml",
    ])
      expect(files).toContain(f);
  });

  it.each(yamlFiles)("%s is YAML whose documents are Kubernetes objects or a rule file", (f) => {
    const docs = yamlDocs(f).filter((d) => d !== null);
    expect(docs.length).toBeGreaterThan(0);
    for (const d of docs) {
      expect(typeof d).toBe("object");
      if ("groups" in (d as object)) continue; // a Prometheus rule file
      const o = d as K8sObject;
      expect(o.apiVersion, f).toMatch(/^[a-z0-9.]*\/?v\d/);
      expect(o.kind, f).toMatch(/^[A-Z]/);
      expect(o.metadata?.name, f).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });

  it.each(files.filter((f) => f.endsWith(".json")))("%s is JSON", (f) => {
    expect(() => JSON.parse(readFileSync(join(DEPLOY, f), "utf8"))).not.toThrow();
  });
});

describe("deploy/kubernetes: the pod", () => {
  it("runs the agent as a native sidecar: an init container with restartPolicy Always", () => {
    expect(
      agent,
      "an initContainer with restartPolicy: Always and the agent's image",
    ).toBeDefined();
    expect(agent.image).toMatch(/otel-audit-agent:\S+/);
    expect(pod.containers.map((c) => c.name)).not.toContain(agent.name);
    // Plain init containers (the key copy) run before it; the agent is ready before the app.
    const inits = pod.initContainers ?? [];
    const at = inits.indexOf(agent);
    for (const c of inits.slice(at + 1)) expect(c.restartPolicy, c.name).toBe("Always");
  });

  it("points the app's OpenTelemetry SDK at the agent's receivers over loopback", () => {
    expect(app, "an app container with OTEL_EXPORTER_OTLP_LOGS_ENDPOINT").toBeDefined();
    expect(app).not.toBe(agent);
    const e = env(app);
    expect(e.OTEL_LOGS_EXPORTER).toBe("otlp");
    expect(["http/protobuf", "http/json", "grpc"]).toContain(e.OTEL_EXPORTER_OTLP_LOGS_PROTOCOL);
    const url = new URL(e.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT!);
    expect(["127.0.0.1", "localhost"]).toContain(url.hostname);
    const otlp = config.receivers.find((r) => r.factory.type === "otlp")!
      .config as OtlpReceiverConfig;
    if (e.OTEL_EXPORTER_OTLP_LOGS_PROTOCOL === "grpc") {
      expect(Number(url.port)).toBe(splitEndpoint(otlp.protocols.grpc!.endpoint).port);
    } else {
      expect(Number(url.port)).toBe(splitEndpoint(otlp.protocols.http!.endpoint).port);
      expect(url.pathname).toBe(otlp.protocols.http!.logs_url_path);
    }
  });

  it("stamps each record's source with the pod, namespace and node from the Downward API", () => {
    expect(config.source?.attributes).toEqual({
      "k8s.pod.name": DOWNWARD_SAMPLES["metadata.name"],
      "k8s.pod.uid": DOWNWARD_SAMPLES["metadata.uid"],
      "k8s.namespace.name": DOWNWARD_SAMPLES["metadata.namespace"],
      "k8s.node.name": DOWNWARD_SAMPLES["spec.nodeName"],
    });
    // Over the pod's loopback the peer is always 127.0.0.1: not worth a member per record.
    expect(config.source?.client_address).toBe(false);
    expect(config.warnings.join("\n")).not.toMatch(/POD_|NODE_NAME/);
  });

  it("mounts the ConfigMap read-only where --config reads it", () => {
    const configPath = argValue(agent, "--config")!;
    expect(configPath).toBe("/etc/audit-agent/config.yaml");
    const mount = mountFor(agent, configPath)!;
    expect(mount.readOnly).toBe(true);
    const v = volume(mount.name);
    expect(v.configMap?.name).toBe(configMap.metadata.name);
    const file = posix.relative(mount.mountPath, configPath);
    const item = v.configMap?.items?.find((i) => i.path === file);
    expect(item?.key ?? file).toBe("config.yaml");
  });

  it("mounts the signing key Secret read-only with mode 0400, copied to the agent's key_file", () => {
    expect(config.signing.key_env).toBeUndefined();
    expect(config.signing.generate_if_missing).toBe(false);
    // The agent refuses keys group or others can read, and fsGroup turns 0400 into 0440: a
    // plain init container copies the key, as the agent's user, with mode 0400.
    expectKeyCopied(pod, agent, config.signing.key_file, secret.metadata.name, "signing.key");
  });

  it("keeps the WAL and the file exporter's output on the writable data volume", () => {
    const wal = config.wal.directory;
    const file = config.exporters.find((e) => e.factory.type === "file")!
      .config as FileExporterConfig;
    const mount = mountFor(agent, wal)!;
    expect(mount.mountPath).toBe("/var/lib/audit-agent");
    expect(mount.readOnly).not.toBe(true);
    expect(mountFor(agent, file.directory)).toBe(mount);
    const v = volume(mount.name);
    expect(v.emptyDir ?? v.persistentVolumeClaim, "an emptyDir or a PVC").toBeDefined();
    if (v.emptyDir) {
      expect(v.emptyDir.medium).toBeUndefined(); // on disk, not RAM
      const walMax = config.wal.max_size_mib * 2 ** 20;
      expect(quantity(v.emptyDir.sizeLimit!)).toBeGreaterThan(2 * walMax);
    }
  });

  it("probes /livez and /readyz on the health_check port, which listens beyond loopback", () => {
    expect(config.healthCheck).not.toBeNull();
    const { host, port } = splitEndpoint(config.healthCheck!.endpoint);
    expect(port).toBe(13133);
    expect(host).toBe("0.0.0.0"); // kubelet probes come from the node, to the pod IP
    expect(agent.livenessProbe?.httpGet?.path).toBe("/livez");
    expect(agent.readinessProbe?.httpGet?.path).toBe("/readyz");
    expect(agent.startupProbe?.httpGet?.path).toBe("/livez");
    for (const p of [agent.livenessProbe, agent.readinessProbe, agent.startupProbe])
      expect(probePort(agent, p)).toBe(13133);
  });

  it("exposes the metrics port that the PodMonitor scrapes", () => {
    const { host, port } = splitEndpoint(config.metricsAddress!);
    expect(port).toBe(8888);
    expect(host).toBe("0.0.0.0");
    expectScraped("prometheus/podmonitor.yaml", workload, agent, port, "audit-agent");
  });

  it("sets resource requests and limits on every container (requests ≤ limits)", () => {
    for (const c of allContainers) {
      for (const r of ["cpu", "memory"]) {
        const req = c.resources?.requests?.[r];
        const lim = c.resources?.limits?.[r];
        expect(req, `${c.name} requests.${r}`).toBeDefined();
        expect(lim, `${c.name} limits.${r}`).toBeDefined();
        expect(quantity(req!)).toBeLessThanOrEqual(quantity(lim!));
      }
    }
    // bench/RESULTS.md: the agent's peak RSS when saturated is 363 MiB; idle 81 MiB.
    expect(quantity(agent.resources!.limits!.memory!)).toBeGreaterThanOrEqual(400 * 2 ** 20);
    expect(quantity(agent.resources!.requests!.memory!)).toBeGreaterThanOrEqual(96 * 2 ** 20);
  });

  it("gives the pod time for the agent's drain: terminationGracePeriodSeconds ≥ --grace + 5", () => {
    const grace = Number(argValue(agent, "--grace") ?? "30");
    expect(grace).toBe(30);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(grace + 5);
  });

  it("runs the agent (and the key copy) non-root, read-only, without privileges", () => {
    const installer = (pod.initContainers ?? []).find((c) => c !== agent)!;
    for (const c of [agent, installer]) expectRestricted(c);
    // The app too meets the "restricted" Pod Security Standard.
    const s = effectiveSecurity(app);
    expect(s.runAsNonRoot).toBe(true);
    expect(s.allowPrivilegeEscalation).toBe(false);
    expect(s.capabilities?.drop).toContain("ALL");
    expect(s.seccompProfile?.type).toBe("RuntimeDefault");
  });
});

describe("deploy/kubernetes: the ConfigMap's agent config", () => {
  it("loads with parseConfig and no warnings", () => {
    expect(config.warnings).toEqual([]);
    expect(config.exporters.map((e) => e.id)).toContain("file");
    expect(config.verification).not.toBeNull();
  });

  it("keeps the receivers on loopback; only health and metrics listen on all interfaces", () => {
    const otlp = config.receivers[0]!.config as OtlpReceiverConfig;
    expect(otlp.protocols.grpc?.endpoint).toBe("127.0.0.1:4317");
    expect(otlp.protocols.http?.endpoint).toBe("127.0.0.1:4318");
    const unsafe = unsafeSettings(config);
    expect(unsafe).toHaveLength(2);
    expect(unsafe.some((w) => w.startsWith("service.telemetry.metrics.address 0.0.0.0:8888"))).toBe(
      true,
    );
    expect(unsafe.some((w) => w.startsWith("extensions.health_check.endpoint 0.0.0.0:13133"))).toBe(
      true,
    );
  });

  it("keeps all state under /var/lib/audit-agent", () => {
    expect(config.wal.directory).toBe("/var/lib/audit-agent/wal");
    const file = config.exporters.find((e) => e.id === "file")!.config as FileExporterConfig;
    expect(file.directory).toBe("/var/lib/audit-agent/out");
  });

  it("has commented loki, s3 and elasticsearch examples that validate once uncommented", () => {
    const lines = configText.split("\n");
    const out: string[] = [];
    const found: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      const m = /^ {2}# (loki|s3|elasticsearch):$/.exec(lines[i]!);
      if (!m) {
        out.push(lines[i]!);
        continue;
      }
      found.push(m[1]!);
      out.push(`  ${m[1]}:`);
      while (i + 1 < lines.length && lines[i + 1]!.startsWith("  #   "))
        out.push(`  ${lines[++i]!.slice(4)}`);
    }
    expect(found.sort()).toEqual(["elasticsearch", "loki", "s3"]);
    const text = out
      .join("\n")
      .replace("exporters: [file]", "exporters: [file, loki, s3, elasticsearch]");
    const full = parseConfig(text, "configmap-full.yaml", {
      ...agentEnv,
      LOKI_TOKEN: "token",
      ES_API_KEY: Buffer.from("id:key").toString("base64"),
    });
    expect(full.warnings).toEqual([]);
    expect(full.exporters.map((e) => e.factory.type).sort()).toEqual([
      "elasticsearch",
      "file",
      "loki",
      "s3",
    ]);
  });
});

describe("deploy/kubernetes: the example Secret", () => {
  it("has the shape the pod mounts, and no key", () => {
    expect((secret as K8sObject & { type?: string }).type).toBe("Opaque");
    const value = secret.stringData?.["signing.key"] ?? secret.data?.["signing.key"];
    expect(value).toBeDefined();
    expect(value).not.toMatch(/PRIVATE KEY/);
  });
});

// ---- the witness ----

const witnessFile = "kubernetes/witness.yaml";
const witnessNamespace = only(witnessFile, "Namespace");
const witnessDeployment = only(witnessFile, "Deployment");
const witnessPod = podSpecOf(witnessDeployment);
const witnessConfigMap = only(witnessFile, "ConfigMap");
const witnessService = only(witnessFile, "Service");
const witnessClaim = only(witnessFile, "PersistentVolumeClaim");
const witnessPolicy = only(witnessFile, "NetworkPolicy");
const witnessSecret = only("kubernetes/witness-secret.example.yaml", "Secret");
const witnessContainer = witnessPod.containers.find((c) => c.args?.[0] === "witness")!;
const witnessConfig: WitnessConfig = parseWitnessConfig(
  witnessConfigMap.data?.["witness.yaml"] ?? "",
  "witness.yaml",
  {},
);

interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
}
interface PolicyPeer {
  namespaceSelector?: { matchLabels?: Record<string, string> };
  podSelector?: { matchLabels?: Record<string, string> };
}
interface PolicyRule {
  from?: PolicyPeer[];
  ports?: Array<{ protocol?: string; port: number | string }>;
}

describe("deploy/kubernetes: the witness", () => {
  it("has its own namespace, apart from the application's, holding all its objects", () => {
    const ns = witnessNamespace.metadata.name;
    expect(ns).toBe("audit-witness");
    expect(ns).not.toBe(workload.metadata.namespace ?? "default");
    expect(witnessNamespace.metadata.labels?.["pod-security.kubernetes.io/enforce"]).toBe(
      "restricted",
    );
    for (const o of [...objects(witnessFile), witnessSecret])
      if (o.kind !== "Namespace")
        expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(ns);
  });

  it("runs one witness, replaced with Recreate, its state on the PersistentVolumeClaim", () => {
    const spec = witnessDeployment.spec as { replicas: number; strategy: { type: string } };
    expect(spec.replicas).toBe(1);
    expect(spec.strategy.type).toBe("Recreate");
    expect(witnessContainer.image).toMatch(/otel-audit-agent:\S+/);
    const mount = mountFor(witnessContainer, witnessConfig.stateDir)!;
    expect(mount, `a mount holding ${witnessConfig.stateDir}`).toBeDefined();
    expect(mount.readOnly).not.toBe(true);
    // A directory inside the volume: the witness makes it 0700, its own.
    expect(witnessConfig.stateDir).not.toBe(mount.mountPath);
    const v = volume(mount.name, witnessPod);
    expect(v.persistentVolumeClaim?.claimName).toBe(witnessClaim.metadata.name);
    const claim = witnessClaim.spec as {
      accessModes: string[];
      resources: { requests: { storage: string } };
    };
    expect(claim.accessModes).toEqual(["ReadWriteOncePod"]);
    expect(quantity(claim.resources.requests.storage)).toBeGreaterThan(0);
  });

  it("reads the ConfigMap's config, which parses with parseWitnessConfig and listens for the cluster", () => {
    expect(witnessConfig.warnings).toEqual([]);
    const configPath = argValue(witnessContainer, "--config")!;
    const mount = mountFor(witnessContainer, configPath)!;
    expect(mount.readOnly).toBe(true);
    const v = volume(mount.name, witnessPod);
    expect(v.configMap?.name).toBe(witnessConfigMap.metadata.name);
    const item = v.configMap?.items?.find(
      (i) => i.path === posix.relative(mount.mountPath, configPath),
    );
    expect(item?.key).toBe("witness.yaml");
    const { host, port } = splitEndpoint(witnessConfig.listen);
    expect(host).toBe("0.0.0.0");
    expect(witnessContainer.ports?.find((p) => p.name === "witness")?.containerPort).toBe(port);
    expect(witnessConfig.logs.length).toBeGreaterThan(0);
  });

  it("copies its key from the Secret with mode 0400 (it refuses a group-readable key)", () => {
    expectKeyCopied(
      witnessPod,
      witnessContainer,
      witnessConfig.keyFile,
      witnessSecret.metadata.name,
      "witness.key",
    );
    const value = witnessSecret.stringData?.["witness.key"];
    expect(value).toBeDefined();
    expect(value).not.toMatch(/PRIVATE KEY/);
  });

  it("is probed without being restarted over a refused fork: /healthz for readiness only", () => {
    const port = splitEndpoint(witnessConfig.listen).port;
    expect(witnessContainer.readinessProbe?.httpGet?.path).toBe("/healthz");
    for (const p of [witnessContainer.livenessProbe, witnessContainer.startupProbe]) {
      expect(p?.httpGet?.path).not.toBe("/healthz");
      expect(p?.tcpSocket).toBeDefined();
    }
    for (const p of [
      witnessContainer.livenessProbe,
      witnessContainer.readinessProbe,
      witnessContainer.startupProbe,
    ])
      expect(probePort(witnessContainer, p)).toBe(port);
  });

  it("runs non-root, read-only, without privileges, with resources set", () => {
    for (const c of [...(witnessPod.initContainers ?? []), ...witnessPod.containers]) {
      expectRestricted(c, witnessPod);
      for (const r of ["cpu", "memory"]) {
        const req = c.resources?.requests?.[r];
        const lim = c.resources?.limits?.[r];
        expect(quantity(req!), `${c.name} ${r}`).toBeLessThanOrEqual(quantity(lim!));
      }
    }
  });

  it("is served by a Service that keeps routing while /healthz reports an alarm", () => {
    const spec = witnessService.spec as {
      selector: Record<string, string>;
      publishNotReadyAddresses?: boolean;
      ports: ServicePort[];
    };
    expect(podLabels(witnessDeployment)).toMatchObject(spec.selector);
    expect(spec.publishNotReadyAddresses).toBe(true);
    const port = splitEndpoint(witnessConfig.listen).port;
    expect(spec.ports).toHaveLength(1);
    expect(spec.ports[0]!.port).toBe(port);
    expect(probePort(witnessContainer, { tcpSocket: { port: spec.ports[0]!.targetPort! } })).toBe(
      port,
    );
  });

  it("takes connections on its port only, from the agents' pods among others, and makes none", () => {
    const spec = witnessPolicy.spec as {
      podSelector: { matchLabels: Record<string, string> };
      policyTypes: string[];
      ingress: PolicyRule[];
      egress: unknown[];
    };
    expect(podLabels(witnessDeployment)).toMatchObject(spec.podSelector.matchLabels);
    expect(spec.policyTypes.sort()).toEqual(["Egress", "Ingress"]);
    expect(spec.egress).toEqual([]);
    const port = splitEndpoint(witnessConfig.listen).port;
    for (const rule of spec.ingress) {
      expect(rule.ports).toEqual([{ protocol: "TCP", port }]);
      expect(rule.from?.length).toBeGreaterThan(0);
      for (const peer of rule.from!)
        expect(
          Object.keys(peer.podSelector?.matchLabels ?? {}).length,
          "a pod selector",
        ).toBeGreaterThan(0);
    }
    const peers = spec.ingress.flatMap((r) => r.from ?? []);
    expect(
      peers.some(
        (p) =>
          p.podSelector?.matchLabels && matches(podLabels(workload), p.podSelector.matchLabels),
      ),
      "the agents' pods may connect",
    ).toBe(true);
  });

  it("is the witness the agents' config lists, with an origin it witnesses", () => {
    expect(config.signing.witnesses).toHaveLength(1);
    const w = config.signing.witnesses[0]!;
    const url = new URL(w.url);
    expect(url.protocol).toBe("http:");
    expect(url.hostname).toMatch(
      new RegExp(
        `^${witnessService.metadata.name}\\.${witnessNamespace.metadata.name}\\.svc(\\.cluster\\.local)?$`,
      ),
    );
    const ports = (witnessService.spec as { ports: ServicePort[] }).ports;
    expect(Number(url.port)).toBe(ports[0]!.port);
    expect(() => parseCosignerKey(w.key)).not.toThrow();
    expect(config.signing.witness_quorum ?? 1).toBeLessThanOrEqual(config.signing.witnesses.length);
    // One origin per pod (each pod's agent has its own chain), all under what the witness lists.
    const origin = config.signing.origin!;
    expect(configText).toMatch(/origin: .*\$\{env:POD_NAME\}/);
    expect(origin).toContain(agentEnv.POD_NAME);
    expect(
      witnessConfig.logs.some((l) =>
        l.origin !== undefined ? l.origin === origin : origin.startsWith(l.originPrefix!),
      ),
      `a log of the witness's config covers ${origin}`,
    ).toBe(true);
  });

  it("is scraped by its PodMonitor as job audit-witness", () => {
    const port = splitEndpoint(witnessConfig.listen).port;
    expectScraped(
      "prometheus/witness-podmonitor.yaml",
      witnessDeployment,
      witnessContainer,
      port,
      "audit-witness",
    );
  });
});

// ---- PromQL, as far as this test needs it ----

/** Replaces string literals with "", so brackets and names inside them are ignored. */
function withoutStrings(expr: string): string {
  return expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
}

function balanced(expr: string): boolean {
  const pairs: Record<string, string> = { ")": "(", "]": "[", "}": "{" };
  const stack: string[] = [];
  for (const ch of withoutStrings(expr)) {
    if ("([{".includes(ch)) stack.push(ch);
    else if (ch in pairs && stack.pop() !== pairs[ch]) return false;
  }
  return stack.length === 0;
}

const PROMQL_KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "inf",
  "nan",
]);

/** Metric names an expression selects (function and aggregation names excluded). */
function metricNames(expr: string): string[] {
  const s = withoutStrings(expr)
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\boffset\s+\S+/g, " ")
    .replace(/\$\{?\w+\}?/g, " "); // Grafana variables
  const names = new Set<string>();
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = s.slice((m.index ?? 0) + m[0].length);
    const before = s[(m.index ?? 0) - 1] ?? " ";
    if (/[0-9.]/.test(before)) continue; // a number's exponent or unit
    if (/^\s*\(/.test(after)) continue; // a function or aggregation
    if (PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

describe("the PromQL helpers of this test", () => {
  it("find metric names and balance brackets", () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (pod, le) (rate(audit_agent_wal_fsync_seconds_bucket{job=~"$job", x="a(b"}[$__rate_interval])))',
      ),
    ).toEqual(["audit_agent_wal_fsync_seconds_bucket"]);
    expect(
      metricNames(
        'count(a_b{x="1"} == 0) or vector(0) unless on (pod) c offset 10m and sum without (result) (increase(d[1h])) > 1e3',
      ).sort(),
    ).toEqual(["a_b", "c", "d"]);
    expect(balanced('sum(rate(x{a="("}[5m]))')).toBe(true);
    expect(balanced("sum(rate(x[5m])")).toBe(false);
    expect(balanced("sum(rate(x[5m)))")).toBe(false);
  });
});

// ---- Grafana dashboard ----

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  type: string;
  id: number;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
  fieldConfig?: {
    defaults?: { thresholds?: { steps: Array<{ color: string; value: number | null }> } };
    overrides?: Array<{
      matcher: { id: string; options: string };
      properties: Array<{ id: string; value: unknown }>;
    }>;
  };
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  templating: {
    list: Array<{
      name: string;
      type: string;
      query?: string | { query: string };
      datasource?: { uid?: string };
    }>;
  };
  panels: Panel[];
}

const dashboard = JSON.parse(
  readFileSync(join(DEPLOY, "grafana/audit-agent-dashboard.json"), "utf8"),
) as Dashboard;

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

const dashboardPanels = allPanels(dashboard.panels).filter((p) => p.type !== "row");
const dashboardExprs = dashboardPanels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr ?? "" })),
);
/** Queries of the witness's own metrics select its job, through $witness_job. */
const queriesWitness = (expr: string) => expr.includes("$witness_job");
const variableExprs = dashboard.templating.list
  .filter((v) => v.type === "query")
  .map((v) => {
    const q = typeof v.query === "string" ? v.query : (v.query?.query ?? "");
    // label_values(<selector>, <label>): the selector is PromQL.
    const m = /^label_values\((.*),\s*\w+\)$/.exec(q);
    return { where: `variable $${v.name}`, expr: m ? m[1]! : q };
  });

describe("deploy/grafana: the dashboard", () => {
  it("is a current Grafana dashboard with a Prometheus data source variable and per-pod templating", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(38);
    expect(dashboard.uid).toBeTruthy();
    const ds = dashboard.templating.list.find((v) => v.name === "datasource");
    expect(ds?.type).toBe("datasource");
    expect(ds?.query).toBe("prometheus");
    const names = dashboard.templating.list.map((v) => v.name);
    expect(names).toEqual(expect.arrayContaining(["namespace", "pod", "exporter"]));
    for (const v of dashboard.templating.list.filter((x) => x.type === "query"))
      expect(v.datasource?.uid, v.name).toBe("${datasource}");
  });

  it("queries through ${datasource} in every panel, filtered by pod", () => {
    expect(dashboardPanels.length).toBeGreaterThan(10);
    for (const p of dashboardPanels) {
      expect(p.datasource?.uid, p.title).toBe("${datasource}");
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(t.datasource?.uid ?? "${datasource}", p.title).toBe("${datasource}");
        // The witness's panels select its job (its pods are not the agents' $pod).
        if (queriesWitness(t.expr ?? "")) expect(t.expr, p.title).toContain('job=~"$witness_job"');
        else expect(t.expr, p.title).toContain('job=~"$job", namespace=~"$namespace", pod=~"$pod"');
      }
    }
  });

  it("has balanced brackets in every query", () => {
    for (const { where, expr } of [...dashboardExprs, ...variableExprs])
      expect(balanced(expr), `${where}: ${expr}`).toBe(true);
  });

  it("covers ingest, exporters, WAL, fsync, signing, checkpoints, verification and the process", () => {
    const used = new Set(dashboardExprs.flatMap(({ expr }) => metricNames(expr)));
    for (const name of [
      "otelcol_receiver_accepted_log_records",
      "otelcol_receiver_refused_log_records",
      "audit_agent_records_chained_total",
      "audit_agent_records_filtered_total",
      "otelcol_exporter_sent_log_records",
      "otelcol_exporter_send_failed_log_records",
      "audit_agent_exporter_lag_records",
      "audit_agent_exporter_lag_seconds",
      "audit_agent_exporter_up",
      "audit_agent_wal_bytes",
      "audit_agent_wal_max_bytes",
      "audit_agent_wal_fsync_seconds_bucket",
      "audit_agent_batches_signed_total",
      "audit_agent_checkpoint_age_seconds",
      "audit_agent_checkpoint_tree_size",
      "audit_agent_chain_head_seq",
      "audit_agent_sealed_through_seq",
      "audit_agent_verification_runs_total",
      "audit_agent_verification_findings",
      "otelcol_process_memory_rss",
      "otelcol_process_cpu_seconds",
    ])
      expect(used, name).toContain(name);
    const fsync = dashboardExprs.map(({ expr }) => expr).join("\n");
    expect(fsync).toContain("histogram_quantile(0.5, ");
    expect(fsync).toContain("histogram_quantile(0.99, ");
  });

  it("lays its panels out without overlap, each with an id of its own", () => {
    const all = allPanels(dashboard.panels);
    const ids = all.map((p) => p.id);
    expect(new Set(ids).size, `ids ${ids.join(",")}`).toBe(ids.length);
    for (const [i, a] of all.entries()) {
      expect(a.gridPos.x + a.gridPos.w, a.title).toBeLessThanOrEqual(24);
      if (a.type === "row") expect(a.gridPos, a.title).toMatchObject({ h: 1, w: 24, x: 0 });
      for (const b of all.slice(i + 1)) {
        const apart =
          a.gridPos.x + a.gridPos.w <= b.gridPos.x ||
          b.gridPos.x + b.gridPos.w <= a.gridPos.x ||
          a.gridPos.y + a.gridPos.h <= b.gridPos.y ||
          b.gridPos.y + b.gridPos.h <= a.gridPos.y;
        expect(apart, `"${a.title}" overlaps "${b.title}"`).toBe(true);
      }
    }
  });

  it("covers the witnesses: cosignatures, failures, staleness, lag, and the witness's refusals", () => {
    const rows = dashboard.panels.filter((p) => p.type === "row");
    const witnessRow = rows.find((r) => r.title === "Witnesses");
    expect(witnessRow).toBeTruthy();
    const below = dashboardPanels.filter((p) => p.gridPos.y > witnessRow!.gridPos.y);
    const exprs = below.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ""));
    const used = new Set(exprs.flatMap(metricNames));
    for (const name of [
      "audit_agent_witness_cosignatures_total",
      "audit_agent_witness_failures_total",
      "audit_agent_witness_cosigned_tree_size",
      "audit_agent_witness_last_cosignature_timestamp_seconds",
      "audit_agent_witness_stale",
      "audit_agent_checkpoint_tree_size",
      "audit_witness_refused_total",
    ])
      expect(used, name).toContain(name);
    const panelOf = (metric: string) =>
      below.find((p) => (p.targets ?? []).some((t) => metricNames(t.expr ?? "").includes(metric)))!;
    const redFor = (p: Panel) =>
      (p.fieldConfig?.overrides ?? [])
        .filter((o) =>
          o.properties.some(
            (q) => q.id === "color" && (q.value as { fixedColor?: string }).fixedColor === "red",
          ),
        )
        .map((o) => new RegExp(o.matcher.options));
    // The refusals that mean another history stand out, by the legend's leading reason.
    const failures = panelOf("audit_agent_witness_failures_total");
    for (const reason of ["http_422", "ahead"])
      expect(
        redFor(failures).some((r) => r.test(`${reason} w pod`)),
        reason,
      ).toBe(true);
    expect(redFor(failures).some((r) => r.test("unreachable w pod"))).toBe(false);
    const refusals = panelOf("audit_witness_refused_total");
    expect(refusals.targets![0]!.expr).toContain('job=~"$witness_job"');
    for (const reason of ["fork", "rollback"])
      expect(
        redFor(refusals).some((r) => r.test(`${reason} origin`)),
        reason,
      ).toBe(true);
    expect(redFor(refusals).some((r) => r.test("unknown_log "))).toBe(false);
    // Seconds since the last cosignature turn red at witness_stale_after's default.
    const since = panelOf("audit_agent_witness_last_cosignature_timestamp_seconds");
    expect(since.targets![0]!.expr).toMatch(
      /time\(\) - audit_agent_witness_last_cosignature_timestamp_seconds\{/,
    );
    const staleAfterS = witnessingSchema.witness_stale_after.parse(undefined) / 1000;
    expect(since.fieldConfig?.defaults?.thresholds?.steps.at(-1)).toEqual({
      color: "red",
      value: staleAfterS,
    });
    const stale = panelOf("audit_agent_witness_stale");
    expect(stale.type).toBe("stat");
    expect(stale.fieldConfig?.defaults?.thresholds?.steps.at(-1)).toEqual({
      color: "red",
      value: 1,
    });
    // The witness's job has a variable of its own, from a metric only the witness exports.
    const v = dashboard.templating.list.find((x) => x.name === "witness_job");
    expect(v?.type).toBe("query");
  });
});

// ---- Prometheus rules ----

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rulesDoc = yamlDocs("prometheus/audit-agent-rules.yaml")[0] as {
  groups: Array<{ name: string; rules: Rule[] }>;
};
const rules = rulesDoc.groups.flatMap((g) => g.rules);
/** The witness's own alerts: their group is named after the job they select. */
const witnessRules = rulesDoc.groups.find((g) => g.name === "audit-witness")?.rules ?? [];
const agentRules = rules.filter((r) => !witnessRules.includes(r));
const ruleNamed = (name: string) => rules.find((r) => r.alert === name);

describe("deploy/prometheus: the alerting rules", () => {
  it("are groups of alerts with expr, for, severity, summary, description and a runbook hint", () => {
    expect(rulesDoc.groups.length).toBeGreaterThan(0);
    for (const g of rulesDoc.groups) {
      expect(g.name).toBeTruthy();
      expect(g.rules.length).toBeGreaterThan(0);
    }
    const names = new Set<string>();
    for (const r of rules) {
      expect(r.alert, r.expr).toMatch(/^[A-Za-z][A-Za-z0-9_]*$/);
      expect(names.has(r.alert!), `${r.alert} twice`).toBe(false);
      names.add(r.alert!);
      expect(typeof r.expr, r.alert).toBe("string");
      expect(r.for, r.alert).toMatch(/^\d+(ms|s|m|h|d|w|y)$/);
      expect(["warning", "critical"], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.annotations?.description, r.alert).toBeTruthy();
      expect(r.annotations?.runbook, r.alert).toBeTruthy();
      expect(balanced(r.expr), `${r.alert}: ${r.expr}`).toBe(true);
    }
  });

  it("cover the agent down, exporters stuck or failed, WAL filling, verification, sealing and refusals", () => {
    const exprOf = (name: string) => rules.find((r) => r.alert === name)?.expr ?? "";
    expect(exprOf("AuditAgentDown")).toMatch(/\bup\{/);
    expect(exprOf("AuditAgentAbsent")).toMatch(/^absent\(up\{/);
    expect(exprOf("AuditAgentExporterFailed")).toContain("audit_agent_exporter_up");
    expect(exprOf("AuditAgentExporterStuck")).toContain("otelcol_exporter_sent_log_records");
    expect(exprOf("AuditAgentExporterLagging")).toContain("audit_agent_exporter_lag_seconds");
    expect(exprOf("AuditAgentWALFilling")).toMatch(/audit_agent_wal_max_bytes.*> 0\.8$/s);
    expect(exprOf("AuditAgentWALFull")).toMatch(/> 0\.95$/);
    expect(rules.find((r) => r.alert === "AuditAgentWALFull")?.labels?.severity).toBe("critical");
    expect(exprOf("AuditAgentVerificationFailed")).toContain('result="failed"');
    expect(exprOf("AuditAgentVerificationFindings")).toContain("audit_agent_verification_findings");
    expect(exprOf("AuditAgentSealingStalled")).toContain("audit_agent_sealed_through_seq");
    expect(exprOf("AuditAgentCheckpointStale")).toContain("audit_agent_checkpoint_age_seconds");
    expect(exprOf("AuditAgentRefusingRecords")).toContain("otelcol_receiver_refused_log_records");
  });

  it("select, in each group, the job the group is named after", () => {
    expect(rulesDoc.groups.map((g) => g.name).sort()).toEqual(["audit-agent", "audit-witness"]);
    for (const g of rulesDoc.groups)
      for (const r of g.rules) {
        const jobs = [...r.expr.matchAll(/\bjob="([^"]*)"/g)].map((m) => m[1]);
        expect(jobs.length, r.alert).toBeGreaterThan(0);
        for (const job of jobs) expect(job, r.alert).toBe(g.name);
      }
  });

  it("cover the witnesses: stale cosignatures, a witness holding another history, a fork refused", () => {
    const stale = ruleNamed("AuditWitnessStale")!;
    expect(stale.expr).toBe('audit_agent_witness_stale{job="audit-agent"} == 1');
    expect(stale.for).toBe("10m");
    const refused = ruleNamed("AuditWitnessRefused")!;
    expect(refused.expr).toMatch(
      /^increase\(audit_agent_witness_failures_total\{job="audit-agent", reason=~"http_422\|ahead"\}\[10m\]\) > 0\b/,
    );
    expect(refused.labels?.severity).toBe("critical");
    const fork = ruleNamed("AuditWitnessForkRefused")!;
    expect(fork.expr).toMatch(
      /^increase\(audit_witness_refused_total\{job="audit-witness", reason=~"fork\|rollback"\}\[10m\]\) > 0\b/,
    );
    expect(fork.labels?.severity).toBe("critical");
    expect(witnessRules).toContain(fork);
    // These counters appear with their first event, at 1, which increase() alone never sees.
    for (const r of [refused, fork])
      expect(r.expr, r.alert).toMatch(/\bunless\b[^]*\boffset 10m\)$/);
  });
});

// ---- every metric queried is one the agent exports ----

/** Series names a scrape can hold: each metric family, with its histogram/summary series. */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name + s);
    if (type === "summary") for (const s of ["_sum", "_count"]) names.add(name + s);
  }
  return names;
}

/** Series Prometheus adds to every target itself. */
const SCRAPE_SERIES = ["up", "scrape_duration_seconds", "scrape_samples_scraped"];

/** What a metrics endpoint exports, and the series Prometheus adds to each target. */
async function scrapedNames(url: string): Promise<Set<string>> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  const names = exportedNames(await res.text());
  for (const s of SCRAPE_SERIES) names.add(s);
  return names;
}

/** The labels each series name carries in a scrape (histogram buckets' `le` included). */
function seriesLabels(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? \S+$/gm)) {
    const labels = out.get(m[1]!) ?? new Set<string>();
    for (const l of (m[2] ?? "").matchAll(/(\w+)="/g)) labels.add(l[1]!);
    out.set(m[1]!, labels);
  }
  return out;
}

/** Labels an expression groups by (`by (…)`). */
function groupingLabels(expr: string): string[] {
  return [...withoutStrings(expr).matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) =>
    m[1]!
      .split(",")
      .map((l) => l.trim())
      .filter((l) => l !== ""),
  );
}

/** Labels Prometheus gives every series of a target (the PodMonitor's relabelling). */
const TARGET_LABELS = ["job", "namespace", "pod", "instance"];

/** `text` with each of `pairs`' first strings replaced by the second, every one present. */
function substituted(
  text: string,
  pairs: ReadonlyArray<readonly [string | RegExp, string]>,
): string {
  return pairs.reduce((t, [from, to]) => {
    expect(t, `${String(from)} to replace`).toMatch(from);
    return t.replaceAll(from, to);
  }, text);
}

describe("the example's agent and witness, run here: cosignatures, and every metric the dashboard and the rules query", () => {
  const tmp = makeTempDir();
  let witness: RunningWitness | undefined;
  let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
  let exported: Set<string>;
  let witnessExported: Set<string>;
  beforeAll(async () => {
    // The two ConfigMaps' configs as they are, but for the pods' paths (moved under tmp),
    // the listeners (ephemeral loopback ports), the witness's URL and the two example keys
    // (fresh ones: the examples' private halves do not exist).
    const agentKey = generateSigningKey("payments-eu1");
    const keyFile = join(tmp.path, "agent", "keys", "signing.key");
    writeKeyPair(keyFile, agentKey);
    const witnessKey = generateSigningKey("audit-witness.example.com");
    const witnessKeyFile = join(tmp.path, "witness", "keys", "witness.key");
    writeKeyPair(witnessKeyFile, witnessKey, cosignerKeyOf(witnessKey).verifierKey);
    const logger = createLogger("error");
    const witnessYaml = substituted(witnessConfigMap.data!["witness.yaml"]!, [
      [witnessConfig.keyFile, witnessKeyFile],
      [witnessConfig.stateDir, join(tmp.path, "witness", "state")],
      [witnessConfig.listen, "127.0.0.1:0"],
      [witnessConfig.logs[0]!.keys[0]!.verifierKey, agentKey.public.verifierKey],
    ]);
    witness = await startWitness(parseWitnessConfig(witnessYaml, "witness.yaml", {}), logger);
    const agentYaml = substituted(configText, [
      [config.signing.key_file, keyFile],
      ["/var/lib/audit-agent/", `${join(tmp.path, "agent")}/`],
      [/\b(127\.0\.0\.1|0\.0\.0\.0):\d+\b/g, "127.0.0.1:0"],
      [config.signing.witnesses[0]!.url, `http://${witness.address()}`],
      [config.signing.witnesses[0]!.key, witness.cosigner.verifierKey],
    ]);
    agent = await startAgent(parseConfig(agentYaml, "configmap.yaml", agentEnv), logger);
    exported = await scrapedNames(`http://${agent.addresses().metrics?.http}/metrics`);
    witnessExported = await scrapedNames(`http://${witness.address()}/metrics`);
  });
  afterAll(async () => {
    await agent?.shutdown(5000);
    await witness?.shutdown();
    tmp.cleanup();
  });

  it("the witness cosigns the agent's checkpoints, under the pod's origin", async () => {
    await postAuditRecords(`http://${agent!.addresses().otlp!.http}/v1/logs`, 0, 3);
    const origin = `audit.example.com/payments-api/${agentEnv.POD_NAME}`;
    const sample = async (url: string, series: string) => {
      const text = await (await fetch(url)).text();
      const line = text.split("\n").find((l) => l.startsWith(`${series} `));
      return line ? Number(line.slice(series.length + 1)) : 0;
    };
    await waitFor(
      async () =>
        (await sample(
          `http://${witness!.address()}/metrics`,
          `audit_witness_tree_size{origin="${origin}"}`,
        )) >= 3,
      15_000,
      "the witness's cosignature of a checkpoint of 3 records",
    );
    const agentMetrics = `http://${agent!.addresses().metrics?.http}/metrics`;
    await waitFor(
      async () =>
        (await sample(
          agentMetrics,
          'audit_agent_witness_cosignatures_total{witness="audit-witness.example.com"}',
        )) > 0,
      15_000,
      "the agent's count of cosignatures",
    );
    expect(await sample(agentMetrics, "audit_agent_witness_stale")).toBe(0);
  });

  it("groups only by labels the queried series carry, the Collector's transport among them", async () => {
    const agentLabels = seriesLabels(
      await (await fetch(`http://${agent!.addresses().metrics?.http}/metrics`)).text(),
    );
    const witnessLabels = seriesLabels(
      await (await fetch(`http://${witness!.address()}/metrics`)).text(),
    );
    expect(agentLabels.get("otelcol_receiver_accepted_log_records")).toEqual(
      new Set(["receiver", "transport"]),
    );
    const all = [
      ...dashboardExprs.map((e) => ({ ...e, witness: queriesWitness(e.expr) })),
      ...agentRules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr, witness: false })),
      ...witnessRules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr, witness: true })),
    ];
    let checked = 0;
    for (const { where, expr, witness } of all) {
      const labels = witness ? witnessLabels : agentLabels;
      // Series with no samples yet (no refusals, no failures) show no labels: not checkable.
      const sampled = metricNames(expr).filter((n) => labels.has(n));
      if (sampled.length === 0) continue;
      const carried = new Set([...TARGET_LABELS, ...sampled.flatMap((n) => [...labels.get(n)!])]);
      for (const l of groupingLabels(expr)) {
        expect(carried, `${where} groups by ${l}: ${expr}`).toContain(l);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it("scrapes the agent's metric families", () => {
    expect(exported).toContain("audit_agent_wal_fsync_seconds_bucket");
    expect(exported).toContain("otelcol_receiver_accepted_log_records");
    expect(exported).not.toContain("otelcol_receiver_accepted_log_records_total");
    expect(exported).toContain("audit_agent_witness_stale");
    expect(witnessExported).toContain("audit_witness_refused_total");
  });

  it.each([
    [
      "dashboard panels on the agents",
      () => dashboardExprs.filter(({ expr }) => !queriesWitness(expr)),
      () => exported,
    ],
    [
      "dashboard panels on the witness",
      () => dashboardExprs.filter(({ expr }) => queriesWitness(expr)),
      () => witnessExported,
    ],
    [
      "dashboard variables on the agents",
      () => variableExprs.filter(({ where }) => where !== "variable $witness_job"),
      () => exported,
    ],
    [
      "dashboard variables on the witness",
      () => variableExprs.filter(({ where }) => where === "variable $witness_job"),
      () => witnessExported,
    ],
    [
      "the agent's alert rules",
      () => agentRules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })),
      () => exported,
    ],
    [
      "the witness's alert rules",
      () => witnessRules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })),
      () => witnessExported,
    ],
  ])("%s", (_what, exprs, names) => {
    const list = exprs();
    expect(list.length).toBeGreaterThan(0);
    for (const { where, expr } of list) {
      const used = metricNames(expr);
      expect(used.length, `${where}: no metric in ${expr}`).toBeGreaterThan(0);
      for (const n of used) expect(names(), `${where} queries ${n}`).toContain(n);
    }
  });
});

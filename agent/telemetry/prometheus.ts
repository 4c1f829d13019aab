import { readdirSync, readFileSync } from "node:fs";
import { constants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { getHeapSpaceStatistics } from "node:v8";

/**
 * Prometheus text exposition (format 0.0.4) for the agent's own metrics, with the standard
 * process_* and nodejs_* metrics. Every value is read when scraped, except histograms,
 * which count observations as they happen. Written for the agent instead of prom-client,
 * which with its dependencies kept about 1 MiB of heap resident and sampled the event
 * loop 100 times a second.
 */

export type Labels = Record<string, string>;
/** Reports one sample of a metric at scrape time. */
export type SetSample = (labels: Labels, value: number) => void;
type MetricType = "counter" | "gauge" | "histogram";

interface Family {
  name: string;
  help: string;
  type: MetricType;
  write(lines: string[]): void | Promise<void>;
}

const escapeHelp = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
const escapeLabel = (s: string) =>
  s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

function formatValue(v: number): string {
  if (Number.isFinite(v)) return String(v);
  return Number.isNaN(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
}

function formatLabels(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return "";
  return `{${keys.map((k) => `${k}="${escapeLabel(labels[k] as string)}"`).join(",")}}`;
}

export class Registry {
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  private readonly families: Family[] = [];

  /** A counter or gauge whose samples `read` reports at each scrape. */
  collected(
    type: "counter" | "gauge",
    name: string,
    help: string,
    read: (set: SetSample) => void | Promise<void>,
  ): void {
    this.families.push({
      name,
      help,
      type,
      async write(lines) {
        await read((labels, value) =>
          lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`),
        );
      },
    });
  }

  /**
   * A histogram with cumulative `le` buckets, `_sum` and `_count`, per label set. One
   * without labels is shown with zero observations before the first.
   */
  histogram(name: string, help: string, buckets: readonly number[], labelled = false): Histogram {
    const histogram = new Histogram(buckets, labelled);
    this.families.push({
      name,
      help,
      type: "histogram",
      write: (lines) => histogram.write(name, lines),
    });
    return histogram;
  }

  async metrics(): Promise<string> {
    const lines: string[] = [];
    for (const f of this.families) {
      lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
      await f.write(lines);
    }
    return `${lines.join("\n")}\n`;
  }
}

interface Series {
  labels: Labels;
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram {
  private readonly series = new Map<string, Series>();

  constructor(
    private readonly buckets: readonly number[],
    labelled: boolean,
  ) {
    if (!labelled) this.series.set("", this.empty({}));
  }

  private empty(labels: Labels): Series {
    return { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }

  observe(value: number, labels: Labels = {}): void {
    const key = formatLabels(labels);
    let s = this.series.get(key);
    if (!s) {
      s = this.empty(labels);
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= (this.buckets[i] as number)) {
        s.counts[i] = (s.counts[i] as number) + 1;
        break;
      }
    }
    s.sum += value;
    s.count++;
  }

  write(name: string, lines: string[]): void {
    for (const s of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += s.counts[i] as number;
        const le = formatValue(this.buckets[i] as number);
        lines.push(`${name}_bucket${formatLabels({ ...s.labels, le })} ${cumulative}`);
      }
      lines.push(`${name}_bucket${formatLabels({ ...s.labels, le: "+Inf" })} ${s.count}`);
      lines.push(`${name}_sum${formatLabels(s.labels)} ${formatValue(s.sum)}`);
      lines.push(`${name}_count${formatLabels(s.labels)} ${s.count}`);
    }
  }
}

/**
 * How often the event loop is sampled for nodejs_eventloop_lag_*: each sample is one timer
 * tick, so this is also the idle wake-up rate (prom-client's 10 ms alone cost about 0.35 %
 * of a core on an idle agent).
 */
export const EVENT_LOOP_RESOLUTION_MS = 50;

/** /proc/self/status fields in bytes (Linux), or null elsewhere. */
function procStatus(): Map<string, number> | null {
  let text: string;
  try {
    text = readFileSync("/proc/self/status", "utf8");
  } catch {
    return null;
  }
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^(Vm\w+):\s+(\d+) kB$/gm))
    out.set(m[1] as string, Number(m[2]) * 1024);
  return out;
}

function maxFds(): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * The standard process_* and nodejs_* metrics, under prom-client's names. The event loop
 * lag percentiles are the delay beyond the sampling interval (0 when the loop is idle).
 */
export function registerProcessMetrics(registry: Registry): { stop(): void } {
  registerProcessUsage(registry);
  const loop = registerEventLoop(registry);
  registerNodeRuntime(registry);
  const gc = registerGcDurations(registry);
  return {
    stop() {
      loop.stop();
      gc.stop();
    },
  };
}

type Collect = (name: string, help: string, read: (set: SetSample) => void) => void;

const gaugeOf =
  (registry: Registry): Collect =>
  (name, help, read) =>
    registry.collected("gauge", name, help, read);

/** process_*: CPU, memory and file descriptors. */
function registerProcessUsage(registry: Registry): void {
  const gauge = gaugeOf(registry);
  const counter: Collect = (name, help, read) => registry.collected("counter", name, help, read);
  counter("process_cpu_user_seconds_total", "Total user CPU time spent in seconds.", (set) =>
    set({}, process.cpuUsage().user / 1e6),
  );
  counter("process_cpu_system_seconds_total", "Total system CPU time spent in seconds.", (set) =>
    set({}, process.cpuUsage().system / 1e6),
  );
  counter(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.",
    (set) => {
      const u = process.cpuUsage();
      set({}, (u.user + u.system) / 1e6);
    },
  );
  const startTime = Math.round(Date.now() / 1000 - process.uptime());
  gauge(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
    (set) => set({}, startTime),
  );
  gauge("process_resident_memory_bytes", "Resident memory size in bytes.", (set) =>
    set({}, procStatus()?.get("VmRSS") ?? process.memoryUsage.rss()),
  );
  if (procStatus()) {
    gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", (set) => {
      const v = procStatus()?.get("VmSize");
      if (v !== undefined) set({}, v);
    });
    gauge("process_heap_bytes", "Process heap size in bytes.", (set) => {
      const v = procStatus()?.get("VmData");
      if (v !== undefined) set({}, v);
    });
    gauge("process_open_fds", "Number of open file descriptors.", (set) => {
      try {
        set({}, readdirSync("/proc/self/fd").length - 1);
      } catch {
        // not readable: no sample
      }
    });
    const max = maxFds();
    if (max !== null)
      gauge("process_max_fds", "Maximum number of open file descriptors.", (set) => set({}, max));
  }
}

/** nodejs_eventloop_lag_*: sampled every EVENT_LOOP_RESOLUTION_MS until stopped. */
function registerEventLoop(registry: Registry): { stop(): void } {
  const gauge = gaugeOf(registry);
  registry.collected(
    "gauge",
    "nodejs_eventloop_lag_seconds",
    "Lag of event loop in seconds.",
    (set) =>
      new Promise<void>((resolve) => {
        const start = process.hrtime.bigint();
        setImmediate(() => {
          set({}, Number(process.hrtime.bigint() - start) / 1e9);
          resolve();
        });
      }),
  );
  const loop = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  loop.enable();
  // Samples are tick-to-tick intervals: the delay is what exceeds the resolution.
  const delay = (ns: number) => Math.max(0, ns - EVENT_LOOP_RESOLUTION_MS * 1e6) / 1e9;
  const lag = (name: string, help: string, read: () => number) =>
    gauge(name, help, (set) => {
      if (loop.count > 0) set({}, read());
    });
  lag("nodejs_eventloop_lag_min_seconds", "The minimum recorded event loop delay.", () =>
    delay(loop.min),
  );
  lag("nodejs_eventloop_lag_max_seconds", "The maximum recorded event loop delay.", () =>
    delay(loop.max),
  );
  lag("nodejs_eventloop_lag_mean_seconds", "The mean of the recorded event loop delays.", () =>
    delay(loop.mean),
  );
  lag(
    "nodejs_eventloop_lag_stddev_seconds",
    "The standard deviation of the recorded event loop delays.",
    () => loop.stddev / 1e9,
  );
  for (const p of [50, 90, 99])
    lag(
      `nodejs_eventloop_lag_p${p}_seconds`,
      `The ${p}th percentile of the recorded event loop delays.`,
      () => {
        const v = delay(loop.percentile(p));
        // Each scrape covers the time since the previous one, as with prom-client.
        if (p === 99) loop.reset();
        return v;
      },
    );

  return { stop: () => loop.disable() };
}

/** nodejs_*: active resources, heap and version. */
function registerNodeRuntime(registry: Registry): void {
  const gauge = gaugeOf(registry);
  gauge(
    "nodejs_active_resources",
    "Number of active resources that are currently keeping the event loop alive, grouped by async resource type.",
    (set) => {
      const counts = new Map<string, number>();
      for (const type of process.getActiveResourcesInfo())
        counts.set(type, (counts.get(type) ?? 0) + 1);
      for (const [type, n] of counts) set({ type }, n);
    },
  );
  gauge("nodejs_active_resources_total", "Total number of active resources.", (set) =>
    set({}, process.getActiveResourcesInfo().length),
  );

  gauge("nodejs_heap_size_total_bytes", "Process heap size from Node.js in bytes.", (set) =>
    set({}, process.memoryUsage().heapTotal),
  );
  gauge("nodejs_heap_size_used_bytes", "Process heap size used from Node.js in bytes.", (set) =>
    set({}, process.memoryUsage().heapUsed),
  );
  gauge("nodejs_external_memory_bytes", "Node.js external memory size in bytes.", (set) =>
    set({}, process.memoryUsage().external),
  );
  const spaces =
    (field: "space_size" | "space_used_size" | "space_available_size") => (set: SetSample) => {
      for (const s of getHeapSpaceStatistics())
        set({ space: s.space_name.replace(/_space$/, "") }, s[field]);
    };
  gauge(
    "nodejs_heap_space_size_total_bytes",
    "Process heap space size total from Node.js in bytes.",
    spaces("space_size"),
  );
  gauge(
    "nodejs_heap_space_size_used_bytes",
    "Process heap space size used from Node.js in bytes.",
    spaces("space_used_size"),
  );
  gauge(
    "nodejs_heap_space_size_available_bytes",
    "Process heap space size available from Node.js in bytes.",
    spaces("space_available_size"),
  );
  const [major, minor, patch] = process.versions.node.split(".");
  gauge("nodejs_version_info", "Node.js version info.", (set) =>
    set(
      { version: process.version, major: major ?? "", minor: minor ?? "", patch: patch ?? "" },
      1,
    ),
  );
}

/** nodejs_gc_duration_seconds, observed until stopped. */
function registerGcDurations(registry: Registry): { stop(): void } {
  const gc = registry.histogram(
    "nodejs_gc_duration_seconds",
    "Garbage collection duration by kind, one of major, minor, incremental or weakcb.",
    [0.001, 0.01, 0.1, 1, 2, 5],
    true,
  );
  const kinds: Record<number, string> = {
    [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
    [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
  };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const { detail } = entry as { detail?: { kind?: number } };
      const kind = kinds[detail?.kind ?? -1];
      if (kind) gc.observe(entry.duration / 1000, { kind });
    }
  });
  observer.observe({ entryTypes: ["gc"] });

  return { stop: () => observer.disconnect() };
}

import { readdirSync, readFileSync } from "node:fs";
import { constants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { getHeapSpaceStatistics } from "node:v8";
import type { Registry, SetSample } from "./prometheus.js";

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
 * The process metrics under the Collector's names (otelcol_process_*, service/documentation.md
 * in opentelemetry-collector), and the Node.js ones the Collector has no counterpart for
 * (nodejs_*, and process_* file descriptors and virtual memory, under prom-client's names).
 * A Collector metric replaces the prom-client one that measured the same thing
 * (process_cpu_seconds_total, process_resident_memory_bytes, process_start_time_seconds,
 * nodejs_heap_size_used_bytes). The event loop lag percentiles are the delay beyond the
 * sampling interval (0 when the loop is idle).
 */
export function registerProcessMetrics(registry: Registry): { stop(): void } {
  registerCollectorProcess(registry);
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

/**
 * otelcol_process_*, with the Collector's types and units, from what Node reports. Go's
 * runtime.MemStats has no exact Node counterpart: the heap in use (heapUsed) stands for
 * HeapAlloc, and what V8 holds for the heap plus the memory outside it that V8 accounts for
 * (heapTotal + external) for Sys. otelcol_process_runtime_total_alloc_bytes is not exported:
 * V8 keeps no running total of allocations, and tracking one would cost a hook on every GC.
 */
function registerCollectorProcess(registry: Registry): void {
  registry.collected(
    "counter",
    "otelcol_process_uptime",
    "Uptime of the process",
    (set) => set({}, process.uptime()),
    "s",
  );
  registry.collected(
    "counter",
    "otelcol_process_cpu_seconds",
    "Total CPU user and system time in seconds",
    (set) => {
      const u = process.cpuUsage();
      set({}, (u.user + u.system) / 1e6);
    },
    "s",
  );
  registry.collected(
    "gauge",
    "otelcol_process_memory_rss",
    "Total physical memory (resident set size)",
    (set) => set({}, procStatus()?.get("VmRSS") ?? process.memoryUsage.rss()),
    "By",
  );
  registry.collected(
    "gauge",
    "otelcol_process_runtime_heap_alloc_bytes",
    "Bytes of allocated heap objects (the V8 heap in use: process.memoryUsage().heapUsed)",
    (set) => set({}, process.memoryUsage().heapUsed),
    "By",
  );
  registry.collected(
    "gauge",
    "otelcol_process_runtime_total_sys_memory_bytes",
    "Total bytes of memory obtained from the OS (the V8 heap and the memory it accounts for outside it: heapTotal + external)",
    (set) => {
      const m = process.memoryUsage();
      set({}, m.heapTotal + m.external);
    },
    "By",
  );
}

/** process_*: file descriptors and virtual memory (Linux), which the Collector does not report. */
function registerProcessUsage(registry: Registry): void {
  const gauge = gaugeOf(registry);
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

/** nodejs_*: active resources, heap (used: otelcol_process_runtime_heap_alloc_bytes) and version. */
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

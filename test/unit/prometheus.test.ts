import { describe, expect, it, vi } from "vitest";
import { registerProcessMetrics } from "../../agent/telemetry/process-metrics.js";
import { prometheusName, Registry } from "../../agent/telemetry/prometheus.js";

describe("Prometheus exposition", () => {
  it("writes counters and gauges as read at scrape time, with escaped labels and help", async () => {
    const registry = new Registry();
    let n = 1;
    registry.collected("counter", "things_total", 'Things, "counted"\nper \\ kind.', (set) => {
      set({ kind: 'a"b\\c\nd' }, n);
      set({ kind: "plain", other: "x" }, n * 2);
    });
    registry.collected("gauge", "level", "A level.", (set) => set({}, Number.NaN));
    registry.collected("gauge", "nothing", "No samples.", () => {});
    n = 5;
    expect(await registry.metrics()).toBe(
      [
        '# HELP things_total Things, "counted"\\nper \\\\ kind.',
        "# TYPE things_total counter",
        'things_total{kind="a\\"b\\\\c\\nd"} 5',
        'things_total{kind="plain",other="x"} 10',
        "# HELP level A level.",
        "# TYPE level gauge",
        "level NaN",
        "# HELP nothing No samples.",
        "# TYPE nothing gauge",
        "",
      ].join("\n"),
    );
  });

  it("writes histograms with cumulative buckets, +Inf, sum and count", async () => {
    const registry = new Registry();
    const h = registry.histogram("op_seconds", "Op time.", [0.1, 1]);
    const labelled = registry.histogram("gc_seconds", "GC time.", [0.5], true);
    const empty = await registry.metrics();
    expect(empty).toContain('op_seconds_bucket{le="+Inf"} 0\nop_seconds_sum 0\nop_seconds_count 0');
    expect(empty).not.toContain("gc_seconds_bucket");
    for (const v of [0.05, 0.1, 0.5, 3]) h.observe(v);
    labelled.observe(0.2, { kind: "minor" });
    const text = await registry.metrics();
    expect(text).toContain(
      [
        'op_seconds_bucket{le="0.1"} 2',
        'op_seconds_bucket{le="1"} 3',
        'op_seconds_bucket{le="+Inf"} 4',
        "op_seconds_sum 3.65",
        "op_seconds_count 4",
      ].join("\n"),
    );
    expect(text).toContain(
      'gc_seconds_bucket{kind="minor",le="0.5"} 1\ngc_seconds_bucket{kind="minor",le="+Inf"} 1',
    );
  });

  it("has the standard process and Node.js metrics", async () => {
    const registry = new Registry();
    const metrics = registerProcessMetrics(registry);
    try {
      // Until the event loop monitor has a sample (one resolution tick, 50 ms): the lag
      // gauges are left out before that. A scrape without them resets nothing.
      const text = await vi.waitFor(
        async () => {
          const t = await registry.metrics();
          if (!/^nodejs_eventloop_lag_p99_seconds /m.test(t)) throw new Error("no lag sample yet");
          return t;
        },
        { timeout: 5000, interval: 20 },
      );
      for (const name of [
        "otelcol_process_uptime",
        "otelcol_process_cpu_seconds",
        "otelcol_process_memory_rss",
        "otelcol_process_runtime_heap_alloc_bytes",
        "otelcol_process_runtime_total_sys_memory_bytes",
        "nodejs_eventloop_lag_p99_seconds",
        'nodejs_heap_space_size_used_bytes{space="old"}',
        "nodejs_version_info{",
      ])
        expect(text).toMatch(new RegExp(`^${name.replace(/[{}]/g, "\\$&")}`, "m"));
      const lag = Number(/^nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text)?.[1]);
      expect(lag).toBeGreaterThanOrEqual(0);
      expect(lag).toBeLessThan(1);
    } finally {
      metrics.stop();
    }
  });

  it("names the Collector's instruments as its Prometheus reader does, with and without suffixes", async () => {
    const suffixed = { withoutTypeSuffix: false, withoutUnits: false };
    const bare = { withoutTypeSuffix: true, withoutUnits: true };
    const cases: Array<[string, "counter" | "gauge", string, string, string]> = [
      [
        "otelcol_process_uptime",
        "counter",
        "s",
        "otelcol_process_uptime",
        "otelcol_process_uptime_seconds_total",
      ],
      [
        "otelcol_process_cpu_seconds",
        "counter",
        "s",
        "otelcol_process_cpu_seconds",
        "otelcol_process_cpu_seconds_total",
      ],
      [
        "otelcol_process_memory_rss",
        "gauge",
        "By",
        "otelcol_process_memory_rss",
        "otelcol_process_memory_rss_bytes",
      ],
      [
        "otelcol_process_runtime_heap_alloc_bytes",
        "gauge",
        "By",
        "otelcol_process_runtime_heap_alloc_bytes",
        "otelcol_process_runtime_heap_alloc_bytes",
      ],
      [
        "otelcol_receiver_accepted_log_records",
        "counter",
        "{record}",
        "otelcol_receiver_accepted_log_records",
        "otelcol_receiver_accepted_log_records_total",
      ],
      [
        "otelcol_exporter_queue_size",
        "gauge",
        "{batch}",
        "otelcol_exporter_queue_size",
        "otelcol_exporter_queue_size",
      ],
    ];
    for (const [name, type, unit, without, withSuffixes] of cases) {
      expect(prometheusName(name, type, unit, bare)).toBe(without);
      expect(prometheusName(name, type, unit, suffixed)).toBe(withSuffixes);
    }
    // Each switch alone.
    expect(
      prometheusName("otelcol_process_uptime", "counter", "s", {
        withoutTypeSuffix: false,
        withoutUnits: true,
      }),
    ).toBe("otelcol_process_uptime_total");
    expect(
      prometheusName("otelcol_process_uptime", "counter", "s", {
        withoutTypeSuffix: true,
        withoutUnits: false,
      }),
    ).toBe("otelcol_process_uptime_seconds");
    expect(() => prometheusName("x", "gauge", "furlong", bare)).toThrow(/no Prometheus unit word/);

    // Only instruments (registered with a unit) are renamed; Prometheus-named metrics never are.
    const registry = new Registry(suffixed);
    registry.collected(
      "counter",
      "otelcol_receiver_accepted_log_records",
      "Accepted.",
      (set) => set({}, 1),
      "{record}",
    );
    registry.collected("counter", "audit_agent_records_chained_total", "Chained.", (set) =>
      set({}, 2),
    );
    const text = await registry.metrics();
    expect(text).toContain(
      "# TYPE otelcol_receiver_accepted_log_records_total counter\notelcol_receiver_accepted_log_records_total 1",
    );
    expect(text).toContain(
      "# TYPE audit_agent_records_chained_total counter\naudit_agent_records_chained_total 2",
    );
  });
});

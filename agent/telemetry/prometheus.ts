/**
 * Prometheus text exposition (format 0.0.4) for the agent's own metrics. Every value is read
 * when scraped, except histograms, which count observations as they happen. Written for the
 * agent instead of prom-client, which with its dependencies kept about 1 MiB of heap
 * resident and sampled the event loop 100 times a second.
 */

export type Labels = Record<string, string>;
/** Reports one sample of a metric at scrape time. */
export type SetSample = (labels: Labels, value: number) => void;
type MetricType = "counter" | "gauge" | "histogram";

/**
 * How the Collector's metrics (OpenTelemetry instruments with a unit) are named in the
 * exposition: the switches of the Collector's Prometheus reader
 * (`service.telemetry.metrics.readers[].pull.exporter.prometheus`). With both true, as on the
 * Collector's default endpoint, `otelcol_process_uptime` is shown as it is; with both false,
 * as `otelcol_process_uptime_seconds_total`. The agent's own Prometheus-named metrics
 * (`audit_agent_*`, `nodejs_*`) never change.
 */
export interface PrometheusNaming {
  /** `without_type_suffix`: counters are not given `_total`. */
  withoutTypeSuffix: boolean;
  /** `without_units`: the unit (`_seconds`, `_bytes`) is not appended. */
  withoutUnits: boolean;
}

/** The Collector's default endpoint: instrument names as they are. */
export const COLLECTOR_DEFAULT_NAMING: PrometheusNaming = {
  withoutTypeSuffix: true,
  withoutUnits: true,
};

/**
 * Prometheus unit words for the UCUM units the agent's instruments use. Annotations such as
 * `{record}` name what is counted and add nothing to the name, as in OpenTelemetry's
 * Prometheus compatibility rules.
 */
const UNIT_WORDS: Record<string, string> = { s: "seconds", ms: "milliseconds", By: "bytes" };

/** An instrument's Prometheus name under `naming`. */
export function prometheusName(
  name: string,
  type: MetricType,
  unit: string,
  naming: PrometheusNaming,
): string {
  let out = name;
  const annotation = /^\{[^}]*\}$/.test(unit);
  const word = UNIT_WORDS[unit];
  if (!annotation && word === undefined)
    throw new Error(`metric ${name}: no Prometheus unit word for "${unit}"`);
  if (!naming.withoutUnits && word && !out.endsWith(`_${word}`)) out += `_${word}`;
  if (!naming.withoutTypeSuffix && type === "counter" && !out.endsWith("_total")) out += "_total";
  return out;
}

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

  constructor(private readonly naming: PrometheusNaming = COLLECTOR_DEFAULT_NAMING) {}

  /**
   * A counter or gauge whose samples `read` reports at each scrape. With `unit` (UCUM, as in
   * the Collector's metadata), `name` is an OpenTelemetry instrument name, shown under the
   * registry's naming; without, it is the Prometheus name as it is.
   */
  collected(
    type: "counter" | "gauge",
    instrument: string,
    help: string,
    read: (set: SetSample) => void | Promise<void>,
    unit?: string,
  ): void {
    const name =
      unit === undefined ? instrument : prometheusName(instrument, type, unit, this.naming);
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

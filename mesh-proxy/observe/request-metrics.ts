// Request counters and latency histograms per (direction, service, route). prom-client hashes the
// label set on every observe(); here each series is an object resolved once (at config load for
// routes, on first use for a service) so recording is a few array writes. prom-client's registry
// formats them at scrape time through the metric interface it calls (`get()`).
import type { Registry } from 'prom-client';

/** `peer`: requests another datacenter's edge failed over to this one. */
export type Direction = 'edge' | 'outbound' | 'inbound' | 'peer';

// Few buckets, per prom-client's advice: each adds a series per label set.
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export class RequestSeries {
  readonly labels: Readonly<Record<string, string>>;
  readonly codes = new Map<number, number>();
  readonly buckets = new Float64Array(BUCKETS.length);
  sum = 0;
  count = 0;

  constructor(labels: Record<string, string>) {
    this.labels = Object.freeze(labels);
  }

  record(statusCode: number, seconds: number): void {
    this.codes.set(statusCode, (this.codes.get(statusCode) ?? 0) + 1);
    this.count++;
    this.sum += seconds;
    // Non-cumulative here; cumulated when scraped.
    for (let i = 0; i < BUCKETS.length; i++) {
      if (seconds <= BUCKETS[i]) {
        this.buckets[i]++;
        return;
      }
    }
  }
}

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

export class RequestMetrics {
  readonly #series = new Map<string, RequestSeries>();
  readonly #dc: string;

  constructor(registry: Registry, dc: string) {
    this.#dc = dc;
    this.#register(registry, 'meshgate_requests_total', 'Requests handled, by direction, service, route and response status code.', 'counter', () => this.#counterValues());
    this.#register(
      registry,
      'meshgate_request_duration_seconds',
      'Time from receiving a request to the end of its response, by direction, service and route.',
      'histogram',
      () => this.#histogramValues(),
    );
  }

  #register(registry: Registry, name: string, help: string, type: 'counter' | 'histogram', values: () => MetricValue[]): void {
    const metric = { name, help, type, aggregator: 'sum' };
    registry.registerMetric({ ...metric, get: () => ({ ...metric, values: values() }), reset: () => this.#series.clear() } as never);
  }

  /** Resolve once and keep: the returned series is what the request path records into. */
  series(direction: Direction, service: string, route: string): RequestSeries {
    const key = `${direction}\u0000${service}\u0000${route}`;
    let s = this.#series.get(key);
    if (!s) {
      s = new RequestSeries({ direction, service, route, dc: this.#dc });
      this.#series.set(key, s);
    }
    return s;
  }

  #counterValues(): MetricValue[] {
    const out: MetricValue[] = [];
    for (const s of this.#series.values()) {
      for (const [code, n] of s.codes) out.push({ value: n, labels: { ...s.labels, status_code: code } });
    }
    return out;
  }

  #histogramValues(): MetricValue[] {
    const out: MetricValue[] = [];
    for (const s of this.#series.values()) {
      if (s.count === 0) continue;
      let cum = 0;
      for (let i = 0; i < BUCKETS.length; i++) {
        cum += s.buckets[i];
        out.push({ metricName: 'meshgate_request_duration_seconds_bucket', value: cum, labels: { ...s.labels, le: BUCKETS[i] } });
      }
      out.push({ metricName: 'meshgate_request_duration_seconds_bucket', value: s.count, labels: { ...s.labels, le: '+Inf' } });
      out.push({ metricName: 'meshgate_request_duration_seconds_sum', value: s.sum, labels: s.labels });
      out.push({ metricName: 'meshgate_request_duration_seconds_count', value: s.count, labels: s.labels });
    }
    return out;
  }
}

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { RequestMetrics } from './request-metrics.ts';

/** Every metric one process exposes on its admin listener, prefixed `meshgate_`. */
export class Metrics {
  readonly registry = new Registry();
  readonly requests: RequestMetrics;
  readonly localReplies: Counter<'direction' | 'service' | 'code'>;

  constructor(dc: string) {
    collectDefaultMetrics({ register: this.registry, prefix: 'meshgate_process_' });
    this.requests = new RequestMetrics(this.registry, dc);
    this.localReplies = new Counter({
      name: 'meshgate_local_replies_total',
      help: 'Responses meshgate generated itself instead of the upstream, by error code (NO_ROUTE, NO_ENDPOINTS, UPSTREAM_UNAVAILABLE, ...).',
      labelNames: ['direction', 'service', 'code'],
      registers: [this.registry],
    });
  }

  gauge(name: string, help: string, collect: (g: Gauge<string>) => void, labelNames: string[] = []): Gauge<string> {
    return new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect(this: Gauge<string>) {
        collect(this);
      },
    });
  }

  /** A counter, or the one already registered under that name (two subsystems may share one). */
  counter<L extends string>(name: string, help: string, labelNames: L[]): Counter<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing !== undefined) return existing as Counter<L>;
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }
}

// What the resilience layers did, per service. Only incidents are counted here (retries, budget
// exhaustion, overload, breaker transitions, ejections), so prom-client's label hashing stays off
// the common path.
import type { Counter } from 'prom-client';
import type { Metrics } from './metrics.ts';

export class ResilienceMetrics {
  readonly #retries: Counter<'service' | 'condition'>;
  readonly #budget: Counter<'service'>;
  readonly #overload: Counter<'service' | 'limit'>;
  readonly #breakers: Counter<'service' | 'to'>;
  readonly #ejections: Counter<'service'>;
  readonly #splitRequests: Counter<'service' | 'subset'>;
  readonly #splitFallbacks: Counter<'service' | 'subset'>;
  readonly mirrors: Counter<'service' | 'subset' | 'result'>;
  readonly #splitChildren = new Map<string, Map<string, { inc(): void }>>();

  constructor(m: Metrics) {
    this.#retries = m.counter('meshgate_retries_total', 'Retries sent, by service and the condition that caused them.', ['service', 'condition']);
    this.#budget = m.counter('meshgate_retry_budget_exhausted_total', 'Retries not sent because the retry budget was spent.', ['service']);
    this.#overload = m.counter('meshgate_overload_rejections_total', 'Requests answered 503 OVERLOADED (limit=pending) or retries skipped (limit=retries) at a concurrency limit.', ['service', 'limit']);
    this.#breakers = m.counter('meshgate_breaker_transitions_total', 'Endpoint circuit-breaker transitions made by this proxy.', ['service', 'to']);
    this.#ejections = m.counter('meshgate_outlier_ejections_total', 'Endpoints ejected by outlier detection.', ['service']);
    this.#splitRequests = m.counter('meshgate_split_requests_total', "Requests a traffic split sent to each subset (by the split's choice, match rules included).", ['service', 'subset']);
    this.#splitFallbacks = m.counter('meshgate_split_fallbacks_total', 'Requests whose chosen subset had no endpoint, sent to any endpoint of the service instead.', ['service', 'subset']);
    this.mirrors = m.counter('meshgate_mirror_requests_total', 'Shadow copies of requests, by result (sent, dropped at the in-flight bound, skipped: streamed body or no target, failed).', ['service', 'subset', 'result']);
  }

  /** Per request on split services: children resolved once per (service, subset), so no label hashing per call. */
  splitRequest(service: string, subset: string): void {
    let bySubset = this.#splitChildren.get(service);
    if (bySubset === undefined) this.#splitChildren.set(service, (bySubset = new Map()));
    let child = bySubset.get(subset);
    if (child === undefined) bySubset.set(subset, (child = this.#splitRequests.labels(service, subset)));
    child.inc();
  }

  splitFallback(service: string, subset: string): void {
    this.#splitFallbacks.inc({ service, subset });
  }

  retry(service: string, condition: string): void {
    this.#retries.inc({ service, condition });
  }

  budgetExhausted(service: string): void {
    this.#budget.inc({ service });
  }

  overload(service: string, limit: 'pending' | 'retries'): void {
    this.#overload.inc({ service, limit });
  }

  breakerTransition(service: string, to: 'open' | 'closed'): void {
    this.#breakers.inc({ service, to });
  }

  ejection(service: string): void {
    this.#ejections.inc({ service });
  }
}

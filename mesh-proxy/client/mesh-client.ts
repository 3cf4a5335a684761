// The mesh client: how the gateway and every sidecar send a request to a service. Composed as a
// stack, endpoint outward (linkerd2-proxy's push_http_endpoint → concrete → logical):
//
//   logical   the exchange's deadline: the route's timeout, or the caller's remaining deadline
//             if sooner (an expired one is answered 504 at once); the traffic split's subset
//             (traffic/split-picker.ts)                                   (forward)
//   concrete  the service: concurrency limits, available endpoints (breakers, outlier ejection),
//             zone preference, balancer, classified outcomes, budgeted retries  (concrete-service.ts)
//   endpoint  a pooled keep-alive connection to one instance                  (endpoint-pools.ts, attempt.ts)
//
// The request path reads local memory only. Open breakers are shared through the store's breaker
// board, off the request path: published when a breaker here opens, applied when another proxy's does.
import type { EndpointView } from '../admin/endpoints-view.ts';
import type { ServicePolicy } from '../../config/schema.ts';
import type { Endpoint, EndpointSource } from '../discovery/endpoint.ts';
import { statsOf } from '../balancer/create-balancer.ts';
import type { BreakerTransition } from '../resilience/endpoint-breaker.ts';
import { HealthChecker } from '../resilience/health-checker.ts';
import { PeerConnectors } from '../identity/mtls-connector.ts';
import type { WorkloadIdentity } from '../identity/workload-identity.ts';
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import { ResilienceMetrics } from '../observe/resilience-metrics.ts';
import type { BreakerEvent, Store } from '../store/types.ts';
import { ConcreteService, type ServiceContext } from './concrete-service.ts';
import { EndpointPools } from './endpoint-pools.ts';
import type { Exchange } from './exchange.ts';
import { compilePolicy, DEFAULT_POLICY } from './policy.ts';
import type { SplitTable } from '../traffic/split-table.ts';

export interface MeshClientOptions {
  cache: EndpointSource;
  services: Readonly<Record<string, ServicePolicy>>;
  store: Store;
  metrics: Metrics;
  log: Logger;
  /** This proxy's name on the breaker board (its own events are ignored when they come back). */
  origin: string;
  /** The caller's zone, for zone preference. */
  zone: string;
  /** This proxy's mesh identity: endpoints that registered one are reached over mTLS. */
  identity?: WorkloadIdentity;
  /** Traffic splits from the store (absent: every service goes to all its endpoints). */
  splits?: SplitTable;
}

const BREAKER_STATE = { closed: 0, open: 1, 'half-open': 2 } as const;

export class MeshClient implements ServiceContext {
  readonly cache: EndpointSource;
  readonly pools: EndpointPools;
  readonly zone: string;
  readonly metrics: ResilienceMetrics;
  readonly #services = new Map<string, ConcreteService>();
  readonly #configured: ReadonlySet<string>;
  readonly #o: MeshClientOptions;
  readonly #health: HealthChecker[] = [];
  #unwatch: (() => void) | undefined;

  constructor(opts: MeshClientOptions) {
    this.#o = opts;
    this.pools = new EndpointPools(opts.identity ? new PeerConnectors(opts.identity, opts.log) : undefined);
    this.cache = opts.cache;
    this.zone = opts.zone;
    this.metrics = new ResilienceMetrics(opts.metrics);
    for (const [name, p] of Object.entries(opts.services)) this.#services.set(name, new ConcreteService(name, compilePolicy(p), this));
    this.#configured = new Set(Object.keys(opts.services));
    opts.cache.onChange(() => this.#retainPools());
    opts.metrics.gauge(
      'meshgate_breaker_state',
      'Endpoint circuit-breaker state as this proxy sees it: 0 closed, 1 open, 2 half-open.',
      (g) => {
        g.reset();
        for (const svc of this.#services.values()) {
          for (const ep of this.cache.get(svc.name)?.endpoints ?? []) g.set({ service: svc.name, instance: ep.instance.id }, BREAKER_STATE[svc.breakerOf(ep).state]);
        }
      },
      ['service', 'instance'],
    );
    opts.metrics.gauge(
      'meshgate_endpoints_ejected',
      'Endpoints currently ejected by outlier detection or failing active health checks.',
      (g) => {
        g.reset();
        for (const svc of this.#services.values()) {
          let n = 0;
          for (const ep of this.cache.get(svc.name)?.endpoints ?? []) if (svc.outlier.isEjected(ep)) n++;
          g.set({ service: svc.name }, n);
        }
      },
      ['service'],
    );
  }

  /** Subscribes to other proxies' breakers and starts active health checks. */
  async start(): Promise<void> {
    const board = this.#o.store.breakers;
    this.#unwatch = board.watch((ev) => this.#onBoardEvent(ev));
    this.#o.store.onStatus((s) => {
      if (s === 'up') void this.#loadOpenBreakers();
    });
    await this.#loadOpenBreakers();
    for (const svc of this.#services.values()) {
      if (svc.policy.healthCheck) {
        const hc = new HealthChecker(svc, this.cache, this.pools, svc.policy.healthCheck, this.#o.log);
        hc.start();
        this.#health.push(hc);
      }
    }
  }

  /** Whether this service is configured or discovery has ever seen it (unknown → 404, not 503). */
  knows(service: string): boolean {
    return this.#configured.has(service) || this.cache.get(service) !== undefined;
  }

  /** Sends `ex` to `ex.service`; the exchange reports its own end to its owner. */
  forward(ex: Exchange): void {
    const svc = this.service(ex.service);
    // logical: the deadline for the whole exchange, retries included
    if (!ex.startDeadline(ex.timeoutMs || svc.policy.requestTimeoutMs)) return;
    // logical: the traffic split's subset (match rules, then weights)
    const split = this.#o.splits?.get(ex.service);
    if (split !== undefined) {
      ex.split = split;
      ex.subset = split.pick(ex.headers, Math.random());
      this.metrics.splitRequest(ex.service, ex.subset);
    } else ex.split = undefined;
    // concrete → endpoint
    svc.start(ex);
  }

  service(name: string): ConcreteService {
    let s = this.#services.get(name);
    if (s === undefined) {
      s = new ConcreteService(name, DEFAULT_POLICY, this);
      this.#services.set(name, s);
    }
    return s;
  }

  breakerChanged(svc: ConcreteService, ep: Endpoint, t: NonNullable<BreakerTransition>): void {
    const log = this.#o.log;
    if (t.to === 'open') log.warn({ service: svc.name, instance: ep.instance.id, untilMs: t.untilMs - Date.now() }, 'circuit breaker opened');
    else log.info({ service: svc.name, instance: ep.instance.id }, 'circuit breaker closed');
    if (!svc.policy.breaker.shared || this.#o.store.status !== 'up') return; // the local breaker still acts
    const board = this.#o.store.breakers;
    const done =
      t.to === 'open'
        ? board.publishOpen(svc.name, ep.instance.id, Math.max(1, t.untilMs - Date.now()), this.#o.origin)
        : board.publishClose(svc.name, ep.instance.id, this.#o.origin);
    done.catch((err: Error) => log.debug({ err: err.message }, 'could not share a breaker change'));
  }

  /** The admin API's view: every endpoint with its latency estimate, load, breaker and ejection. */
  describe(): Record<string, EndpointView[]> {
    const out: Record<string, EndpointView[]> = {};
    const now = Date.now();
    for (const s of this.cache.services()) {
      const svc = this.service(s.service);
      out[s.service] = s.endpoints.map((ep) => {
        const stats = statsOf(ep).ewma;
        const b = svc.breakerOf(ep);
        const ejectedUntil = svc.outlier.ejectedUntil(ep);
        return {
          id: ep.instance.id,
          address: ep.instance.address,
          port: ep.instance.port,
          dc: ep.instance.dc,
          zone: ep.instance.zone,
          metadata: ep.instance.metadata,
          ewmaMs: Math.round(stats.rttMs * 100) / 100,
          inFlight: stats.pending,
          breaker: { state: b.state, openForMs: b.openUntil > now ? b.openUntil - now : 0, trips: b.trips },
          ejected:
            ejectedUntil > now
              ? { forMs: Number.isFinite(ejectedUntil) ? ejectedUntil - now : null, reason: Number.isFinite(ejectedUntil) ? 'outlier' : 'health-check', times: svc.outlier.ejections(ep) }
              : null,
        };
      });
    }
    return out;
  }

  async close(): Promise<void> {
    this.#unwatch?.();
    for (const hc of this.#health) hc.stop();
    await this.pools.close();
  }

  #onBoardEvent(ev: BreakerEvent): void {
    if (ev.origin === this.#o.origin) return;
    const svc = this.#services.get(ev.service);
    if (svc === undefined || !svc.policy.breaker.shared) return;
    if (ev.kind === 'open') svc.remoteOpen(ev.id, Date.now() + ev.remainingMs);
    else svc.remoteClose(ev.id);
  }

  async #loadOpenBreakers(): Promise<void> {
    try {
      for (const b of await this.#o.store.breakers.listOpen()) {
        const svc = this.#services.get(b.service);
        if (svc?.policy.breaker.shared) svc.remoteOpen(b.id, Date.now() + b.remainingMs);
      }
    } catch (err) {
      this.#o.log.debug({ err: (err as Error).message }, 'could not read open breakers from the store');
    }
  }

  #retainPools(): void {
    const live = new Set<string>();
    for (const s of this.cache.services()) for (const e of s.endpoints) live.add(e.poolKey);
    this.pools.retain(live);
  }
}

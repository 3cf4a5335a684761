// Optional active health checks for one service (Envoy's HTTP and gRPC health checkers): every
// interval each endpoint gets a GET of the configured path, or a grpc.health.v1 Check, through its
// connection pool (health-probe.ts); after enough consecutive
// failures it is marked unhealthy (ejected, within the outlier cap) until enough checks pass.
import type { Endpoint, EndpointSource } from '../discovery/endpoint.ts';
import type { EndpointPools } from '../client/endpoint-pools.ts';
import type { CompiledPolicy } from '../client/policy.ts';
import type { Logger } from '../observe/log.ts';
import type { OutlierDetector } from './outlier-detector.ts';
import { probe } from './health-probe.ts';

interface Checked {
  readonly name: string;
  readonly policy: CompiledPolicy;
  readonly outlier: OutlierDetector<Endpoint>;
  /** An endpoint's availability changed outside the request path. */
  availabilityChanged(): void;
}

type HealthPolicy = NonNullable<CompiledPolicy['healthCheck']>;

export class HealthChecker {
  readonly #svc: Checked;
  readonly #cache: EndpointSource;
  readonly #pools: EndpointPools;
  readonly #p: HealthPolicy;
  readonly #log: Logger;
  readonly #streaks = new WeakMap<Endpoint, { ok: number; failed: number; healthy: boolean }>();
  #timer: NodeJS.Timeout | undefined;

  constructor(svc: Checked, cache: EndpointSource, pools: EndpointPools, policy: HealthPolicy, log: Logger) {
    this.#svc = svc;
    this.#cache = cache;
    this.#pools = pools;
    this.#p = policy;
    this.#log = log;
  }

  start(): void {
    this.#timer = setInterval(() => void this.checkAll(), this.#p.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async checkAll(): Promise<void> {
    const members = this.#cache.get(this.#svc.name)?.endpoints ?? [];
    await Promise.all(members.map((ep) => this.#check(ep, members)));
  }

  async #check(ep: Endpoint, members: readonly Endpoint[]): Promise<void> {
    const ok = await probe(this.#pools.get(ep, this.#svc.policy), { path: this.#p.path, timeoutMs: this.#p.timeoutMs, grpcService: this.#p.grpcService, authority: this.#svc.name });
    let s = this.#streaks.get(ep);
    if (s === undefined) this.#streaks.set(ep, (s = { ok: 0, failed: 0, healthy: true }));
    if (ok) {
      s.ok++;
      s.failed = 0;
    } else {
      s.failed++;
      s.ok = 0;
    }
    if (s.healthy && s.failed >= this.#p.unhealthyThreshold) {
      s.healthy = false;
      this.#svc.outlier.setHealthCheck(ep, false, members);
      this.#svc.availabilityChanged();
      this.#log.warn({ service: this.#svc.name, instance: ep.instance.id }, 'endpoint failed its health checks');
    } else if (!s.healthy && s.ok >= this.#p.healthyThreshold) {
      s.healthy = true;
      this.#svc.outlier.setHealthCheck(ep, true, members);
      this.#log.info({ service: this.#svc.name, instance: ep.instance.id }, 'endpoint passes its health checks again');
    }
  }
}

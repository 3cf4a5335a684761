// The mesh client: how the gateway and every sidecar send a request to a service. Composed as a
// stack, endpoint outward (linkerd2-proxy's push_http_endpoint → concrete → logical):
//
//   logical   route / caller policy: the deadline for this request            (forward)
//   concrete  the service: its endpoints from the local discovery cache and a
//             balancer; fail fast with NO_ENDPOINTS when there are none         (#concrete, pick)
//   endpoint  a pooled keep-alive connection to one instance                   (dispatchExchange)
//
// Nothing here touches the store: the request path reads local memory only.
import type { Dispatcher } from 'undici';
import type { ServicePolicy } from '../../config/schema.ts';
import type { EndpointCache } from '../discovery/endpoint-cache.ts';
import { RoundRobin } from '../balancer/round-robin.ts';
import { EndpointPools } from './endpoint-pools.ts';
import type { Exchange } from './exchange.ts';
import { compilePolicy, DEFAULT_POLICY, type CompiledPolicy } from './policy.ts';

class ConcreteService {
  readonly name: string;
  readonly policy: CompiledPolicy;
  readonly balancer = new RoundRobin();

  constructor(name: string, policy: CompiledPolicy) {
    this.name = name;
    this.policy = policy;
  }
}

export interface MeshClientOptions {
  cache: EndpointCache;
  services: Readonly<Record<string, ServicePolicy>>;
}

export class MeshClient {
  readonly #cache: EndpointCache;
  readonly #concrete = new Map<string, ConcreteService>();
  readonly #pools = new EndpointPools();

  constructor(opts: MeshClientOptions) {
    this.#cache = opts.cache;
    for (const [name, p] of Object.entries(opts.services)) this.#concrete.set(name, new ConcreteService(name, compilePolicy(p)));
    opts.cache.onChange(() => this.#retainPools());
  }

  /** Whether discovery has ever seen this service (an unknown name is a 404, not a 503). */
  knows(service: string): boolean {
    return this.#concrete.has(service) || this.#cache.get(service) !== undefined;
  }

  policyOf(service: string): CompiledPolicy {
    return this.#service(service).policy;
  }

  /** Sends `ex` to one endpoint of `ex.service`; the exchange reports its own end to its owner. */
  forward(ex: Exchange): void {
    // logical
    const svc = this.#service(ex.service);
    if (ex.timeoutMs === 0) ex.timeoutMs = svc.policy.requestTimeoutMs;
    // concrete
    const endpoints = this.#cache.get(ex.service)?.endpoints;
    if (endpoints === undefined || endpoints.length === 0) {
      ex.fail('NO_ENDPOINTS', `service "${ex.service}" has no available endpoints`);
      return;
    }
    const ep = svc.balancer.pick(endpoints);
    ex.endpoint = ep;
    // endpoint
    dispatchExchange(this.#pools.get(ep, svc.policy), ex);
  }

  async close(): Promise<void> {
    await this.#pools.close();
  }

  #service(name: string): ConcreteService {
    let s = this.#concrete.get(name);
    if (s === undefined) {
      s = new ConcreteService(name, DEFAULT_POLICY);
      this.#concrete.set(name, s);
    }
    return s;
  }

  #retainPools(): void {
    const live = new Set<string>();
    for (const s of this.#cache.services()) for (const e of s.endpoints) live.add(e.authority);
    this.#pools.retain(live);
  }
}

/** Hands an exchange to a connection pool; the exchange is undici's handler for the response. */
export function dispatchExchange(pool: Dispatcher, ex: Exchange): void {
  const opts: Dispatcher.DispatchOptions = {
    path: ex.path,
    method: ex.req.method as Dispatcher.HttpMethod,
    headers: ex.headers,
    body: ex.hasBody ? ex.req : null,
    headersTimeout: ex.timeoutMs,
    bodyTimeout: ex.timeoutMs,
  };
  try {
    pool.dispatch(opts, ex as unknown as Dispatcher.DispatchHandler);
  } catch (err) {
    // undici rejects some requests synchronously (e.g. characters it will not put on the wire).
    ex.fail('BAD_REQUEST', `request cannot be forwarded: ${(err as Error).message}`);
  }
}

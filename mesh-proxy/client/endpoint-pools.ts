// One keep-alive connection pool per endpoint (undici Pool). Pools of endpoints that left the
// registry are closed gracefully: requests already on them finish first.
import { Pool } from 'undici';
import type { Endpoint } from '../discovery/endpoint.ts';
import type { CompiledPolicy } from './policy.ts';

export class EndpointPools {
  readonly #pools = new Map<string, Pool>();

  get(ep: Endpoint, policy: CompiledPolicy): Pool {
    let pool = this.#pools.get(ep.authority);
    if (pool === undefined) {
      pool = createPool(ep.origin, policy);
      this.#pools.set(ep.authority, pool);
    }
    return pool;
  }

  /** Closes the pools of every authority not in `live`. */
  retain(live: ReadonlySet<string>): void {
    for (const [authority, pool] of this.#pools) {
      if (!live.has(authority)) {
        this.#pools.delete(authority);
        void pool.close().catch(() => {});
      }
    }
  }

  async close(): Promise<void> {
    const all = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled(all.map((p) => p.close()));
  }
}

export function createPool(origin: string, policy: CompiledPolicy): Pool {
  return new Pool(origin, {
    connections: policy.connections,
    pipelining: 1,
    connectTimeout: policy.connectTimeoutMs,
    keepAliveTimeout: policy.keepAliveMs,
    // The per-request timeouts are set on each dispatch from the route and service policy.
    headersTimeout: policy.requestTimeoutMs,
    bodyTimeout: policy.requestTimeoutMs,
  });
}

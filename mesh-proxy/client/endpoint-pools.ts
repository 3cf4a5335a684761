// One keep-alive connection pool per endpoint (undici Pool). Pools of endpoints that left the
// registry are closed gracefully: requests already on them finish first.
// An endpoint that registered a SPIFFE identity is reached over mTLS (its pool's connector verifies
// that identity); the others over plain HTTP.
import type { buildConnector as Connector, Pool as PoolTypes } from 'undici';
import { buildConnector, Pool } from './undici-parts.ts';
import type { Endpoint } from '../discovery/endpoint.ts';
import { tlsRequiredConnector, type PeerConnectors } from '../identity/mtls-connector.ts';
import type { CompiledPolicy } from './policy.ts';

export class EndpointPools {
  readonly #pools = new Map<string, Pool>();
  /** Connectors for connections outside the pools (WebSocket tunnels), same checks as the pools'. */
  readonly #connectors = new Map<string, Connector.connector>();
  readonly #tls: PeerConnectors | undefined;

  constructor(tls?: PeerConnectors) {
    this.#tls = tls;
  }

  get(ep: Endpoint, policy: CompiledPolicy): Pool {
    let pool = this.#pools.get(ep.poolKey);
    if (pool === undefined) {
      if (ep.instance.identity === undefined) pool = createPool(ep.origin, policy);
      else {
        const connect = this.#tls !== undefined ? this.#tls.forEndpoint(ep, policy.connectTimeoutMs) : tlsRequiredConnector(ep);
        pool = createPool(ep.origin, policy, connect);
      }
      this.#pools.set(ep.poolKey, pool);
    }
    return pool;
  }

  /** Connects one socket of its own to `ep` (TCP, or mTLS checking the registered identity). */
  connector(ep: Endpoint, policy: CompiledPolicy): Connector.connector {
    let c = this.#connectors.get(ep.poolKey);
    if (c === undefined) {
      if (ep.instance.identity === undefined) c = buildConnector({ timeout: policy.connectTimeoutMs });
      else c = this.#tls !== undefined ? this.#tls.forEndpoint(ep, policy.connectTimeoutMs) : tlsRequiredConnector(ep);
      this.#connectors.set(ep.poolKey, c);
    }
    return c;
  }

  /** Closes the pools of every pool key (Endpoint.poolKey) not in `live`. */
  retain(live: ReadonlySet<string>): void {
    for (const key of this.#connectors.keys()) if (!live.has(key)) this.#connectors.delete(key);
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

export function createPool(origin: string, policy: CompiledPolicy, connect?: PoolTypes.Options['connect']): Pool {
  return new Pool(origin, {
    // A custom connector applies its own connect timeout.
    ...(connect !== undefined ? { connect } : {}),
    connections: policy.connections,
    pipelining: 1,
    connectTimeout: policy.connectTimeoutMs,
    keepAliveTimeout: policy.keepAliveMs,
    // The per-request timeouts are set on each dispatch from the route and service policy.
    headersTimeout: policy.requestTimeoutMs,
    bodyTimeout: policy.requestTimeoutMs,
  });
}

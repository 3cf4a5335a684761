// One connection pool per endpoint: an H1Pool of keep-alive connections for HTTP/1.1, an H2Pool of
// multiplexed sessions for HTTP/2. Pools of endpoints that left the registry are closed gracefully: requests
// already on them finish first.
// An endpoint that registered a SPIFFE identity is reached over mTLS (its pool's connector verifies
// that identity); the others over plain TCP (or TLS for a service configured `protocol: h2`).
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { buildConnector as Connector } from 'undici';
import { buildConnector } from './undici-parts.ts';
import type { Endpoint } from '../discovery/endpoint.ts';
import { tlsRequiredConnector, tlsRequiredSocket, type PeerConnectors } from '../identity/mtls-connector.ts';
import { H1Pool, type H1DispatchOptions } from './h1-pool.ts';
import { H2Pool } from './h2-pool.ts';
import type { CompiledPolicy } from './policy.ts';

/** What a try is dispatched on: an H1Pool or an H2Pool. */
export type UpstreamPool = H1Pool | H2Pool;
/** One request as either pool takes it (the two option shapes are the same). */
export type UpstreamDispatch = H1DispatchOptions;

/** How to reach an endpoint: its service's configured protocol, else what the instance registered. */
export function endpointProtocol(ep: Endpoint, policy: CompiledPolicy): 'http1' | 'h2' | 'h2c' {
  const p = policy.protocol ?? (ep.instance.protocol === 'h2' ? 'h2c' : 'http1');
  // Over a mesh hop (mTLS) HTTP/2 is negotiated by ALPN whichever variant the service names.
  if (p !== 'http1' && ep.instance.identity !== undefined) return 'h2';
  return p;
}

export class EndpointPools {
  readonly #pools = new Map<string, UpstreamPool>();
  /** Connectors for connections outside the pools (WebSocket tunnels), same checks as the pools'. */
  readonly #connectors = new Map<string, Connector.connector>();
  readonly #tls: PeerConnectors | undefined;

  constructor(tls?: PeerConnectors) {
    this.#tls = tls;
  }

  get(ep: Endpoint, policy: CompiledPolicy): UpstreamPool {
    let pool = this.#pools.get(ep.poolKey);
    if (pool === undefined) {
      const protocol = endpointProtocol(ep, policy);
      if (protocol !== 'http1') pool = this.#h2Pool(ep, policy, protocol);
      else if (ep.instance.identity === undefined) pool = createPool(ep.origin, policy);
      else {
        const connect = this.#tls !== undefined ? this.#tls.forEndpoint(ep, policy.connectTimeoutMs) : tlsRequiredConnector(ep);
        pool = createPool(ep.origin, policy, connect);
      }
      this.#pools.set(ep.poolKey, pool);
    }
    return pool;
  }

  #h2Pool(ep: Endpoint, policy: CompiledPolicy, protocol: 'h2' | 'h2c'): H2Pool {
    const { address: host, port } = ep.instance;
    let connect: (() => Duplex) | undefined;
    if (protocol === 'h2c') connect = undefined;
    else if (ep.instance.identity !== undefined) connect = this.#tls !== undefined ? this.#tls.h2Socket(ep) : tlsRequiredSocket(ep);
    // A TLS upstream outside the mesh: the system's trust store, plus the service's tls.ca.
    else {
      const servername = policy.tls?.serverName ?? (isIp(host) ? undefined : host);
      const ca = policy.tls?.ca !== undefined ? [...tls.rootCertificates, policy.tls.ca] : undefined;
      connect = () => tls.connect({ host, port, ALPNProtocols: ['h2'], servername, ...(ca ? { ca } : {}) });
    }
    return createH2Pool(host, port, policy, connect);
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

function isIp(host: string): boolean {
  return /^[\d.]+$|:/.test(host);
}

/** HTTP/2 sessions to one address; `connect` makes TLS sockets (absent: h2c). */
export function createH2Pool(host: string, port: number, policy: CompiledPolicy, connect?: () => Duplex): H2Pool {
  return new H2Pool({
    scheme: connect === undefined ? 'http' : 'https',
    host,
    port,
    // Streams multiplex: a few sessions carry what HTTP/1.1 needs many connections for.
    maxSessions: Math.max(1, Math.min(policy.connections, 4)),
    connectTimeoutMs: policy.connectTimeoutMs,
    idleMs: policy.keepAliveMs,
    ...(connect !== undefined ? { connect } : {}),
  });
}

/** HTTP/1.1 connections to `origin`; `connect` (mTLS) applies its own connect timeout. */
export function createPool(origin: string, policy: CompiledPolicy, connect?: Connector.connector): H1Pool {
  const url = new URL(origin);
  return new H1Pool({
    host: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    protocol: url.protocol === 'https:' ? 'https:' : 'http:',
    maxConnections: policy.connections,
    idleMs: policy.keepAliveMs,
    // The per-request timeouts are set on each dispatch from the route and service policy.
    connect: connect ?? buildConnector({ timeout: policy.connectTimeoutMs }),
  });
}

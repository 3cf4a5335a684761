// Wires datacenter failover into a gateway: the peers (other datacenters' edges) as `service@dc`
// endpoints of the gateway's mesh client, the failover plans and their health polling, and the
// peer listener other datacenters fail over to.
import type { GatewayConfig, ServicePolicy } from '../../config/schema.ts';
import { parseDuration } from '../../config/duration.ts';
import type { MeshClient } from '../../mesh-proxy/client/mesh-client.ts';
import type { EndpointSource } from '../../mesh-proxy/discovery/endpoint.ts';
import { ProxyListener } from '../../mesh-proxy/http/proxy-listener.ts';
import { createMtlsServer } from '../../mesh-proxy/identity/mtls-server.ts';
import type { WorkloadIdentity } from '../../mesh-proxy/identity/workload-identity.ts';
import type { Logger } from '../../mesh-proxy/observe/log.ts';
import type { Metrics } from '../../mesh-proxy/observe/metrics.ts';
import type { EdgeRouter } from '../edge-router.ts';
import { CompositeSource } from './composite-source.ts';
import { localHealth, PeerHealthPoller } from './dc-health.ts';
import { DatacenterFailover, withPeerServices } from './dc-router.ts';
import { PeerEdges, type PeerDatacenter } from './peer-edges.ts';
import { PeerRouter } from './peer-router.ts';
import type { AddressInfo } from 'node:net';

/** The configured peers; an identity not given is this gateway's own with the same service name. */
export function peerDatacenters(config: GatewayConfig): PeerDatacenter[] {
  const mesh = config.mesh;
  if (config.datacenters === undefined || mesh === undefined) return [];
  const own = `spiffe://${mesh.trustDomain}/ns/${mesh.namespace}/sa/${mesh.service ?? config.node.name}`;
  return config.datacenters.peers.map((p) => ({ dc: p.dc, address: p.address, port: p.port, identity: p.identity ?? own }));
}

/** What the mesh client reads and knows when the gateway has peers. */
export function clientInputs(config: GatewayConfig, cache: EndpointSource): { source: EndpointSource; services: Record<string, ServicePolicy>; peers: PeerDatacenter[]; edges: PeerEdges | undefined } {
  const peers = peerDatacenters(config);
  if (peers.length === 0) return { source: cache, services: config.services, peers, edges: undefined };
  const edges = new PeerEdges(peers);
  return { source: new CompositeSource(cache, edges), services: withPeerServices(config.services, peers), peers, edges };
}

export interface DatacenterDeps {
  cache: EndpointSource & { onChange(listener: (service: string) => void): void };
  client: MeshClient;
  router: EdgeRouter;
  identity: WorkloadIdentity | undefined;
  metrics: Metrics;
  log: Logger;
  peers: PeerDatacenter[];
}

export class Datacenters {
  readonly failover: DatacenterFailover | undefined;
  readonly #listener: ProxyListener | undefined;
  readonly #config: GatewayConfig;
  readonly #d: DatacenterDeps;
  address: AddressInfo | undefined;

  constructor(config: GatewayConfig, d: DatacenterDeps) {
    this.#config = config;
    this.#d = d;
    const dcs = config.datacenters;
    if (dcs !== undefined && d.peers.length > 0 && d.identity !== undefined) {
      const f = dcs.failover;
      const checkEveryMs = parseDuration(f.checkEvery);
      this.failover = new DatacenterFailover({
        dc: config.node.dc,
        services: Object.keys(config.services),
        peers: d.peers,
        policy: { threshold: f.threshold, hysteresis: f.hysteresis, failbackAfterMs: parseDuration(f.failbackAfter) },
        checkEveryMs,
        cache: d.cache,
        client: d.client,
        poller: new PeerHealthPoller(d.peers, d.identity, Math.max(250, checkEveryMs), d.log.child({ component: 'datacenters' })),
        metrics: d.metrics,
        log: d.log.child({ component: 'datacenters' }),
      });
      d.router.failover = this.failover;
      const failover = this.failover;
      d.cache.onChange(() => failover.update());
    }
    if (config.listeners.peer !== undefined && d.identity !== undefined) {
      const allowed = new Set(d.peers.map((p) => p.identity));
      const dc = config.node.dc;
      const health = () => ({ dc, services: Object.fromEntries(Object.keys(config.services).map((s) => [s, localHealth(s, dc, d.cache, d.client)])) });
      this.#listener = new ProxyListener({
        direction: 'peer',
        edge: false,
        accessLog: config.log.access,
        log: d.log,
        metrics: d.metrics,
        router: new PeerRouter(d.router, dc, allowed, health, d.log),
      });
    }
  }

  async start(): Promise<void> {
    const peer = this.#config.listeners.peer;
    if (this.#listener !== undefined && peer !== undefined) this.address = await this.#listener.listen(peer.address, peer.port, createMtlsServer(this.#d.identity!, this.#d.log));
    // The first poll runs in the background: a peer that is down must not hold this gateway's start.
    void this.failover?.start();
  }

  async stop(drainMs: number): Promise<void> {
    this.failover?.stop();
    await this.#listener?.close(drainMs);
  }
}

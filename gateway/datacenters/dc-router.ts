// Failover between datacenters at the edge (the logical layer's datacenter choice): each request
// to a service goes to this datacenter, or to the peer its ServiceFailover plan names, in the
// plan's proportion. A request the local side could not serve (no endpoints, overloaded, or
// unreachable for an idempotent one) is sent once to a healthy peer instead of failing. Requests
// that arrived from another datacenter are never sent on (no loops): the peer listener marks them.
import type { ServicePolicy } from '../../config/schema.ts';
import type { Exchange, FailoverRescuer } from '../../mesh-proxy/client/exchange.ts';
import type { MeshClient } from '../../mesh-proxy/client/mesh-client.ts';
import type { MeshErrorCode } from '../../mesh-proxy/client/errors.ts';
import type { EndpointSource } from '../../mesh-proxy/discovery/endpoint.ts';
import { splitAbsoluteForm } from '../../mesh-proxy/http/host.ts';
import type { Logger } from '../../mesh-proxy/observe/log.ts';
import type { Metrics } from '../../mesh-proxy/observe/metrics.ts';
import { localHealth, type PeerHealthPoller } from './dc-health.ts';
import { ServiceFailover, healthyShare, type FailoverPolicy, type Health } from './failover.ts';
import { remoteName, type PeerDatacenter } from './peer-edges.ts';

/** Names the datacenter a request was forwarded from; the receiving edge refuses one naming itself. */
export const DC_HOP_HEADER = 'x-meshgate-dc-hop';

/** Local failures after which a request may still be served elsewhere (nothing committed to the client). */
const RESCUABLE = new Set<MeshErrorCode>(['NO_ENDPOINTS', 'OVERLOADED', 'UPSTREAM_UNAVAILABLE']);

/** Each configured service also as `service@dc` per peer: its policy, reached through the peer's edge. */
export function withPeerServices(services: Readonly<Record<string, ServicePolicy>>, peers: readonly PeerDatacenter[]): Record<string, ServicePolicy> {
  const out: Record<string, ServicePolicy> = { ...services };
  for (const [name, p] of Object.entries(services)) {
    for (const peer of peers) {
      // The peer edge picks the protocol toward its instances; the hop itself is HTTP/2 over mTLS.
      const { protocol: _protocol, healthCheck: _hc, tls: _tls, ...rest } = p;
      out[remoteName(name, peer.dc)] = rest as ServicePolicy;
    }
  }
  return out;
}

export interface DatacenterFailoverOptions {
  dc: string;
  services: readonly string[];
  peers: readonly PeerDatacenter[];
  policy: FailoverPolicy;
  checkEveryMs: number;
  cache: EndpointSource;
  client: MeshClient;
  poller: PeerHealthPoller;
  metrics: Metrics;
  log: Logger;
}

export class DatacenterFailover implements FailoverRescuer {
  readonly dc: string;
  readonly #o: DatacenterFailoverOptions;
  readonly #failovers = new Map<string, ServiceFailover>();
  readonly #sent;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #started = false;

  constructor(o: DatacenterFailoverOptions) {
    this.#o = o;
    this.dc = o.dc;
    for (const s of o.services) this.#failovers.set(s, new ServiceFailover(s, o.policy));
    this.#sent = o.metrics.counter('meshgate_dc_requests_total', 'Requests an edge sent to a peer datacenter, by service, datacenter and why (plan: the failover plan chose it; rescue: the local side could not serve it).', [
      'service',
      'dc',
      'reason',
    ]);
    o.metrics.gauge(
      'meshgate_dc_local_share',
      "Share of a service's new requests this edge keeps in its own datacenter (1 unless failing over).",
      (g) => {
        g.reset();
        for (const f of this.#failovers.values()) g.set({ service: f.service }, f.plan.localShare);
      },
      ['service'],
    );
    o.metrics.gauge(
      'meshgate_dc_healthy_endpoints',
      'Healthy endpoints of a service per datacenter, as this edge sees them (peers: as their edges report).',
      (g) => {
        g.reset();
        for (const s of this.#failovers.keys()) {
          g.set({ service: s, dc: o.dc }, localHealth(s, o.dc, o.cache, o.client).healthy);
          for (const p of o.poller.states) g.set({ service: s, dc: p.dc }, p.services[s]?.healthy ?? 0);
        }
      },
      ['service', 'dc'],
    );
    o.metrics.gauge('meshgate_dc_peer_up', 'Whether a peer datacenter edge answered its last health poll.', (g) => {
      g.reset();
      for (const p of o.poller.states) g.set({ dc: p.dc }, p.up ? 1 : 0);
    }, ['dc']);
  }

  async start(): Promise<void> {
    // Plans are made from a loaded endpoint view only: before start, an empty cache would read as
    // "no local instance" and shift traffic away for failbackAfter.
    this.#started = true;
    await this.#tick();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  async #tick(): Promise<void> {
    await this.#o.poller.pollAll();
    this.update();
    if (!this.#stopped) {
      this.#timer = setTimeout(() => void this.#tick(), this.#o.checkEveryMs);
      this.#timer.unref();
    }
  }

  /** Recomputes every service's plan (also called when local endpoints change). */
  update(now = Date.now()): void {
    if (!this.#started) return;
    const o = this.#o;
    for (const f of this.#failovers.values()) {
      const local = localHealth(f.service, o.dc, o.cache, o.client);
      const peers = o.poller.states.map((p) => ({ dc: p.dc, health: p.up ? p.services[f.service] : undefined }));
      const before = f.plan;
      if (f.update(local, peers, now)) {
        const plan = f.plan;
        const fields = { service: f.service, localHealthy: local.healthy, localTotal: local.total, localShare: round(plan.localShare), peer: plan.peer ?? null, mode: plan.mode };
        // Traffic moving is worth a warning; a change of standby peer alone is not.
        if (plan.localShare !== before.localShare || plan.mode !== before.mode) o.log.warn(fields, 'datacenter failover plan changed');
        else o.log.info(fields, 'datacenter failover standby changed');
      }
    }
  }

  /** The edge router's last step: this datacenter's mesh client, or a peer's edge. */
  forward(ex: Exchange): void {
    const f = this.#failovers.get(ex.service);
    const dc = f?.pick(Math.random());
    if (dc === undefined) {
      ex.failover = this;
      this.#o.client.forward(ex);
      return;
    }
    this.#toPeer(ex, dc, 'plan');
  }

  /** Exchange.fail() asks before answering a local failure: true when a peer took the request. */
  rescue(ex: Exchange, code: MeshErrorCode): boolean {
    if (!RESCUABLE.has(code) || ex.upgrade !== undefined) return false;
    // Only what cannot have been half-processed: nothing reached an upstream, or the method is safe to repeat.
    const safe = code !== 'UPSTREAM_UNAVAILABLE' || ex.idempotent || ex.allowNonIdempotent;
    const replayable = !ex.streamedBody || ex.tries === 0;
    if (!safe || !replayable || ex.remainingMs() < 1) return false;
    const f = this.#failovers.get(ex.service);
    const peer = f === undefined ? undefined : this.#firstHealthyPeer(f.service);
    if (peer === undefined) return false;
    ex.resetForRescue();
    this.#toPeer(ex, peer, 'rescue');
    return true;
  }

  #firstHealthyPeer(service: string): string | undefined {
    for (const p of this.#o.poller.states) if (p.up && (p.services[service]?.healthy ?? 0) > 0) return p.dc;
    return undefined;
  }

  #toPeer(ex: Exchange, dc: string, reason: 'plan' | 'rescue'): void {
    this.#sent.inc({ service: ex.service, dc, reason });
    // The peer edge routes the request itself: it gets the target as the client sent it.
    const target = ex.req.url ?? '/';
    ex.path = target.charCodeAt(0) === 47 ? target : (splitAbsoluteForm(target)?.path ?? '/');
    ex.headers.push(DC_HOP_HEADER, this.dc);
    ex.service = remoteName(ex.service, dc);
    this.#o.client.forward(ex);
  }

  /** Where a request to `service` would go now, and why (meshgate explain). */
  explain(service: string): { dc: string; local: boolean; localShare: number; mode: string; why: string } {
    const o = this.#o;
    const f = this.#failovers.get(service);
    const local = localHealth(service, o.dc, o.cache, o.client);
    const pct = (x: number) => `${Math.round(x * 100)}%`;
    const healthy = `${local.healthy}/${local.total} local endpoints healthy`;
    if (f === undefined) return { dc: o.dc, local: true, localShare: 1, mode: 'local', why: `${service} is not a configured service: no failover` };
    const plan = f.plan;
    if (plan.peer === undefined) {
      const why = plan.mode === 'local' ? `${healthy} (threshold ${pct(o.policy.threshold)}); no peer has healthy endpoints to stand by` : `${healthy}, below the threshold, but no peer datacenter has healthy endpoints: everything stays local`;
      return { dc: o.dc, local: true, localShare: 1, mode: plan.mode, why };
    }
    if (plan.mode === 'local') return { dc: o.dc, local: true, localShare: 1, mode: 'local', why: `${healthy}, at or above the ${pct(o.policy.threshold)} threshold: all local (standby ${plan.peer})` };
    const back = Math.min(1, o.policy.threshold + o.policy.hysteresis);
    const local2 = plan.localShare >= 0.5;
    return {
      dc: local2 ? o.dc : plan.peer,
      local: local2,
      localShare: plan.localShare,
      mode: plan.mode,
      why: `${healthy}: failing over, ${pct(plan.localShare)} of requests stay local and ${pct(1 - plan.localShare)} go to ${plan.peer}; back to all local at ${pct(back)} healthy for ${o.policy.failbackAfterMs / 1000} s`,
    };
  }

  /** The admin API's view (GET /datacenters). */
  describe(): object {
    const o = this.#o;
    const services: Record<string, object> = {};
    for (const f of this.#failovers.values()) {
      const local = localHealth(f.service, o.dc, o.cache, o.client);
      services[f.service] = {
        mode: f.plan.mode,
        localShare: round(f.plan.localShare),
        failoverTo: f.plan.peer ?? null,
        datacenters: [
          { dc: o.dc, local: true, ...local, healthyShare: round(healthyShare(local)) },
          ...o.poller.states.map((p) => {
            const h: Health | undefined = p.up ? p.services[f.service] : undefined;
            return { dc: p.dc, local: false, reachable: p.up, healthy: h?.healthy ?? 0, total: h?.total ?? 0, healthyShare: round(h ? healthyShare(h) : 0) };
          }),
        ],
      };
    }
    return {
      dc: o.dc,
      policy: { threshold: o.policy.threshold, hysteresis: o.policy.hysteresis, failbackAfterMs: o.policy.failbackAfterMs },
      peers: o.poller.states.map((p) => ({ dc: p.dc, reachable: p.up, lastSeen: p.lastSeen ? new Date(p.lastSeen).toISOString() : null, error: p.error ?? null })),
      services,
    };
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

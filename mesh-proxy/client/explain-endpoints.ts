// The concrete layer's choice, explained without making it: which endpoints are candidates now
// (subset, breakers, ejections, zone preference) and which one the balancer would most likely
// take. Read-only: nothing here touches breakers, balancer state or statistics.
import { statsOf } from '../balancer/create-balancer.ts';
import { preferZone } from '../balancer/zone-filter.ts';
import type { Endpoint } from '../discovery/endpoint.ts';
import type { CompiledSplit } from '../traffic/split-picker.ts';
import type { MeshClient } from './mesh-client.ts';

export interface EndpointExplanation {
  readonly balancer: string;
  readonly candidates: number;
  readonly likely: string | null;
  readonly why: string;
  readonly endpoints: ReadonlyArray<{
    id: string;
    address: string;
    dc: string;
    zone: string;
    metadata: Record<string, string>;
    candidate: boolean;
    state: string;
    breaker: string;
    ewmaMs: number;
    inFlight: number;
  }>;
}

export function explainEndpoints(client: MeshClient, service: string, split: CompiledSplit | undefined, subset: string): EndpointExplanation {
  const svc = client.service(service);
  const policy = svc.policy;
  let all: readonly Endpoint[] = client.cache.get(service)?.endpoints ?? [];
  const known = all;
  let note = '';
  if (split !== undefined && all.length > 0) {
    const inSubset = split.endpointsOf(all, subset);
    if (inSubset.length > 0) all = inSubset;
    else note = `subset ${subset} has no endpoint, so all of the service's take its share; `;
  }
  const now = Date.now();
  const available = all.filter((ep) => svc.breakerOf(ep).state !== 'open' && !svc.outlier.isEjected(ep));
  const candidates = policy.zone.prefer ? preferZone(available, client.zone, policy.zone.minHealthy, policy.zone.minShare) : available;
  const set = new Set(candidates);
  const loadOf = (ep: Endpoint) => (policy.balancer === 'least-request' ? statsOf(ep).ewma.pending : statsOf(ep).ewma.load());
  let likely: Endpoint | undefined;
  for (const ep of candidates) if (likely === undefined || loadOf(ep) < loadOf(likely)) likely = ep;
  let why: string;
  if (candidates.length === 0) why = `${note}no endpoint is available: the request would be answered 503 NO_ENDPOINTS`;
  else if (candidates.length === 1) why = `${note}the only candidate`;
  else if (policy.balancer === 'round-robin') why = `${note}round robin among ${candidates.length} candidates`;
  else if (policy.balancer === 'least-request') why = `${note}the fewest requests in flight among ${candidates.length} candidates`;
  else why = `${note}P2C over peak-EWMA: two of ${candidates.length} candidates at random, the less loaded wins; the least loaded now is the likeliest`;
  if (candidates.length > 0 && candidates.length < available.length) why += ` (zone ${client.zone} preferred: ${candidates.length} of ${available.length} available endpoints are in it)`;
  return {
    balancer: policy.balancer,
    candidates: candidates.length,
    likely: policy.balancer === 'round-robin' || likely === undefined ? (candidates.length === 1 ? candidates[0].instance.id : null) : likely.instance.id,
    why,
    endpoints: known.map((ep) => {
      const b = svc.breakerOf(ep);
      const ejectedUntil = svc.outlier.ejectedUntil(ep);
      const inSubset = all.includes(ep);
      const state = !inSubset ? `not in subset ${subset}` : b.state === 'open' ? `breaker open ${((b.openUntil - now) / 1000).toFixed(1)} s` : ejectedUntil > now ? (Number.isFinite(ejectedUntil) ? `ejected ${((ejectedUntil - now) / 1000).toFixed(1)} s` : 'failing health checks') : set.has(ep) ? 'candidate' : 'other zone';
      const stats = statsOf(ep).ewma;
      return {
        id: ep.instance.id,
        address: ep.authority,
        dc: ep.instance.dc,
        zone: ep.instance.zone,
        metadata: { ...ep.instance.metadata },
        candidate: set.has(ep),
        state,
        breaker: b.state,
        ewmaMs: Math.round(stats.rttMs * 100) / 100,
        inFlight: stats.pending,
      };
    }),
  };
}

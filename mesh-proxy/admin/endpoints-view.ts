import type { EndpointCache } from '../discovery/endpoint-cache.ts';
import type { MeshClient } from '../client/mesh-client.ts';

/** One endpoint as /endpoints shows it (and `meshgate status` reads it). */
export interface EndpointView {
  id: string;
  address: string;
  port: number;
  dc: string;
  zone: string;
  metadata: Readonly<Record<string, string>>;
  ewmaMs: number;
  inFlight: number;
  breaker: { state: string; openForMs: number; trips: number };
  ejected: { forMs: number | null; reason: 'outlier' | 'health-check'; times: number } | null;
}

/** The /endpoints document. */
export interface EndpointsDoc {
  source: 'none' | 'store' | 'disk';
  lastSyncAt: string | null;
  stalenessSeconds: number | null;
  services: Record<string, EndpointView[]>;
}

/**
 * The JSON the admin API serves at /endpoints: what this proxy would route to right now, and for
 * each endpoint its latency estimate, requests in flight, breaker and ejection state.
 */
export function endpointsView(cache: EndpointCache, client: MeshClient): EndpointsDoc {
  return {
    source: cache.source,
    lastSyncAt: cache.lastSyncAt === 0 ? null : new Date(cache.lastSyncAt).toISOString(),
    stalenessSeconds: cache.lastSyncAt === 0 ? null : (Date.now() - cache.lastSyncAt) / 1000,
    services: client.describe(),
  };
}

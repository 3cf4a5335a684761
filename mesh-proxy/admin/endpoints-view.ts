import type { EndpointCache } from '../discovery/endpoint-cache.ts';
import type { MeshClient } from '../client/mesh-client.ts';

/**
 * The JSON the admin API serves at /endpoints: what this proxy would route to right now, and for
 * each endpoint its latency estimate, requests in flight, breaker and ejection state.
 */
export function endpointsView(cache: EndpointCache, client: MeshClient): object {
  return {
    source: cache.source,
    lastSyncAt: cache.lastSyncAt === 0 ? null : new Date(cache.lastSyncAt).toISOString(),
    stalenessSeconds: cache.lastSyncAt === 0 ? null : (Date.now() - cache.lastSyncAt) / 1000,
    services: client.describe(),
  };
}

import type { EndpointCache } from '../discovery/endpoint-cache.ts';

/** The JSON the admin API serves at /endpoints: what this proxy would route to right now. */
export function endpointsView(cache: EndpointCache): object {
  const services: Record<string, object[]> = {};
  for (const s of cache.services()) {
    services[s.service] = s.endpoints.map((e) => ({
      id: e.instance.id,
      address: e.instance.address,
      port: e.instance.port,
      dc: e.instance.dc,
      zone: e.instance.zone,
      metadata: e.instance.metadata,
    }));
  }
  return {
    source: cache.source,
    lastSyncAt: cache.lastSyncAt === 0 ? null : new Date(cache.lastSyncAt).toISOString(),
    stalenessSeconds: cache.lastSyncAt === 0 ? null : (Date.now() - cache.lastSyncAt) / 1000,
    services,
  };
}

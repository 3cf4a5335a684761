// WebSocket upgrades and open tunnels, per direction and service. Shared by every listener of a
// process (a sidecar's inbound and outbound register once), so made once per registry.
import { Counter, Gauge, type Registry } from 'prom-client';

/** switched: the upstream answered 101; rejected: it answered another status (relayed);
 *  local: meshgate answered itself (no route, not allowed, a plugin, no endpoint, timeout …);
 *  abandoned: the client left before an answer. */
export type UpgradeResult = 'switched' | 'rejected' | 'local' | 'abandoned';

export interface WebSocketMetrics {
  readonly upgrades: Counter<'direction' | 'service' | 'result'>;
  readonly open: Gauge<'direction' | 'service'>;
}

const byRegistry = new WeakMap<Registry, WebSocketMetrics>();

export function websocketMetrics(registry: Registry): WebSocketMetrics {
  let m = byRegistry.get(registry);
  if (m !== undefined) return m;
  const registers = [registry];
  m = {
    upgrades: new Counter({
      name: 'meshgate_websocket_upgrades_total',
      help: 'WebSocket upgrade requests by direction, service and result (switched, rejected, local, abandoned).',
      labelNames: ['direction', 'service', 'result'],
      registers,
    }),
    open: new Gauge({ name: 'meshgate_websocket_tunnels_open', help: 'WebSocket tunnels open now, by direction and service.', labelNames: ['direction', 'service'], registers }),
  };
  byRegistry.set(registry, m);
  return m;
}

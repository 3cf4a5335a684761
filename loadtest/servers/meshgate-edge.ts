// meshgate's edge gateway under test: the real startGateway() with its in-memory store holding one
// registered instance (the upstream), so the request path is exactly the production one.
import { buildGatewayConfig } from '../../config/load.ts';
import { startGateway } from '../../gateway/gateway.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';

const store = new MemoryStore();
const ports = (process.env.UPSTREAM_PORTS ?? process.env.UPSTREAM_PORT ?? '').split(',').map(Number);
for (const [i, port] of ports.entries()) {
  await store.registry.register({ service: 'bench', id: `bench-${i + 1}`, address: '127.0.0.1', port, dc: 'local', zone: '', metadata: {} }, 3_600_000);
}
const config = buildGatewayConfig(
  {
    // TLS_CERT set: HTTPS (HTTP/2 and HTTP/1.1) on PORT, plain HTTP two ports up.
    listeners: process.env.TLS_CERT
      ? {
          http: { address: '127.0.0.1', port: Number(process.env.PORT) + 2 },
          https: { address: '127.0.0.1', port: Number(process.env.PORT), certificates: [{ cert: process.env.TLS_CERT, key: process.env.TLS_KEY! }] },
        }
      : { http: { address: '127.0.0.1', port: Number(process.env.PORT) } },
    admin: { port: Number(process.env.ADMIN_PORT) },
    discovery: { stateDir: process.env.STATE_DIR ?? '/tmp/meshgate-loadtest' },
    log: { level: 'warn', access: process.env.ACCESS_LOG === '1' },
    services: { bench: { balancer: (process.env.BALANCER ?? 'p2c-ewma') as 'p2c-ewma', ...(process.env.POOL ? { pool: { connections: Number(process.env.POOL) } } : {}) } },
    routes: [{ name: 'bench', match: { pathPrefix: '/' }, service: 'bench' }],
  },
  'loadtest:meshgate-edge',
);
await startGateway(config, { store });
process.send?.('ready');
// Exit through process.exit so --cpu-prof can write its profile.
for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => process.exit(0));

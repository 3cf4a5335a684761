// meshgate's edge gateway under test: the real startGateway() with its in-memory store holding one
// registered instance (the upstream), so the request path is exactly the production one.
import '../../bin/v8-tuning.ts';
import { youngGenerationServing } from './gateway-heap.ts';
import { buildGatewayConfig } from '../../config/load.ts';
import { startGateway } from '../../gateway/gateway.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { createStore } from '../../mesh-proxy/store/create-store.ts';
import type { Store } from '../../mesh-proxy/store/types.ts';

const store = new MemoryStore();
const ports = (process.env.UPSTREAM_PORTS ?? process.env.UPSTREAM_PORT ?? '').split(',').map(Number);
for (const [i, port] of ports.entries()) {
  await store.registry.register({ service: 'bench', id: `bench-${i + 1}`, address: '127.0.0.1', port, dc: 'local', zone: '', metadata: {} }, 3_600_000);
}
// PLUGINS=1: the route runs jwt-auth (RS256, local key), rate-limit (jwt.sub; Redis when REDIS_URL),
// cors and header transforms: the chain the plugin issue benchmarks.
// PLUGINS=1 is all four; a comma list (jwt,rate-limit,cors,headers) picks some, to see each one's cost.
const CHAIN: Record<string, object> = {
  jwt: { 'jwt-auth': { keys: [{ pem: process.env.JWT_PUBLIC_KEY }], issuer: 'loadtest', audience: 'bench', forwardClaims: { sub: 'x-user-id' } } },
  'rate-limit': { 'rate-limit': { key: process.env.PLUGINS === 'rate-limit' ? 'route' : 'jwt.sub', limits: [{ max: 1_000_000_000, per: '1s' }] } },
  cors: { cors: { origins: ['https://app.example.com'] } },
  headers: { headers: { request: { set: { 'x-route': '%ROUTE%' } }, response: { set: { 'x-served-by': 'meshgate' } } } },
};
const wanted = process.env.PLUGINS === '1' ? Object.keys(CHAIN) : (process.env.PLUGINS ?? '').split(',').filter(Boolean);
const plugins = wanted.length > 0 ? wanted.map((n) => CHAIN[n]) : undefined;
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
    services: {
      bench: {
        balancer: (process.env.BALANCER ?? 'p2c-ewma') as 'p2c-ewma',
        ...(process.env.POOL ? { pool: { connections: Number(process.env.POOL) } } : {}),
        // GRPC=1: the upstream is an h2c gRPC server (scenario grpc-unary).
        ...(process.env.GRPC === '1' ? { protocol: 'h2c' as const } : {}),
      },
    },
    routes: [{ name: 'bench', match: { pathPrefix: '/' }, service: 'bench', ...(process.env.GRPC === '1' ? { grpc: true } : {}), ...(plugins ? { plugins } : {}) }],

  },
  'loadtest:meshgate-edge',
);
// With REDIS_URL the rate-limit counters live in Redis, as in production; discovery stays in memory
// (the benchmark upstream is registered there).
let deps: Store = store;
if (process.env.REDIS_URL) {
  const redis = await createStore({ kind: 'redis', url: process.env.REDIS_URL, keyPrefix: 'bench:', connectTimeout: '2s', commandTimeout: '1s' }, { warn() {}, info() {} });
  await redis.ready(5000);
  deps = {
    kind: store.kind, registry: store.registry, breakers: store.breakers, rateLimits: redis.rateLimits, splits: store.splits,
    get status() { return store.status; },
    onStatus: () => {},
    ready: async () => true,
    close: async () => { await redis.close(); await store.close(); },
  };
}
await startGateway(config, { store: deps });
youngGenerationServing();
process.send?.('ready');
// Exit through process.exit so --cpu-prof can write its profile.
for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => process.exit(0));

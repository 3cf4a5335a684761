// The full mesh path under test: edge gateway → sidecar (inbound) → app. Both proxies run in this
// one process, sharing the embedded store as the demo does, so the pinned core carries both hops.
// MTLS=1: the hop is mTLS, with identities issued by a CA created in the state directory.
import '../../bin/v8-tuning.ts';
import { youngGenerationServing } from './gateway-heap.ts';
import { join } from 'node:path';
import { buildGatewayConfig, buildProxyConfig } from '../../config/load.ts';
import { initCa } from '../../mesh-proxy/identity/ca.ts';
import { startGateway } from '../../gateway/gateway.ts';
import { startSidecar } from '../../mesh-proxy/sidecar.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';

const store = new MemoryStore();
const stateDir = process.env.STATE_DIR ?? '/tmp/meshgate-loadtest';
const quiet = { level: 'warn', access: false } as const;
let mesh: { caDir: string; trustDomain: string } | undefined;
if (process.env.MTLS === '1') {
  mesh = { caDir: join(stateDir, `ca-${process.pid}`), trustDomain: 'bench.local' };
  await initCa(mesh.caDir, mesh.trustDomain, false);
}
await startSidecar(
  buildProxyConfig(
    {
      node: { service: 'bench', instance: 'bench-1' },
      app: { port: Number(process.env.UPSTREAM_PORT) },
      inbound: { address: '127.0.0.1', port: 0 },
      outbound: { address: '127.0.0.1', port: 0 },
      admin: { port: 0 },
      discovery: { stateDir },
      log: quiet,
      ...(mesh ? { mesh } : {}),
    },
    'loadtest:sidecar',
  ),
  { store },
);
await startGateway(
  buildGatewayConfig(
    {
      listeners: { http: { address: '127.0.0.1', port: Number(process.env.PORT) } },
      admin: { port: Number(process.env.ADMIN_PORT) },
      discovery: { stateDir },
      log: quiet,
      services: { bench: {} },
      routes: [{ name: 'bench', match: { pathPrefix: '/' }, service: 'bench' }],
      ...(mesh ? { mesh } : {}),
    },
    'loadtest:mesh',
  ),
  { store },
);
youngGenerationServing();
process.send?.('ready');
for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => process.exit(0));

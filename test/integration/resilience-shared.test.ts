// Mesh-wide behaviour over a real redis-server: a breaker opened by one proxy is honoured by
// another, and an instance killed with SIGKILL under steady load costs the clients nothing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { call, startInstance, startTestGateway, stopAll, type Instance } from '../helpers/mesh.ts';
import { MeshgateProcess, tempDir, writeConfig } from '../helpers/cli.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { RedisServer } from '../helpers/redis-server.ts';
import { steadyLoad } from '../helpers/load.ts';
import type { EndpointsDoc } from '../../mesh-proxy/admin/endpoints-view.ts';

let redis: RedisServer;
const cleanup: Array<() => Promise<unknown>> = [];
before(async () => {
  redis = await RedisServer.start();
});
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
  await redis?.stop();
});

async function breakerState(adminPort: number, service: string, id: string): Promise<string | undefined> {
  const v = (await call(`http://127.0.0.1:${adminPort}/endpoints`)).json<EndpointsDoc>();
  return v.services[service]?.find((e) => e.id === id)?.breaker.state;
}

test('a breaker opened by proxy A is honoured by proxy B', async (t) => {
  const store = { url: redis.url };
  const instances: Instance[] = [];
  for (const id of ['shared-1', 'shared-2']) instances.push(await startInstance(store, 'shared', id));
  const services = { shared: { balancer: 'round-robin', retries: { attempts: 0 }, breaker: { consecutiveFailures: 3, openFor: '30s' }, outlier: { consecutive5xx: 1000 } } };
  const routes = [{ name: 'shared', match: { pathPrefix: '/' }, service: 'shared' }];
  const a = await startTestGateway(store, services, routes, 'edge-a');
  const b = await startTestGateway(store, services, routes, 'edge-b');
  cleanup.push(() => stopAll(a, b, ...instances.map((i) => i.sidecar), ...instances.map((i) => i.app)));
  for (const gw of [a, b]) await waitFor('both endpoints', async () => ((await breakerState(gw.admin.port, 'shared', 'shared-2')) ? true : undefined));

  // 1. shared-2 fails; only gateway A sends it traffic, until A's breaker opens
  instances[1].app.handler = (_req, res) => {
    res.writeHead(500);
    res.end('broken');
  };
  for (let i = 0; i < 20 && (await breakerState(a.admin.port, 'shared', 'shared-2')) !== 'open'; i++) await call(`http://127.0.0.1:${a.http.port}/x`);
  assert.equal(await breakerState(a.admin.port, 'shared', 'shared-2'), 'open');
  const openedAt = Date.now();

  // 2. B learns it through the store (pub/sub), without having sent shared-2 a request
  await waitFor("B to see A's open breaker", async () => ((await breakerState(b.admin.port, 'shared', 'shared-2')) === 'open' ? true : undefined), 10_000, 10);
  t.diagnostic(`B honoured the breaker ${Date.now() - openedAt} ms after A opened it`);
  const seen = instances[1].app.received.length;
  for (let i = 0; i < 10; i++) assert.equal((await call(`http://127.0.0.1:${b.http.port}/x`)).status, 200);
  assert.equal(instances[1].app.received.length, seen, 'B sent nothing to the endpoint A found broken');

  // 3. a proxy started now reads the open breaker at start-up
  const c = await startTestGateway(store, services, routes, 'edge-c');
  cleanup.push(() => c.stop());
  await waitFor('C to see the open breaker', async () => ((await breakerState(c.admin.port, 'shared', 'shared-2')) === 'open' ? true : undefined), 10_000);
});

const CATALOG_APP = fileURLToPath(new URL('../../examples/demo-services/catalog.mjs', import.meta.url));

test('SIGKILL of one of three instances under steady GET load: no client-visible errors', async (t) => {
  const dir = tempDir();
  const procs: Array<{ app: ChildProcess; proxy: MeshgateProcess; adminPort: number }> = [];
  for (const id of ['k-1', 'k-2', 'k-3']) {
    const appPort = await freePort();
    const adminPort = await freePort();
    const app = spawn(process.execPath, [CATALOG_APP], { env: { ...process.env, PORT: String(appPort), INSTANCE: id }, stdio: 'ignore' });
    const file = writeConfig(dir, `${id}.yaml`, {
      node: { service: 'catalog', instance: id },
      app: { port: appPort },
      inbound: { address: '127.0.0.1', port: 0 },
      outbound: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: adminPort },
      store: { kind: 'redis', url: redis.url },
      registration: { ttl: '3s', heartbeat: '1s' },
      discovery: { resync: '1s', stateDir: dir },
      log: { level: 'warn', access: false },
    });
    const proxy = new MeshgateProcess(['proxy', '--config', file]);
    procs.push({ app, proxy, adminPort });
    cleanup.push(async () => {
      app.kill('SIGKILL');
      await proxy.stop('SIGKILL');
    });
  }
  for (const p of procs) await p.proxy.ready(`http://127.0.0.1:${p.adminPort}`);
  const gw = await startTestGateway({ url: redis.url }, { catalog: {} }, [{ name: 'catalog', match: { pathPrefix: '/' }, service: 'catalog' }], 'edge-kill');
  cleanup.push(() => gw.stop());
  await waitFor('three endpoints at the gateway', async () => {
    const v = (await call(`http://127.0.0.1:${gw.admin.port}/endpoints`)).json<{ services: Record<string, unknown[]> }>();
    return v.services.catalog?.length === 3 ? true : undefined;
  });

  // 1. steady load; 2. SIGKILL instance k-2 (app and sidecar) mid-way; 3. keep going
  const load = steadyLoad(`http://127.0.0.1:${gw.http.port}/items`, { concurrency: 6, pauseMs: 2, countHeader: 'x-served-by', maxRequests: 50_000 });
  await waitFor('some traffic', () => (load.result.ok > 300 ? true : undefined), 20_000);
  procs[1].app.kill('SIGKILL');
  procs[1].proxy.child.kill('SIGKILL');
  const killedAt = load.result.sent;
  await waitFor('traffic after the kill', () => (load.result.sent > killedAt + 1500 ? true : undefined), 60_000);
  const r = await load.stop();
  t.diagnostic(`${r.sent} requests, ${r.failures.length} failed; served by ${JSON.stringify(Object.fromEntries(r.byHeader))}`);
  assert.deepEqual(r.failures, []);
  const metrics = (await call(`http://127.0.0.1:${gw.admin.port}/metrics`)).body;
  t.diagnostic(metrics.split('\n').filter((l) => l.startsWith('meshgate_retries_total') || l.startsWith('meshgate_outlier') || l.startsWith('meshgate_breaker_transitions')).join('; '));
});

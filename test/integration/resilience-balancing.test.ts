// Latency-aware balancing and outlier ejection, through a real gateway and real sidecars.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { call, startInstance, startTestGateway, stopAll, type Instance } from '../helpers/mesh.ts';
import { waitFor } from '../helpers/ports.ts';
import { steadyLoad } from '../helpers/load.ts';

const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
});

function delayed(ms: number, name: string) {
  return (_req: IncomingMessage, res: ServerResponse) => {
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-app': name });
      res.end(JSON.stringify({ app: name }));
    }, ms);
  };
}

test('p2c-ewma sends far less than a third of the traffic to an instance 50 ms slower', async (t) => {
  const store = new MemoryStore();
  const instances: Instance[] = [];
  for (const id of ['fast-1', 'fast-2', 'slow-1']) instances.push(await startInstance(store, 'catalog', id));
  instances[2].app.handler = delayed(50, 'slow-1');
  const gw = await startTestGateway(store, { catalog: { balancer: 'p2c-ewma' } }, [{ name: 'catalog', match: { pathPrefix: '/' }, service: 'catalog' }]);
  cleanup.push(() => stopAll(gw, ...instances.map((i) => i.sidecar), ...instances.map((i) => i.app)), () => store.close());
  await waitFor('three endpoints', async () => ((await call(`http://127.0.0.1:${gw.admin.port}/endpoints`)).json<{ services: Record<string, unknown[]> }>().services.catalog?.length === 3 ? true : undefined));

  // 1. steady load with 8 concurrent callers for a bounded number of requests
  const load = steadyLoad(`http://127.0.0.1:${gw.http.port}/items`, { concurrency: 8, maxRequests: 1500, countHeader: 'x-app' });
  await waitFor('the load to finish', () => (load.result.sent >= 1500 ? true : undefined), 60_000);
  const r = await load.stop();
  const slowShare = (r.byHeader.get('slow-1') ?? 0) / r.ok;
  t.diagnostic(`shares: ${JSON.stringify(Object.fromEntries(r.byHeader))} (slow share ${slowShare.toFixed(3)})`);
  assert.equal(r.failures.length, 0);
  assert.ok(slowShare < 0.15, `the slow instance got ${(slowShare * 100).toFixed(1)}% of requests`);
});

test('a failing instance is ejected, then re-admitted after it recovers', async (t) => {
  const store = new MemoryStore();
  const instances: Instance[] = [];
  for (const id of ['ok-1', 'ok-2', 'flaky-1']) instances.push(await startInstance(store, 'catalog', id));
  const flaky = instances[2].app;
  let failing = true;
  flaky.handler = (_req, res) => {
    res.writeHead(failing ? 500 : 200, { 'x-app': 'flaky-1' });
    res.end(failing ? 'broken' : 'ok');
  };
  const gw = await startTestGateway(
    store,
    {
      catalog: {
        balancer: 'round-robin',
        retries: { attempts: 0 },
        breaker: { consecutiveFailures: 1000 },
        outlier: { consecutive5xx: 3, baseEjection: '1s', maxEjectedPercent: 50 },
      },
    },
    [{ name: 'catalog', match: { pathPrefix: '/' }, service: 'catalog' }],
  );
  cleanup.push(() => stopAll(gw, ...instances.map((i) => i.sidecar), ...instances.map((i) => i.app)), () => store.close());
  const admin = `http://127.0.0.1:${gw.admin.port}/endpoints`;
  await waitFor('three endpoints', async () => ((await call(admin)).json<{ services: Record<string, unknown[]> }>().services.catalog?.length === 3 ? true : undefined));

  // 1. round robin sends every third request to the flaky instance: three 500s eject it
  for (let i = 0; i < 12; i++) await call(`http://127.0.0.1:${gw.http.port}/x`);
  const view = (await call(admin)).json<{ services: { catalog: Array<{ id: string; ejected: unknown }> } }>();
  assert.ok(view.services.catalog.find((e) => e.id === 'flaky-1')?.ejected, 'flaky-1 is ejected');
  const metrics = (await call(`http://127.0.0.1:${gw.admin.port}/metrics`)).body;
  assert.match(metrics, /meshgate_outlier_ejections_total\{service="catalog"\} [1-9]/);

  // 2. while ejected it gets nothing
  const before = flaky.received.length;
  for (let i = 0; i < 10; i++) assert.equal((await call(`http://127.0.0.1:${gw.http.port}/x`)).status, 200);
  assert.equal(flaky.received.length, before);

  // 3. it recovers; once the ejection ends it is chosen again
  failing = false;
  const start = Date.now();
  await waitFor('flaky-1 to serve again', async () => ((await call(`http://127.0.0.1:${gw.http.port}/x`)).headers['x-app'] === 'flaky-1' ? true : undefined), 15_000, 50);
  t.diagnostic(`re-admitted ${Date.now() - start} ms after recovering (ejection 1 s)`);
});

test('active health checks take a failing endpoint out and bring it back', async () => {
  const store = new MemoryStore();
  const instances: Instance[] = [];
  for (const id of ['hc-1', 'hc-2']) instances.push(await startInstance(store, 'hc', id));
  let healthy = false;
  instances[1].app.handler = (req, res) => {
    if (req.url === '/healthz') res.writeHead(healthy ? 200 : 503);
    else res.writeHead(200, { 'x-app': 'hc-2' });
    res.end();
  };
  const gw = await startTestGateway(
    store,
    { hc: { balancer: 'round-robin', healthCheck: { path: '/healthz', interval: '100ms', timeout: '500ms', unhealthyThreshold: 2, healthyThreshold: 2 } } },
    [{ name: 'hc', match: { pathPrefix: '/' }, service: 'hc' }],
  );
  cleanup.push(() => stopAll(gw, ...instances.map((i) => i.sidecar), ...instances.map((i) => i.app)), () => store.close());
  const admin = `http://127.0.0.1:${gw.admin.port}/endpoints`;
  const ejected = async () =>
    (await call(admin)).json<{ services: { hc?: Array<{ id: string; ejected: { reason: string } | null }> } }>().services.hc?.find((e) => e.id === 'hc-2')?.ejected;

  // 1. hc-2's health endpoint fails: after two checks it is out, and gets no traffic
  const out = await waitFor('hc-2 to fail its checks', async () => ((await ejected())?.reason === 'health-check' ? true : undefined));
  assert.ok(out);
  const before = instances[1].app.received.filter((r) => r.url !== '/healthz').length;
  for (let i = 0; i < 8; i++) assert.equal((await call(`http://127.0.0.1:${gw.http.port}/x`)).status, 200);
  assert.equal(instances[1].app.received.filter((r) => r.url !== '/healthz').length, before);

  // 2. it passes again: back in rotation
  healthy = true;
  await waitFor('hc-2 to be back', async () => ((await ejected()) === null ? true : undefined));
  await waitFor('hc-2 to serve', async () => ((await call(`http://127.0.0.1:${gw.http.port}/x`)).headers['x-app'] === 'hc-2' ? true : undefined));
});

test("traffic stays in the caller's zone while the zone has enough endpoints", async () => {
  const store = new MemoryStore();
  const local: Instance[] = [];
  const remote: Instance[] = [];
  for (const id of ['z1-a', 'z1-b']) local.push(await startInstance(store, 'zoned', id, { node: { service: 'zoned', instance: id, zone: 'z1' } }));
  for (const id of ['z2-a', 'z2-b']) remote.push(await startInstance(store, 'zoned', id, { node: { service: 'zoned', instance: id, zone: 'z2' } }));
  const gw = await startTestGateway(store, { zoned: { balancer: 'round-robin', zone: { prefer: true, minHealthy: 2, minShare: 0.25 } } }, [
    { name: 'zoned', match: { pathPrefix: '/' }, service: 'zoned' },
  ]);
  const all = [...local, ...remote];
  cleanup.push(() => stopAll(gw, ...all.map((i) => i.sidecar), ...all.map((i) => i.app)), () => store.close());
  await waitFor('four endpoints', async () => ((await call(`http://127.0.0.1:${gw.admin.port}/endpoints`)).json<{ services: Record<string, unknown[]> }>().services.zoned?.length === 4 ? true : undefined));

  // 1. both z1 endpoints up: the gateway (zone z1) uses only them
  for (let i = 0; i < 12; i++) await call(`http://127.0.0.1:${gw.http.port}/x`);
  assert.equal(remote.reduce((n, i) => n + i.app.received.length, 0), 0, 'nothing crossed to z2');
  assert.ok(local.every((i) => i.app.received.length > 0));

  // 2. z1 drops below minHealthy: traffic spreads over every zone
  await local[1].sidecar.stop();
  await waitFor('z1-b gone', async () => ((await call(`http://127.0.0.1:${gw.admin.port}/endpoints`)).json<{ services: Record<string, unknown[]> }>().services.zoned?.length === 3 ? true : undefined));
  for (let i = 0; i < 12; i++) assert.equal((await call(`http://127.0.0.1:${gw.http.port}/x`)).status, 200);
  assert.ok(remote.some((i) => i.app.received.length > 0), 'z2 serves once z1 is short');
});

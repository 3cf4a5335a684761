// Retries (safe, bounded, budgeted), deadlines and concurrency limits through a real gateway and
// sidecars. Apps count what reaches them, so "no upstream call" is observed, not assumed.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { call, startInstance, startTestGateway, stopAll, type Instance } from '../helpers/mesh.ts';
import { waitFor } from '../helpers/ports.ts';

const store = new MemoryStore();
const instances: Instance[] = [];
const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
  await stopAll(...instances.map((i) => i.sidecar), ...instances.map((i) => i.app));
  await store.close();
});

async function mesh(service: string, n: number, services: Record<string, unknown>, routes?: unknown[]) {
  const list: Instance[] = [];
  for (let i = 1; i <= n; i++) list.push(await startInstance(store, service, `${service}-${i}`));
  instances.push(...list);
  const gw = await startTestGateway(store, services, routes ?? [{ name: service, match: { pathPrefix: '/' }, service }], `edge-${service}`);
  cleanup.push(() => gw.stop());
  await waitFor(`${n} endpoints of ${service}`, async () => {
    const v = (await call(`http://127.0.0.1:${gw.admin.port}/endpoints`)).json<{ services: Record<string, unknown[]> }>();
    return v.services[service]?.length === n ? true : undefined;
  });
  const total = () => list.reduce((s, i) => s + i.app.received.length, 0);
  return { gw, list, total, url: `http://127.0.0.1:${gw.http.port}` };
}

test('a GET answered 503 by one instance is retried on another', async () => {
  const m = await mesh('svc-a', 2, { 'svc-a': { balancer: 'round-robin', retries: { backoff: { base: '1ms', max: '5ms' } } } });
  m.list[0].app.handler = (_req, res) => {
    res.writeHead(503, { 'x-app': 'svc-a-1' });
    res.end('unavailable');
  };
  for (let i = 0; i < 6; i++) {
    const r = await call(`${m.url}/x`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-app'], 'svc-a-2');
  }
  const metrics = (await call(`http://127.0.0.1:${m.gw.admin.port}/metrics`)).body;
  assert.match(metrics, /meshgate_retries_total\{service="svc-a",condition="503"\} [1-9]/);
});

test('with every instance failing, retries stay within the budget', async (t) => {
  const m = await mesh('svc-b', 3, {
    'svc-b': {
      retries: { attempts: 3, on: ['503'], budget: { ratio: 0.2, minPerSecond: 1, window: '10s' }, backoff: { base: '1ms', max: '2ms' } },
      breaker: { consecutiveFailures: 100000, errorRate: { above: 1, minRequests: 1000000 } },
      outlier: { maxEjectedPercent: 0 },
    },
  });
  for (const i of m.list) {
    i.app.handler = (_req, res) => {
      res.writeHead(503);
      res.end('down');
    };
  }
  const N = 200;
  for (let i = 0; i < N; i++) assert.equal((await call(`${m.url}/x`)).status, 503);
  const retries = m.total() - N;
  const allowed = 0.2 * N + 1 * 10;
  t.diagnostic(`${N} requests → ${m.total()} upstream calls: ${retries} retries (budget allows ${allowed}; without a budget: ${3 * N})`);
  assert.ok(retries <= allowed, `${retries} retries exceed the budget of ${allowed}`);
  assert.ok(retries > 0, 'some retries were made');
  assert.match((await call(`http://127.0.0.1:${m.gw.admin.port}/metrics`)).body, /meshgate_retry_budget_exhausted_total\{service="svc-b"\} [1-9]/);
});

test('a POST the upstream saw is not retried without opt-in; with the route opted in it is', async () => {
  const m = await mesh('svc-c', 1, { 'svc-c': { retries: { backoff: { base: '1ms', max: '2ms' }, maxBodyBytes: 1024 }, breaker: { consecutiveFailures: 1000 }, outlier: { consecutive5xx: 1000 } } }, [
    { name: 'opted-in', match: { pathPrefix: '/retry' }, service: 'svc-c', retries: { allowNonIdempotent: true } },
    { name: 'default', match: { pathPrefix: '/' }, service: 'svc-c' },
  ]);
  const app = m.list[0].app;
  app.handler = (_req, res) => {
    res.writeHead(503);
    res.end('busy');
  };
  // 1. default route: one upstream call
  const before = app.received.length;
  assert.equal((await call(`${m.url}/orders`, { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } })).status, 503);
  assert.equal(app.received.length - before, 1);
  // 2. opted-in route: retried with the same body
  const mid = app.received.length;
  assert.equal((await call(`${m.url}/retry/orders`, { method: 'POST', body: '{"n":2}', headers: { 'content-type': 'application/json' } })).status, 503);
  assert.equal(app.received.length - mid, 3, 'first try + 2 retries');
  assert.ok(app.received.slice(mid).every((r) => r.body === '{"n":2}'), 'each try carried the whole body');
  // 3. bodies that were streamed cannot be replayed: over maxBodyBytes, or chunked (no length)
  const big = 'x'.repeat(2048);
  const beforeBig = app.received.length;
  assert.equal((await call(`${m.url}/retry/orders`, { method: 'POST', body: big })).status, 503);
  assert.equal(app.received.length - beforeBig, 1, 'a body over maxBodyBytes is sent once');
  assert.equal(app.received.at(-1)!.body, big, 'and arrives whole');
  const beforeChunked = app.received.length;
  const res = await request(`${m.url}/retry/orders`, { method: 'POST', body: Readable.from([Buffer.from('{"n":'), Buffer.from('3}')]) });
  await res.body.dump();
  assert.equal(res.statusCode, 503);
  assert.equal(app.received.length - beforeChunked, 1, 'a chunked body is sent once');
  assert.equal(app.received.at(-1)!.body, '{"n":3}');
});

test('an expired deadline is answered 504 DEADLINE_EXCEEDED without calling upstream', async () => {
  const m = await mesh('svc-d', 1, { 'svc-d': {} });
  const app = m.list[0].app;
  const before = app.received.length;
  // 1. at the gateway
  const r = await call(`${m.url}/x`, { headers: { 'x-meshgate-timeout-ms': '0' } });
  assert.equal(r.status, 504);
  assert.equal(r.json<{ error: { code: string } }>().error.code, 'DEADLINE_EXCEEDED');
  assert.equal(r.headers['x-meshgate-error'], 'DEADLINE_EXCEEDED', 'a local reply says it came from meshgate');
  // 2. at a sidecar's inbound hop, and via grpc-timeout
  const inbound = `http://127.0.0.1:${m.list[0].sidecar.inbound.port}/x`;
  assert.equal((await call(inbound, { headers: { 'x-meshgate-timeout-ms': '0' } })).status, 504);
  assert.equal((await call(inbound, { headers: { 'grpc-timeout': '0m' } })).status, 504);
  assert.equal(app.received.length, before, 'the app was never called');
  // 3. a live deadline travels on, decremented: the app sees what is left
  await call(`${m.url}/x`, { headers: { 'x-meshgate-timeout-ms': '3000' } });
  const seen = Number(app.received.at(-1)!.headers['x-meshgate-timeout-ms']);
  assert.ok(seen > 0 && seen <= 3000, `the app saw ${seen} ms left`);
});

test('a slow upstream past the route timeout gets 504 UPSTREAM_TIMEOUT', async () => {
  const m = await mesh('svc-e', 1, { 'svc-e': { timeouts: { request: '300ms' } } });
  m.list[0].app.handler = (_req, res) => {
    setTimeout(() => res.end('late'), 1500);
  };
  const started = Date.now();
  const r = await call(`${m.url}/x`);
  assert.equal(r.status, 504);
  // The sidecar got the same deadline and may answer first, with the propagated-deadline code.
  assert.ok(['UPSTREAM_TIMEOUT', 'DEADLINE_EXCEEDED'].includes(r.json<{ error: { code: string } }>().error.code));
  assert.ok(Date.now() - started < 1400, 'answered at the timeout, not when the upstream finished');
});

test('past the concurrency limit a request gets an immediate 503 OVERLOADED', async () => {
  const m = await mesh('svc-f', 1, { 'svc-f': { limits: { maxConcurrent: 1, maxPending: 0 } } });
  m.list[0].app.handler = (_req, res) => {
    setTimeout(() => res.end('slow'), 800);
  };
  const first = call(`${m.url}/slow`);
  await waitFor('the first request to be in flight', () => (m.list[0].app.received.length > 0 ? true : undefined));
  const started = Date.now();
  const second = await call(`${m.url}/x`);
  assert.equal(second.status, 503);
  assert.equal(second.json<{ error: { code: string } }>().error.code, 'OVERLOADED');
  assert.ok(Date.now() - started < 500, 'rejected at once, not queued');
  assert.equal((await first).status, 200);
  assert.match((await call(`http://127.0.0.1:${m.gw.admin.port}/metrics`)).body, /meshgate_overload_rejections_total\{service="svc-f",limit="pending"\} 1/);
});

test('requests at fault never count against endpoints: a duplicate Host, a caller deadline too short', async () => {
  const m = await mesh('svc-g', 2, { 'svc-g': { breaker: { consecutiveFailures: 2 }, outlier: { consecutive5xx: 2 } } });
  for (const i of m.list) {
    i.app.handler = (_req, res) => {
      setTimeout(() => res.end('ok'), 100);
    };
  }
  // 1. two Host fields: 400 at the edge (RFC 9112 §3.2), nothing reaches an upstream
  for (let i = 0; i < 6; i++) {
    const raw = await new Promise<string>((resolve, reject) => {
      const s = connect(m.gw.http.port, '127.0.0.1', () => s.write('GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n'));
      let data = '';
      s.on('data', (d) => (data += d));
      s.on('end', () => resolve(data));
      s.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 400/);
    assert.match(raw, /BAD_REQUEST/);
  }
  assert.equal(m.total(), 0);
  // 2. a caller's own 10 ms deadline against 100 ms upstreams: 504s, but the endpoints stay healthy
  for (let i = 0; i < 8; i++) {
    const r = await call(`${m.url}/x`, { headers: { 'x-meshgate-timeout-ms': '10' } });
    assert.equal(r.status, 504);
  }
  const view = (await call(`http://127.0.0.1:${m.gw.admin.port}/endpoints`)).json<{ services: Record<string, Array<{ breaker: { state: string }; ejected: unknown }>> }>();
  assert.ok(view.services['svc-g'].every((e) => e.breaker.state === 'closed' && e.ejected === null), JSON.stringify(view.services['svc-g']));
  assert.equal((await call(`${m.url}/x`)).status, 200);
});

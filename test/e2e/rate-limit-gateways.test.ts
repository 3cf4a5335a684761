// Global rate limits through a real redis-server: two gateway processes share one limit exactly,
// the Lua script agrees with the in-memory GCRA, and when Redis dies fail-closed answers 503 while
// fail-open falls back to each process's local limiter; when it returns, limits are global again.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createStore } from '../../mesh-proxy/store/create-store.ts';
import { MemoryRateLimits } from '../../mesh-proxy/store/memory/memory-rate-limits.ts';
import { createLogger } from '../../mesh-proxy/observe/log.ts';
import type { Store } from '../../mesh-proxy/store/types.ts';
import { MeshgateProcess, tempDir, writeConfig } from '../helpers/cli.ts';
import { cleanEnv } from '../helpers/env.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { RedisServer } from '../helpers/redis-server.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

const N = 20;
let redis: RedisServer;
let app: TestApp;
const procs: MeshgateProcess[] = [];
const gateways: string[] = [];
const admins: string[] = [];

async function get(base: string, path: string, headers?: Record<string, string>): Promise<{ status: number; code?: string; headers: Record<string, unknown> }> {
  const res = await request(`${base}${path}`, { headers });
  const text = await res.body.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: res.statusCode, code, headers: res.headers };
}

before(async () => {
  redis = await RedisServer.start();
  app = await startApp('app');
  const dir = tempDir('meshgate-e2e-ratelimit-');
  const store = { kind: 'redis', url: redis.url, commandTimeout: '300ms' };
  const discovery = { resync: '500ms', stateDir: dir };
  const [inbound, outbound, scAdmin] = [await freePort(), await freePort(), await freePort()];
  const scFile = writeConfig(dir, 'app.yaml', {
    node: { service: 'app', instance: 'app-1' },
    app: { address: '127.0.0.1', port: app.port },
    inbound: { address: '127.0.0.1', port: inbound },
    outbound: { address: '127.0.0.1', port: outbound },
    admin: { address: '127.0.0.1', port: scAdmin },
    store,
    registration: { ttl: '10s', heartbeat: '1s' },
    discovery,
    log: { level: 'warn', access: false },
  });
  const sidecar = new MeshgateProcess(['proxy', '--config', scFile], cleanEnv('warn'));
  procs.push(sidecar);
  for (const name of ['edge-1', 'edge-2']) {
    const [httpPort, adminPort] = [await freePort(), await freePort()];
    const file = writeConfig(dir, `${name}.yaml`, {
      node: { name },
      store,
      listeners: { http: { address: '127.0.0.1', port: httpPort } },
      admin: { address: '127.0.0.1', port: adminPort },
      discovery: { ...discovery, stateDir: `${dir}/${name}` },
      log: { level: 'warn', access: false },
      services: { app: {} },
      routes: [
        { name: 'closed', match: { pathPrefix: '/closed' }, service: 'app', plugins: [{ 'rate-limit': { key: 'route', limits: [{ max: N, per: '1h' }], whenStoreDown: 'fail-closed' } }] },
        { name: 'burst', match: { pathPrefix: '/burst' }, service: 'app', plugins: [{ 'rate-limit': { key: 'header:x-user', limits: [{ max: N, per: '1h' }], whenStoreDown: 'fail-closed' } }] },
        { name: 'open', match: { pathPrefix: '/open' }, service: 'app', plugins: [{ 'rate-limit': { key: 'route', limits: [{ max: 5, per: '1h' }], whenStoreDown: 'fail-open' } }] },
        // 300 per minute, leases of 5 s: slices of up to 25 units.
        { name: 'sliced', match: { pathPrefix: '/sliced' }, service: 'app', plugins: [{ 'rate-limit': { key: 'header:x-user', limits: [{ max: 300, per: '1m' }], lease: '5s' } }] },
      ],
    });
    const gw = new MeshgateProcess(['gateway', '--config', file], cleanEnv('warn'));
    procs.push(gw);
    gateways.push(`http://127.0.0.1:${httpPort}`);
    admins.push(`http://127.0.0.1:${adminPort}`);
  }
  await Promise.all([sidecar.ready(`http://127.0.0.1:${scAdmin}`, 30_000), procs[1].ready(admins[0], 30_000), procs[2].ready(admins[1], 30_000)]);
  for (const gw of gateways) {
    await waitFor('the app endpoint at the gateway', async () => ((await request(`${gw}/nowhere-limited`)).statusCode !== 503 ? true : undefined), 20_000, 100);
  }
});

after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await app?.close();
  await redis?.stop();
});

describe('rate-limit with Redis', () => {
  test('1. the Lua GCRA agrees with the in-memory one on a burst', async () => {
    const store: Store = await createStore({ kind: 'redis', url: redis.url, keyPrefix: 'test:', connectTimeout: '2s', commandTimeout: '1s' }, createLogger({ level: 'silent' }, {}));
    try {
      assert.ok(await store.ready(5000));
      const memory = new MemoryRateLimits();
      const windows = [{ max: 10, periodMs: 60_000 }, { max: 25, periodMs: 3_600_000 }];
      const redisSeen: boolean[] = [];
      const memSeen: boolean[] = [];
      for (let i = 0; i < 15; i++) {
        const r = await store.rateLimits.consume('burst', windows, 1);
        const m = await memory.consume('burst', windows, 1);
        redisSeen.push(r.allowed);
        memSeen.push(m.allowed);
        assert.equal(r.remaining, m.remaining, `remaining after request ${i + 1}`);
        assert.equal(r.limit, m.limit);
      }
      assert.deepEqual(redisSeen, memSeen);
      assert.equal(redisSeen.filter(Boolean).length, 10);
    } finally {
      await store.close();
    }
  });

  test('2. two gateways sharing one Redis: exactly N requests pass, the rest get 429', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < N + 10; i++) statuses.push((await get(gateways[i % 2], '/closed/x')).status);
    assert.equal(statuses.filter((s) => s === 200).length, N, JSON.stringify(statuses));
    assert.equal(statuses.filter((s) => s === 429).length, 10);
    const last = await get(gateways[0], '/closed/x');
    assert.equal(last.code, 'RATE_LIMITED');
    assert.equal(last.headers['ratelimit-remaining'], '0');
    assert.ok(Number(last.headers['retry-after']) > 0);
  });

  test('2b. two gateways, 3·N requests at once from one caller (alternating gateways): exactly N pass', async () => {
    const all = await Promise.all(Array.from({ length: 3 * N }, (_, i) => get(gateways[i % 2], '/burst/x', { 'x-user': 'concurrent' })));
    const statuses = all.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, N, JSON.stringify(statuses));
    assert.equal(statuses.filter((s) => s === 429).length, 2 * N);
    // every allowed response says how many remained; together they are N−1 … 0, each once
    const remaining = all.filter((r) => r.status === 200).map((r) => Number(r.headers['ratelimit-remaining'])).sort((a, b) => a - b);
    assert.deepEqual(remaining, Array.from({ length: N }, (_, i) => i));
    // another caller is untouched
    assert.equal((await get(gateways[1], '/burst/x', { 'x-user': 'someone-else' })).status, 200);
  });

  test('2c. two gateways serving a busy caller from slices: no more than the limit passes, with a fraction of the store checks', async (t) => {
    const started = performance.now();
    const statuses: number[] = [];
    for (let wave = 0; wave < 60; wave++) {
      const all = await Promise.all(Array.from({ length: 10 }, (_, i) => get(gateways[i % 2], '/sliced/x', { 'x-user': 'busy' })));
      for (const r of all) statuses.push(r.status);
    }
    const seconds = (performance.now() - started) / 1000;
    const passed = statuses.filter((s) => s === 200).length;
    assert.equal(passed + statuses.filter((s) => s === 429).length, 600, JSON.stringify(statuses));
    // 5 units replenish per second; units one gateway holds when the other is refused are the shortfall.
    assert.ok(passed <= 300 + Math.ceil(seconds * 5) + 1, `${passed} passed in ${seconds.toFixed(1)} s`);
    assert.ok(passed >= 300 - 2 * 25, `${passed} passed`);
    let checks = 0;
    for (const admin of admins) {
      const text = await (await request(`${admin}/metrics`)).body.text();
      const m = /^meshgate_plugin_rate_limit_store_checks_total (\d+)/m.exec(text);
      assert.ok(m, 'the store-checks metric is exported');
      checks += Number(m[1]);
    }
    t.diagnostic(`${passed} of 600 passed in ${seconds.toFixed(2)} s; store checks (all routes, both gateways): ${checks}`);
    // Every other route's requests so far are per-request checks: well under 100 in all.
    assert.ok(checks < 100 + 600 / 4, `${checks} store checks`);
  });

  test('3. Redis killed: fail-closed answers 503, fail-open limits per process; Redis back: global again', async () => {
    await redis.kill();
    // A refusal from Redis is remembered for up to a lease (50 ms): 429 until then, then 503.
    const closed = await waitFor('fail-closed to answer 503', async () => {
      const r = await get(gateways[0], '/closed/x');
      return r.status === 429 ? undefined : r;
    }, 5000, 20);
    assert.equal(closed.status, 503);
    assert.equal(closed.code, 'RATE_LIMIT_UNAVAILABLE');
    // fail-open: each gateway's local backstop allows the limit on its own
    for (const gw of gateways) {
      const seen: number[] = [];
      for (let i = 0; i < 7; i++) seen.push((await get(gw, '/open/x')).status);
      assert.deepEqual(seen, [200, 200, 200, 200, 200, 429, 429]);
    }
    await redis.restart();
    // Redis restarted empty: once the gateways have reconnected, the global bucket starts afresh
    await waitFor('the closed route to pass again', async () => ((await get(gateways[1], '/closed/x')).status === 200 ? true : undefined), 20_000, 200);
    for (const p of procs) assert.equal(p.exited, false);
  });
});

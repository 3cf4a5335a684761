// Traffic splits end to end: weights changed under steady load (admin API and CLI), shares within a
// statistical bound, a header-matched canary, mirroring, and two gateways sharing one redis-server.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import type { Gateway } from '../../gateway/gateway.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { createStore } from '../../mesh-proxy/store/create-store.ts';
import type { Store } from '../../mesh-proxy/store/types.ts';
import { runCli } from '../helpers/cli.ts';
import { steadyLoad } from '../helpers/load.ts';
import { startTestGateway, stopAll } from '../helpers/mesh.ts';
import { waitFor } from '../helpers/ports.ts';
import { RedisServer, redisServerAvailable } from '../helpers/redis-server.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

const quietLog = { warn() {}, info() {} };

async function register(store: Store, apps: Array<{ app: TestApp; version: string }>): Promise<void> {
  for (const { app, version } of apps) {
    await store.registry.register({ service: 'catalog', id: app.name, address: '127.0.0.1', port: app.port, dc: 'local', zone: 'z1', metadata: { version } }, 60_000);
  }
}

async function putSplit(gw: Gateway, body: unknown): Promise<{ status: number; doc: Record<string, unknown> }> {
  const res = await request(`http://127.0.0.1:${gw.admin.port}/splits/catalog`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.statusCode, doc: (await res.body.json()) as Record<string, unknown> };
}

async function versionAt(gw: Gateway): Promise<number> {
  const res = await request(`http://127.0.0.1:${gw.admin.port}/splits/catalog`);
  const doc = (await res.body.json()) as { version?: number };
  return res.statusCode === 200 ? (doc.version ?? 0) : 0;
}

/** n sequential requests; how many each app answered. */
async function shares(gw: Gateway, n: number, headers: Record<string, string> = {}): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await request(`http://127.0.0.1:${gw.http.port}/catalog/x`, { headers });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    const app = String(res.headers['x-app']);
    out[app] = (out[app] ?? 0) + 1;
  }
  return out;
}

const v2Share = (s: Record<string, number>) => (s['v2-a'] ?? 0) / Object.values(s).reduce((a, b) => a + b, 0);

describe('traffic splits', () => {
  let store: MemoryStore;
  let apps: TestApp[];
  let gw: Gateway;

  before(async () => {
    store = new MemoryStore();
    apps = [await startApp('v1-a'), await startApp('v1-b'), await startApp('v2-a'), await startApp('v3-shadow')];
    await register(store, [
      { app: apps[0], version: 'v1' },
      { app: apps[1], version: 'v1' },
      { app: apps[2], version: 'v2' },
      { app: apps[3], version: 'v3' },
    ]);
    gw = await startTestGateway(store, { catalog: { zone: { prefer: false } } }, [{ name: 'catalog', match: { pathPrefix: '/catalog' }, rewrite: { stripPrefix: true }, service: 'catalog' }]);
  });

  after(async () => {
    await stopAll(gw);
    await Promise.all(apps.map((a) => a.close()));
    await store.close();
  });

  test('weights changed under steady load: no failed request, and each setting holds within a statistical bound', async () => {
    const load = steadyLoad(`http://127.0.0.1:${gw.http.port}/catalog/x`, { concurrency: 4, pauseMs: 2, countHeader: 'x-app' });
    try {
      assert.equal((await putSplit(gw, { weights: { v1: 100, v2: 0 } })).status, 200);
      await waitFor('v1=100 applied', async () => ((await versionAt(gw)) >= 1 ? true : undefined), 5000, 10);
      const allV1 = await shares(gw, 200);
      assert.equal(allV1['v2-a'] ?? 0, 0, JSON.stringify(allV1));
      assert.equal(allV1['v3-shadow'] ?? 0, 0);

      const set = await putSplit(gw, { weights: { v1: 90, v2: 10 } });
      assert.equal(set.doc.version, 2);
      await waitFor('90/10 applied', async () => ((await versionAt(gw)) >= 2 ? true : undefined), 5000, 10);
      // 2000 draws at p = 0.1: sd ≈ 0.0067; ±0.035 is more than 5 sd.
      const ninety = await shares(gw, 2000);
      assert.ok(Math.abs(v2Share(ninety) - 0.1) < 0.035, `v2 share ${v2Share(ninety)} (${JSON.stringify(ninety)})`);

      // The CLI, as an operator runs it.
      const cli = await runCli(['split', 'set', 'catalog', 'v1=0', 'v2=100', '--admin', `http://127.0.0.1:${gw.admin.port}`]);
      assert.equal(cli.code, 0, cli.stderr);
      assert.match(cli.stdout, /catalog: version 3: v1=0 v2=100/);
      await waitFor('0/100 applied', async () => ((await versionAt(gw)) >= 3 ? true : undefined), 5000, 10);
      const allV2 = await shares(gw, 100);
      assert.deepEqual(allV2, { 'v2-a': 100 });
    } finally {
      const result = await load.stop();
      console.log(`# ${result.ok} requests under load while the split changed, ${result.failures.length} failed`);
      assert.deepEqual(result.failures.slice(0, 3), []);
    }
    const show = await runCli(['split', 'show', 'catalog', '--admin', `http://127.0.0.1:${gw.admin.port}`]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /catalog\s+3\s+version\s+v1=0 v2=100/);
  });

  test('a header-matched canary: only requests with the header go to v2', async () => {
    const r = await putSplit(gw, { weights: { v1: 100, v2: 0 }, match: [{ header: { name: 'x-canary', value: 'always' }, subset: 'v2' }] });
    assert.equal(r.status, 200, JSON.stringify(r.doc));
    await waitFor('canary applied', async () => ((await versionAt(gw)) >= (r.doc.version as number) ? true : undefined), 5000, 10);
    assert.deepEqual(await shares(gw, 30, { 'x-canary': 'always' }), { 'v2-a': 30 });
    const others = await shares(gw, 60);
    assert.equal(others['v2-a'] ?? 0, 0);
  });

  test("a subset whose endpoints are all broken hands its share to the rest of the service once its breaker opens; the others' breakers stay apart", async () => {
    const r = await putSplit(gw, { weights: { v1: 0, v2: 100 } });
    await waitFor('0/100 applied', async () => ((await versionAt(gw)) >= (r.doc.version as number) ? true : undefined), 5000, 10);
    apps[2].handler = (_req, res) => {
      res.writeHead(503, { 'x-app': 'v2-a' });
      res.end('broken');
    };
    try {
      // The v2 endpoint answers 503 until its breaker opens (5 consecutive failures); then v1 takes over.
      const served = await waitFor('v1 serves the v2 share', async () => {
        const res = await request(`http://127.0.0.1:${gw.http.port}/catalog/x`);
        await res.body.dump();
        return res.statusCode === 200 && String(res.headers['x-app']).startsWith('v1-') ? true : undefined;
      }, 10_000, 10);
      assert.equal(served, true);
      const s = await shares(gw, 20);
      assert.equal(s['v2-a'] ?? 0, 0, JSON.stringify(s));
      const metrics = await (await request(`http://127.0.0.1:${gw.admin.port}/metrics`)).body.text();
      assert.match(metrics, /meshgate_split_fallbacks_total\{service="catalog",subset="v2"\} [1-9]/);
    } finally {
      apps[2].handler = undefined;
    }
  });

  test('bad input is refused with a clear error; a stale expectVersion is a conflict', async () => {
    const bad = await putSplit(gw, { weights: { v1: 'ninety' } });
    assert.equal(bad.status, 400);
    assert.equal((bad.doc.error as { code: string }).code, 'SPLIT_INVALID');
    assert.match((bad.doc.error as { message: string }).message, /weights.v1/);
    const stale = await putSplit(gw, { weights: { v1: 1 }, expectVersion: 1 });
    assert.equal(stale.status, 409);
    const cli = await runCli(['split', 'set', 'catalog', 'v1:90', '--admin', `http://127.0.0.1:${gw.admin.port}`]);
    assert.equal(cli.code, 2);
    assert.match(cli.stderr, /SUBSET=WEIGHT/);
    // Refused by the proxy itself (every weight 0): also a usage error, naming the problem.
    const zero = await runCli(['split', 'set', 'catalog', 'v1=0', '--admin', `http://127.0.0.1:${gw.admin.port}`]);
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /at least one weight must be above 0/);
    const none = await runCli(['split', 'clear', 'nosuch', '--admin', `http://127.0.0.1:${gw.admin.port}`]);
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stdout, /nosuch had no traffic split/);
    const down = await runCli(['split', 'show', '--admin', 'http://127.0.0.1:1']);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach the admin API at http:\/\/127\.0\.0\.1:1/);
  });

  test('mirroring: v3 receives shadow copies, the caller is answered by v1 only and never waits for the mirror', async () => {
    const before = apps[3].received.length;
    // The mirror answers after 2 s: a caller that waited for it would be slow.
    apps[3].handler = (_req, res) => setTimeout(() => res.end('late'), 2000);
    try {
      const r = await putSplit(gw, { weights: { v1: 100 }, mirror: { subset: 'v3', percent: 100 } });
      await waitFor('mirror applied', async () => ((await versionAt(gw)) >= (r.doc.version as number) ? true : undefined), 5000, 10);
      const started = Date.now();
      const s = await shares(gw, 20);
      const took = Date.now() - started;
      assert.deepEqual(Object.keys(s).sort(), ['v1-a', 'v1-b'].filter((k) => s[k]).sort());
      assert.ok(took < 2000, `20 requests took ${took} ms: the caller did not wait for the 2 s mirror`);
      await waitFor('shadow copies arrive', () => (apps[3].received.length - before >= 20 ? true : undefined), 10_000, 20);
      const copy = apps[3].received[apps[3].received.length - 1];
      assert.equal(copy.headers['x-meshgate-shadow'], '1');
      assert.match(String(copy.headers.host), /-shadow/);
    } finally {
      apps[3].handler = undefined;
    }
    const clear = await runCli(['split', 'clear', 'catalog', '--admin', `http://127.0.0.1:${gw.admin.port}`]);
    assert.equal(clear.code, 0, clear.stderr);
  });
});

describe('traffic splits shared through Redis', { skip: !redisServerAvailable() && 'redis-server is not installed' }, () => {
  test('a split set on one gateway is applied by another sharing the store; versions increase; with Redis gone the last known split stays', async () => {
    const redis = await RedisServer.start();
    const apps = [await startApp('v1-r'), await startApp('v2-r')];
    const seed = await createStore({ kind: 'redis', url: redis.url, keyPrefix: 'meshgate:', connectTimeout: '2s', commandTimeout: '1s' }, quietLog);
    await seed.ready(5000);
    await register(seed, [
      { app: apps[0], version: 'v1' },
      { app: apps[1], version: 'v2' },
    ]);
    const url = { url: redis.url };
    const a = await startTestGateway(url, { catalog: {} }, [{ name: 'catalog', match: { pathPrefix: '/catalog' }, service: 'catalog' }], 'gw-a');
    const b = await startTestGateway(url, { catalog: {} }, [{ name: 'catalog', match: { pathPrefix: '/catalog' }, service: 'catalog' }], 'gw-b');
    try {
      const t0 = Date.now();
      const r = await putSplit(a, { weights: { v1: 0, v2: 100 } });
      assert.equal(r.status, 200);
      await waitFor('gateway b applies it', async () => ((await versionAt(b)) === r.doc.version ? true : undefined), 10_000, 5);
      console.log(`# applied by the other gateway ${Date.now() - t0} ms after the PUT`);
      const res = await request(`http://127.0.0.1:${b.http.port}/catalog/x`);
      await res.body.dump();
      assert.equal(res.headers['x-app'], 'v2-r');

      const r2 = await putSplit(b, { weights: { v1: 100, v2: 0 }, expectVersion: r.doc.version });
      assert.equal(r2.doc.version, (r.doc.version as number) + 1);
      await waitFor('gateway a applies the newer one', async () => ((await versionAt(a)) === r2.doc.version ? true : undefined), 10_000, 5);

      // Redis restarts empty: the gateways keep the split they know (last known state).
      await redis.kill();
      const during = await request(`http://127.0.0.1:${a.http.port}/catalog/x`);
      await during.body.dump();
      assert.equal(during.headers['x-app'], 'v1-r');
    } finally {
      await stopAll(a, b);
      await seed.close();
      await Promise.all(apps.map((x) => x.close()));
      await redis.stop();
    }
  });
});

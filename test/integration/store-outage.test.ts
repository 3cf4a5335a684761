// Store outages with a real Redis: killed under traffic (routing continues from the last known
// endpoints), a proxy restarted while it is down (endpoints from the disk snapshot), and Redis
// restarted empty (proxies re-register, events flow again).
//
// The tests share one Redis and run in order: 6 (kill) → 8 (observer restart, Redis still down)
// → 7 (Redis restarted).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { RedisServer } from '../helpers/redis-server.ts';
import { cleanEnv } from '../helpers/env.ts';
import { agent, callThrough, endpointsOf, findIn, REGISTRY_CHANNEL, REGISTRY_PREFIX, type EndpointsDoc, type EndpointView } from '../helpers/endpoints-view.ts';
import { MeshgateProcess, tempDir, writeConfig } from '../helpers/cli.ts';
import { steadyLoad, type LoadResult, type SteadyLoad } from '../helpers/load.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';
import { freePort, waitFor } from '../helpers/ports.ts';

const REG = REGISTRY_PREFIX;
const CHANNEL = REGISTRY_CHANNEL;


interface Proxy {
  id: string;
  proc: MeshgateProcess;
  file: string;
  admin: string;
  outbound: number;
  stateDir: string;
  env: Record<string, string>;
}

let redis: RedisServer;
/** Every RedisServer this file started (test 7 starts a second one on the same port). */
const redisServers: RedisServer[] = [];
const apps: TestApp[] = [];
const procs: MeshgateProcess[] = [];
const loads: SteadyLoad[] = [];
const dirs: string[] = [];
let catalogA: TestApp;
let catalogB: TestApp;
let ordersApp: TestApp;
let catalog1: Proxy;
let observer: Proxy;

async function metric(p: Proxy, name: string): Promise<number | undefined> {
  const res = await request(`${p.admin}/metrics`, { dispatcher: agent });
  const text = await res.body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

function endpoints(p: Proxy): Promise<EndpointsDoc> {
  return endpointsOf(p.admin);
}

/** The registered part of an /endpoints entry (the view also carries live balancer and breaker state). */
function identity(e: EndpointView | undefined): Pick<EndpointView, 'id' | 'address' | 'port' | 'dc' | 'zone' | 'metadata'> {
  assert.ok(e, 'endpoint present');
  const { id, address, port, dc, zone, metadata } = e;
  return { id, address, port, dc, zone, metadata };
}

/** A short-lived client: Redis comes and goes in this file. */
async function withRedis<T>(fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  c.on('error', () => {});
  try {
    await c.connect();
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

async function registered(service: string, id: string): Promise<boolean> {
  return withRedis(async (c) => (await c.hexists(`${REG}d:${service}`, id)) === 1 && (await c.zscore(`${REG}i:${service}`, id)) !== null);
}

function spawnProxy(p: Omit<Proxy, 'proc'>): MeshgateProcess {
  const proc = new MeshgateProcess(['proxy', '--config', p.file], p.env);
  procs.push(proc);
  return proc;
}

/** Writes a config and starts `meshgate proxy --config FILE`, waiting for /ready. */
async function startProxy(o: { service: string; instance: string; appPort: number; services?: Record<string, object> }): Promise<Proxy> {
  const stateDir = tempDir();
  dirs.push(stateDir);
  const [outbound, adminPort] = [await freePort(), await freePort()];
  const file = writeConfig(stateDir, `${o.instance}.yaml`, {
    node: { service: o.service, instance: o.instance, dc: 'local', zone: 'a', metadata: { version: 'v1' } },
    app: { address: '127.0.0.1', port: o.appPort },
    inbound: { address: '127.0.0.1', port: 0 },
    outbound: { address: '127.0.0.1', port: outbound },
    admin: { address: '127.0.0.1', port: adminPort },
    store: { kind: 'redis', url: redis.url },
    registration: { ttl: '2s', heartbeat: '500ms' },
    discovery: { resync: '500ms', stateDir },
    log: { level: 'warn', access: false },
    drainTimeout: '2s',
    ...(o.services ? { services: o.services } : {}),
  });
  // Pin the store to this file's Redis whatever the environment says; blank the other overrides.
  const env = { ...cleanEnv('warn'), MESHGATE_REDIS_URL: redis.url };
  const base = { id: o.instance, file, admin: `http://127.0.0.1:${adminPort}`, outbound, stateDir, env };
  const proc = spawnProxy(base);
  await proc.ready(base.admin, 30_000);
  return { ...base, proc };
}

/** Failed requests grouped by status and error code, e.g. `503 NO_ENDPOINTS ×421`. */
function failureSummary(r: LoadResult): string {
  const counts = new Map<string, number>();
  for (const f of r.failures) {
    let code = f.error ?? '';
    try {
      code = (JSON.parse(f.body ?? '') as { error: { code: string } }).error.code;
    } catch {
      // not a meshgate error body
    }
    const key = `${f.status ?? 'no response'} ${code}`.trim();
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${k} ×${n}`).join(', ') || 'none';
}

function diag(t: { diagnostic(msg: string): void }, msg: string): void {
  t.diagnostic(msg);
}

before(async () => {
  redis = await RedisServer.start();
  redisServers.push(redis);
  catalogA = await startApp('catalog-a');
  catalogB = await startApp('catalog-b');
  ordersApp = await startApp('orders');
  apps.push(catalogA, catalogB, ordersApp);
  [catalog1, observer] = await Promise.all([
    startProxy({ service: 'catalog', instance: 'catalog-1', appPort: catalogA.port }),
    // Round robin without zone preference: test 7 checks that every catalog instance gets traffic.
    startProxy({ service: 'orders', instance: 'orders-1', appPort: ordersApp.port, services: { catalog: { balancer: 'round-robin', zone: { prefer: false } } } }),
  ]);
  await waitFor('catalog-1 in the observer', async () => findIn(await endpoints(observer), 'catalog', 'catalog-1'), 15_000, 20);
});

after(async () => {
  await Promise.allSettled(loads.map((l) => l.stop()));
  await Promise.allSettled(procs.map((p) => p.stop('SIGTERM', 5000)));
  await Promise.allSettled(apps.map((a) => a.close()));
  await agent.close().catch(() => {});
  for (const r of redisServers) await r.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('6. Redis killed under steady traffic: the observer keeps routing with 0 failures; store_up 0, staleness grows', async (t) => {
  const load = steadyLoad(`http://127.0.0.1:${observer.outbound}/outage`, { concurrency: 2, pauseMs: 5, headers: { host: 'catalog' }, countHeader: 'x-app' });
  loads.push(load);
  let result: LoadResult | undefined;
  try {
    await waitFor('traffic flowing before the outage', () => (load.result.ok >= 20 ? true : undefined), 10_000);
    assert.equal(load.result.failures.length, 0, `failures before the outage: ${failureSummary(load.result)}`);
    assert.ok((await metric(observer, 'meshgate_store_up')) === 1);

    const sentBefore = load.result.sent;
    const killedAt = Date.now();
    await redis.kill();
    const downAt = await waitFor('meshgate_store_up 0 on the observer', async () => ((await metric(observer, 'meshgate_store_up')) === 0 ? Date.now() : undefined), 10_000, 20);
    const stale1 = (await metric(observer, 'meshgate_discovery_staleness_seconds'))!;
    // Keep the traffic going with Redis down for ~2.5 s (and at least 0.5 s between the two readings).
    await new Promise((r) => setTimeout(r, Math.max(500, killedAt + 2_500 - Date.now())));
    const stale2 = (await metric(observer, 'meshgate_discovery_staleness_seconds'))!;
    const doc = await endpoints(observer);
    const outageMs = Date.now() - killedAt;
    result = await load.stop();
    const during = result.sent - sentBefore;

    diag(t, `outage: store_up 0 observed ${downAt - killedAt} ms after the kill; traffic kept up for ${outageMs} ms with Redis down`);
    diag(t, `requests: ${during} sent while Redis was down (${result.sent} total, ${result.ok} ok, ${result.failures.length} failed); staleness ${stale1.toFixed(2)} s → ${stale2.toFixed(2)} s`);

    assert.equal(result.failures.length, 0, `failed requests: ${failureSummary(result)} ${JSON.stringify(result.failures.slice(0, 3))}`);
    assert.ok(during >= 10, `only ${during} requests were sent during the outage`);
    assert.deepEqual([...result.byHeader.keys()], ['catalog-a'], 'every request reached the catalog app');
    assert.ok(Number.isFinite(stale1) && Number.isFinite(stale2), `finite staleness (${stale1}, ${stale2})`);
    assert.ok(stale2 > stale1, `staleness grows during the outage (${stale1} → ${stale2})`);
    assert.ok(stale2 >= 1.5, `staleness ${stale2} s reflects the outage`);
    // The view is frozen at the last known endpoints, not emptied.
    assert.ok(findIn(doc, 'catalog', 'catalog-1'), JSON.stringify(doc.services));
    assert.ok(doc.stalenessSeconds !== null && doc.stalenessSeconds >= 1.5);
    assert.equal(await metric(catalog1, 'meshgate_store_up'), 0, 'the catalog sidecar also reports the store down');
  } finally {
    if (!result) await load.stop();
  }
});

test('8. disk snapshot: the observer restarted while Redis is down routes from the last known endpoints', async (t) => {
  assert.ok(await withRedis(async () => false).catch(() => true), 'Redis is still down (test 6)');
  // The snapshot the running observer kept in its stateDir names catalog-1.
  const snapshotFiles = readdirSync(observer.stateDir).filter((f) => f.endsWith('.json'));
  assert.ok(
    snapshotFiles.some((f) => readFileSync(join(observer.stateDir, f), 'utf8').includes('"catalog-1"')),
    `an endpoint snapshot naming catalog-1 in ${observer.stateDir}: ${snapshotFiles.join(', ')}`,
  );
  const before = await endpoints(observer);
  const known = identity(findIn(before, 'catalog', 'catalog-1'));

  const stoppedAt = Date.now();
  const r = await observer.proc.stop('SIGTERM');
  assert.equal(r.code, 0, `the observer exits 0 on SIGTERM even with the store down\nstderr: ${r.stderr.slice(-1000)}`);
  diag(t, `observer SIGTERM → exit with Redis down: ${Date.now() - stoppedAt} ms`);

  // Same config file: same instance id, same stateDir, same ports.
  const spawnedAt = Date.now();
  const proc = spawnProxy(observer);
  observer = { ...observer, proc };
  await proc.ready(observer.admin, 30_000);
  diag(t, `restarted observer: spawn → /ready with Redis down ${Date.now() - spawnedAt} ms`);

  const doc = await endpoints(observer);
  assert.equal(doc.source, 'disk', JSON.stringify(doc));
  assert.ok(known.id === 'catalog-1' && known.port > 0);
  assert.deepEqual(identity(findIn(doc, 'catalog', 'catalog-1')), known, 'the last known catalog endpoint, unchanged');
  assert.ok(doc.lastSyncAt !== null && doc.stalenessSeconds !== null && doc.stalenessSeconds > 0, `staleness is reported: ${doc.lastSyncAt}, ${doc.stalenessSeconds}`);
  assert.equal(await metric(observer, 'meshgate_store_up'), 0);

  const n = catalogA.received.length;
  for (let i = 0; i < 5; i++) {
    const res = await callThrough(observer.outbound, 'catalog', `/from-disk/${i}`);
    assert.equal(res.status, 200, res.body);
    assert.equal(res.app, 'catalog-a');
  }
  assert.equal(catalogA.received.length - n, 5);
  assert.ok(catalogA.received.slice(-5).every((rq, i) => rq.url === `/from-disk/${i}`));
});

/** Traffic through the observer across the Redis restart of test 7 (checked by test 7b). */
let acrossRestart: LoadResult | undefined;

test('7. Redis restarted empty: proxies re-register, events flow again, a new sidecar is seen', async (t) => {
  // Steady traffic across the restart: measured here, asserted in 7b.
  const load = steadyLoad(`http://127.0.0.1:${observer.outbound}/restart`, { concurrency: 2, pauseMs: 5, headers: { host: 'catalog' }, countHeader: 'x-app' });
  loads.push(load);
  try {
    await waitFor('traffic flowing before the restart', () => (load.result.ok >= 10 ? true : undefined), 10_000);
    const restartedAt = Date.now();
    // RedisServer.restart() refuses to run after kill(): it takes a SIGKILLed process (exitCode
    // null, signalCode 'SIGKILL') for a running one (see the report). A new RedisServer on the same
    // port is the same thing: a fresh, empty redis-server at the same address.
    redis = await RedisServer.start(redis.port);
    redisServers.push(redis);
    const upAt = Date.now();

    const [cat1At, obsAt] = await Promise.all([
      waitFor('catalog-1 re-registered', async () => ((await registered('catalog', 'catalog-1').catch(() => false)) ? Date.now() : undefined), 15_000, 20),
      waitFor('orders-1 re-registered', async () => ((await registered('orders', 'orders-1').catch(() => false)) ? Date.now() : undefined), 15_000, 20),
    ]);
    diag(t, `Redis (re)start took ${upAt - restartedAt} ms; re-registered after Redis was up: catalog-1 ${cat1At - upAt} ms, orders-1 ${obsAt - upAt} ms`);

    // The observer (started from disk in test 8) is back on the store and sees catalog-1 from it.
    await waitFor('observer back on the store', async () => {
      const doc = await endpoints(observer);
      return doc.source === 'store' && findIn(doc, 'catalog', 'catalog-1') && (await metric(observer, 'meshgate_store_up')) === 1 ? true : undefined;
    }, 15_000, 50);
    // Both proxies' subscribers are back on the events channel.
    await waitFor('2 subscribers on the events channel', async () =>
      withRedis(async (c) => {
        const [, n] = (await c.pubsub('NUMSUB', CHANNEL)) as [string, number];
        return Number(n) >= 2 ? true : undefined;
      }).catch(() => undefined), 15_000, 50);
    await new Promise((r) => setTimeout(r, 300));
    acrossRestart = await load.stop();
    diag(t, `traffic across the restart: ${acrossRestart.sent} sent, ${acrossRestart.ok} ok, ${acrossRestart.failures.length} failed (${failureSummary(acrossRestart)})`);
  } finally {
    if (!acrossRestart) await load.stop();
  }

  // A sidecar started after the restart registers and is seen by the observer, which routes to it.
  const catalog2 = await startProxy({ service: 'catalog', instance: 'catalog-2', appPort: catalogB.port });
  await waitFor('catalog-2 in Redis', async () => ((await registered('catalog', 'catalog-2')) ? true : undefined), 10_000, 20);
  await waitFor('catalog-2 in the observer', async () => findIn(await endpoints(observer), 'catalog', 'catalog-2'), 10_000, 20);
  const seenApps = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const res = await callThrough(observer.outbound, 'catalog');
    assert.equal(res.status, 200, res.body);
    seenApps.add(res.app);
  }
  assert.deepEqual([...seenApps].sort(), ['catalog-a', 'catalog-b']);
  const stop = await catalog2.proc.stop('SIGTERM');
  assert.equal(stop.code, 0);
});

test(
  '7b. no failed requests through the observer while Redis restarts empty',
  () => {
    assert.ok(acrossRestart, 'needs test 7');
    assert.ok(acrossRestart.ok > 0);
    assert.equal(acrossRestart.failures.length, 0, `${acrossRestart.failures.length} of ${acrossRestart.sent} failed: ${failureSummary(acrossRestart)}`);
  },
);

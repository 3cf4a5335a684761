// Discovery through a real Redis: sidecars started with the CLI register, are seen by another
// sidecar (the observer), carry their metadata, leave on SIGTERM and expire by TTL after SIGKILL.
//
// The observer ("orders-1") runs with a 60 s resync, longer than this whole file: after its initial
// sync everything it learns arrives by pub/sub events, so tests 1-5 check the event path, not the
// periodic repair. The catalog sidecars resync every 500 ms; their snapshots purge expired entries
// (and publish the "down" event) in test 4.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { RedisServer } from '../helpers/redis-server.ts';
import { cleanEnv } from '../helpers/env.ts';
import { agent, callThrough, endpointsOf, findIn, getJson, REGISTRY_CHANNEL, REGISTRY_PREFIX, type EndpointsDoc, type EndpointView } from '../helpers/endpoints-view.ts';
import { MeshgateProcess, tempDir, writeConfig } from '../helpers/cli.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';
import { freePort, waitFor } from '../helpers/ports.ts';

const REG = REGISTRY_PREFIX;
const CHANNEL = REGISTRY_CHANNEL;


interface Proxy {
  id: string;
  proc: MeshgateProcess;
  admin: string;
  outbound: number;
  dir: string;
  spawnedAt: number;
}

let redis: RedisServer;
let rc: Redis;
const apps: TestApp[] = [];
const proxies: Proxy[] = [];
const dirs: string[] = [];
let catalogA: TestApp;
let catalogB: TestApp;
let ordersApp: TestApp;
let observer: Proxy;

async function getText(url: string): Promise<string> {
  const res = await request(url, { dispatcher: agent });
  return res.body.text();
}

/** GET through a sidecar's outbound listener, naming the service in the Host header. */
function endpoints(p: Proxy): Promise<EndpointsDoc> {
  return endpointsOf(p.admin);
}

/** Starts `meshgate proxy --config FILE` and waits for /ready. */
async function startProxy(o: {
  service: string;
  instance: string;
  appPort: number;
  dc?: string;
  zone?: string;
  metadata?: Record<string, string>;
  resync?: string;
  services?: Record<string, object>;
}): Promise<Proxy> {
  const dir = tempDir();
  dirs.push(dir);
  const [outbound, adminPort] = [await freePort(), await freePort()];
  const file = writeConfig(dir, `${o.instance}.yaml`, {
    node: { service: o.service, instance: o.instance, dc: o.dc ?? 'local', zone: o.zone ?? 'a', metadata: o.metadata ?? {} },
    app: { address: '127.0.0.1', port: o.appPort },
    inbound: { address: '127.0.0.1', port: 0 },
    outbound: { address: '127.0.0.1', port: outbound },
    admin: { address: '127.0.0.1', port: adminPort },
    store: { kind: 'redis', url: redis.url },
    registration: { ttl: '2s', heartbeat: '500ms' },
    discovery: { resync: o.resync ?? '500ms', stateDir: dir },
    log: { level: 'warn', access: false },
    drainTimeout: '2s',
    ...(o.services ? { services: o.services } : {}),
  });
  // Per-host environment overrides must not redirect these proxies (e.g. to the machine's shared Redis):
  // the store URL is pinned to this file's Redis and the others are blanked (empty = ignored).
  const env = { ...cleanEnv('warn'), MESHGATE_REDIS_URL: redis.url };
  const spawnedAt = Date.now();
  const proc = new MeshgateProcess(['proxy', '--config', file], env);
  const p: Proxy = { id: o.instance, proc, admin: `http://127.0.0.1:${adminPort}`, outbound, dir, spawnedAt };
  proxies.push(p);
  await proc.ready(p.admin, 30_000);
  return p;
}

/** The instance a sidecar registered (its inbound port is the one it bound, since the config says 0). */
async function registeredInstance(p: Proxy): Promise<Pick<EndpointView, 'id' | 'address' | 'port' | 'dc' | 'zone' | 'metadata'> & { service: string }> {
  const doc = await waitFor(`${p.id} /instance`, async () => {
    const d = await getJson<{ instance?: Pick<EndpointView, 'id' | 'address' | 'port' | 'dc' | 'zone' | 'metadata'> & { service: string } }>(`${p.admin}/instance`);
    return d.instance;
  }, 20_000);
  return doc;
}

async function redisEntry(service: string, id: string): Promise<{ json: Record<string, unknown> | undefined; expiry: number | undefined; inServices: boolean }> {
  const [json, score, member] = await Promise.all([rc.hget(`${REG}d:${service}`, id), rc.zscore(`${REG}i:${service}`, id), rc.sismember(`${REG}services`, service)]);
  return { json: json ? (JSON.parse(json) as Record<string, unknown>) : undefined, expiry: score === null ? undefined : Number(score), inServices: member === 1 };
}

async function redisNowMs(): Promise<number> {
  const [s, us] = await rc.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

function diag(t: { diagnostic(msg: string): void }, msg: string): void {
  t.diagnostic(msg);
}

before(async () => {
  redis = await RedisServer.start();
  rc = new Redis(redis.url, { maxRetriesPerRequest: 2, lazyConnect: false });
  rc.on('error', () => {});
  catalogA = await startApp('catalog-a');
  catalogB = await startApp('catalog-b');
  ordersApp = await startApp('orders');
  apps.push(catalogA, catalogB, ordersApp);
  // Round robin without zone preference, so that "every instance receives traffic" is deterministic
  // (the default p2c-ewma balancer with zone preference chooses by latency and zone).
  observer = await startProxy({
    service: 'orders', instance: 'orders-1', appPort: ordersApp.port, zone: 'a', metadata: { version: 'v1' }, resync: '60s',
    services: { catalog: { balancer: 'round-robin', zone: { prefer: false } } },
  });
});

after(async () => {
  await Promise.allSettled(proxies.map((p) => p.proc.stop('SIGTERM', 5000)));
  rc?.disconnect();
  await Promise.allSettled(apps.map((a) => a.close()));
  await agent.close().catch(() => {});
  await redis?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let catalog1: Proxy;
let catalog2: Proxy;

test('1. register: a CLI-started sidecar is in Redis and in the observer\'s /endpoints, and traffic reaches its app', async (t) => {
  catalog1 = await startProxy({ service: 'catalog', instance: 'catalog-1', appPort: catalogA.port, zone: 'a', metadata: { version: 'v1' } });
  const inst = await registeredInstance(catalog1);
  assert.equal(inst.id, 'catalog-1');
  assert.equal(inst.address, '127.0.0.1');
  assert.ok(inst.port > 0, 'the registered port is the bound inbound port, not 0');

  // In Redis: the service set, the expiry zset (in the future) and the instance JSON.
  const entry = await waitFor('catalog-1 in Redis', async () => {
    const e = await redisEntry('catalog', 'catalog-1');
    return e.json ? e : undefined;
  }, 10_000);
  assert.equal(entry.inServices, true, 'catalog is in the services set');
  assert.equal(entry.json?.port, inst.port);
  assert.equal(entry.json?.address, '127.0.0.1');
  assert.ok(entry.expiry !== undefined && entry.expiry > (await redisNowMs()), `expiry ${entry.expiry} is in the future`);
  assert.ok(entry.expiry! - (await redisNowMs()) <= 2_000 + 100, 'expiry is at most one TTL (2 s) ahead');

  // In the observer's view (learned by an event: its own resync is 60 s).
  const seen = await waitFor('catalog-1 in the observer', async () => findIn(await endpoints(observer), 'catalog', 'catalog-1'), 10_000, 20);
  assert.equal(seen.port, inst.port);
  assert.equal(seen.address, '127.0.0.1');
  assert.equal((await endpoints(observer)).source, 'store');

  // Through the observer's outbound listener: Host: catalog reaches the catalog app via catalog-1's inbound.
  const before = catalogA.received.length;
  for (let i = 0; i < 3; i++) {
    const r = await callThrough(observer.outbound, 'catalog', `/items/${i}?q=1`);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.app, 'catalog-a');
    assert.equal((JSON.parse(r.body) as { url: string }).url, `/items/${i}?q=1`);
  }
  assert.equal(catalogA.received.length - before, 3, 'the catalog app received the 3 requests');

  // An unknown service is a 404 NO_ROUTE, answered by the sidecar itself.
  const unknown = await callThrough(observer.outbound, 'no-such-service');
  assert.equal(unknown.status, 404);
  assert.equal((JSON.parse(unknown.body) as { error: { code: string } }).error.code, 'NO_ROUTE');
});

test('2. a newly started instance reaches a running observer by pub/sub, quickly', async (t) => {
  // Our own subscriber timestamps the registration event as Redis publishes it.
  const sub = new Redis(redis.url, { lazyConnect: false });
  sub.on('error', () => {});
  let publishedAt: number | undefined;
  sub.on('message', (_ch: string, msg: string) => {
    if (publishedAt === undefined && msg.startsWith('up ') && (JSON.parse(msg.slice(3)) as { id: string }).id === 'catalog-2') publishedAt = Date.now();
  });
  await sub.subscribe(CHANNEL);
  try {
    // Poll the observer every 20 ms from before the process is spawned.
    let seenAt: number | undefined;
    let polling = true;
    const poller = (async () => {
      const deadline = Date.now() + 40_000;
      while (polling && seenAt === undefined && Date.now() < deadline) {
        const doc = await endpoints(observer).catch(() => undefined);
        if (doc && findIn(doc, 'catalog', 'catalog-2')) seenAt = Date.now();
        else await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      catalog2 = await startProxy({ service: 'catalog', instance: 'catalog-2', appPort: catalogB.port, dc: 'west', zone: 'b', metadata: { version: 'v2', track: 'canary' } });
      const readyAt = Date.now();
      await waitFor('the registration event', () => publishedAt, 10_000, 5);
      await waitFor('catalog-2 in the observer', () => seenAt, 10_000, 10);
      const latency = seenAt! - publishedAt!;
      diag(t, `pub/sub propagation (event published → visible in observer /endpoints, 20 ms polling): ${latency} ms`);
      diag(t, `catalog-2: spawn → /ready ${readyAt - catalog2.spawnedAt} ms, spawn → event published ${publishedAt! - catalog2.spawnedAt} ms, spawn → visible in observer ${seenAt! - catalog2.spawnedAt} ms`);
      assert.ok(latency < 10_000, `visible ${latency} ms after the event (bound 10 s)`);
      // Only the event can have delivered it: the observer's last full sync predates the event.
      const doc = await endpoints(observer);
      assert.ok(doc.lastSyncAt !== null && Date.parse(doc.lastSyncAt) < publishedAt!, `observer last synced at ${doc.lastSyncAt}, before the event`);
    } finally {
      polling = false;
      await poller;
    }

    // Round robin now reaches both catalog apps.
    const seenApps = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const r = await callThrough(observer.outbound, 'catalog');
      assert.equal(r.status, 200, r.body);
      seenApps.add(r.app);
    }
    assert.deepEqual([...seenApps].sort(), ['catalog-a', 'catalog-b']);
  } finally {
    sub.disconnect();
  }
});

test('5. metadata, dc and zone are carried to the observer\'s view', async () => {
  assert.ok(catalog1 && catalog2, 'needs tests 1 and 2');
  const doc = await endpoints(observer);
  const c1 = findIn(doc, 'catalog', 'catalog-1');
  const c2 = findIn(doc, 'catalog', 'catalog-2');
  assert.ok(c1 && c2, JSON.stringify(doc.services));
  assert.equal(c1.dc, 'local');
  assert.equal(c1.zone, 'a');
  assert.deepEqual(c1.metadata, { version: 'v1' });
  assert.equal(c2.dc, 'west');
  assert.equal(c2.zone, 'b');
  assert.deepEqual(c2.metadata, { version: 'v2', track: 'canary' });

  // The same in Redis.
  const e2 = await redisEntry('catalog', 'catalog-2');
  assert.equal(e2.json?.dc, 'west');
  assert.equal(e2.json?.zone, 'b');
  assert.deepEqual(e2.json?.metadata, { version: 'v2', track: 'canary' });

  // And per datacenter in the observer's metrics.
  const metrics = await getText(`${observer.admin}/metrics`);
  const gauge = (dc: string) =>
    metrics.split('\n').find((l) => l.startsWith('meshgate_discovery_endpoints{') && l.includes('service="catalog"') && l.includes(`dc="${dc}"`));
  assert.match(gauge('local') ?? '', / 1$/, 'one catalog endpoint in dc local');
  assert.match(gauge('west') ?? '', / 1$/, 'one catalog endpoint in dc west');
});

test('4. TTL expiry: a SIGKILLed sidecar (no deregistration) disappears after about the TTL', async (t) => {
  assert.ok(catalog1 && catalog2, 'needs tests 1 and 2');
  const killedAt = Date.now();
  const r = await catalog1.proc.stop('SIGKILL');
  assert.equal(r.signal, 'SIGKILL');
  // It did not deregister: the entry is still there, expiring at its last heartbeat + TTL.
  const entry = await redisEntry('catalog', 'catalog-1');
  const expiry = entry.expiry;
  if (expiry !== undefined) {
    assert.ok(entry.json, 'the instance JSON is still in Redis after SIGKILL');
    diag(t, `catalog-1 expires (Redis time) ${expiry - (await redisNowMs())} ms after the kill was observed`);
  } else diag(t, 'catalog-1 was already purged when first read (its last heartbeat was > 1 TTL before the kill)');

  const goneAt = await waitFor('catalog-1 to leave the observer', async () => {
    const doc = await endpoints(observer);
    return findIn(doc, 'catalog', 'catalog-1') ? undefined : Date.now();
  }, 15_000, 20);
  const redisNow = await redisNowMs();
  diag(t, `TTL expiry (SIGKILL → gone from observer; ttl 2s, heartbeat 500ms, purging resync 500ms): ${goneAt - killedAt} ms`);
  assert.ok(goneAt - killedAt < 10_000, `gone after ${goneAt - killedAt} ms (bound 10 s)`);
  if (expiry !== undefined) assert.ok(redisNow >= expiry, `not removed before its TTL ran out (Redis time ${redisNow} ≥ expiry ${expiry})`);

  // Purged from Redis too; the other instance is untouched and still serves.
  const purged = await redisEntry('catalog', 'catalog-1');
  assert.equal(purged.json, undefined);
  assert.equal(purged.expiry, undefined);
  assert.ok(findIn(await endpoints(observer), 'catalog', 'catalog-2'));
  for (let i = 0; i < 4; i++) {
    const res = await callThrough(observer.outbound, 'catalog');
    assert.equal(res.status, 200, res.body);
    assert.equal(res.app, 'catalog-b');
  }
});

test('3. deregister on SIGTERM: exit code 0, gone from the observer and from Redis', async (t) => {
  assert.ok(catalog2, 'needs test 2');
  assert.ok((await redisEntry('catalog', 'catalog-2')).json, 'catalog-2 is registered before the stop');
  const stoppedAt = Date.now();
  const r = await catalog2.proc.stop('SIGTERM');
  const exitedAt = Date.now();
  assert.equal(r.signal, null, `exited by itself, not by a signal\nstderr: ${r.stderr.slice(-1000)}`);
  assert.equal(r.code, 0, `exit code 0\nstderr: ${r.stderr.slice(-1000)}`);

  const entry = await redisEntry('catalog', 'catalog-2');
  assert.equal(entry.json, undefined, 'removed from Redis at once (not left to the TTL)');
  assert.equal(entry.expiry, undefined);
  const goneAt = await waitFor('catalog-2 to leave the observer', async () => {
    const doc = await endpoints(observer);
    return findIn(doc, 'catalog', 'catalog-2') ? undefined : Date.now();
  }, 10_000, 20);
  diag(t, `SIGTERM → exit ${exitedAt - stoppedAt} ms; SIGTERM → gone from observer ${goneAt - stoppedAt} ms`);

  // No catalog instance is left: the observer still knows the service, so it answers 503 NO_ENDPOINTS.
  const doc = await endpoints(observer);
  assert.deepEqual(doc.services.catalog ?? [], []);
  const res = await callThrough(observer.outbound, 'catalog');
  assert.equal(res.status, 503, res.body);
  assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'NO_ENDPOINTS');
});

test(
  '9. the observer\'s view includes its own registration (no event lost during startup)',
  async () => {
    const doc = await endpoints(observer);
    assert.ok(findIn(doc, 'orders', 'orders-1'), `orders-1 missing from its own view: ${JSON.stringify(doc.services)}`);
  },
);

// Failover between two datacenters, each with its own redis-server, its own catalog instances
// (sidecars with mTLS) and its own edge gateway; the edges know each other as peers.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { buildGatewayConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import type { Sidecar } from '../../mesh-proxy/sidecar.ts';
import { tempDir } from '../helpers/cli.ts';
import { createTestCa, tlsRequest, type TestCa } from '../helpers/mtls.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { RedisServer, redisServerAvailable } from '../helpers/redis-server.ts';
import { steadyLoad } from '../helpers/load.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';
import { startInstance, stopAll, type Instance } from '../helpers/mesh.ts';

const quiet = { level: 'silent', access: false } as const;

interface Dc {
  name: string;
  redis: RedisServer;
  apps: TestApp[];
  sidecars: Sidecar[];
  gateway: Gateway;
  peerPort: number;
}

/** A catalog instance (app + sidecar with mTLS) registered in `dcName`'s own store. */
async function startDcInstance(ca: TestCa, dcName: string, redis: RedisServer, id: string): Promise<Instance> {
  return startInstance({ url: redis.url }, 'catalog', id, { node: { service: 'catalog', instance: id, dc: dcName, zone: `${dcName}-a` }, mesh: { caDir: ca.dir } });
}

async function startDc(ca: TestCa, name: string, peerPort: number, peer: { dc: string; port: number }): Promise<Dc> {
  const redis = await RedisServer.start();
  const a = await startDcInstance(ca, name, redis, `${name}-1`);
  const b = await startDcInstance(ca, name, redis, `${name}-2`);
  const gateway = await startGateway(
    buildGatewayConfig(
      {
        node: { name: `edge-${name}`, dc: name, zone: `${name}-a` },
        listeners: { http: { address: '127.0.0.1', port: 0 }, peer: { address: '127.0.0.1', port: peerPort } },
        admin: { port: 0 },
        store: { kind: 'redis', url: redis.url },
        discovery: { resync: '500ms', stateDir: tempDir() },
        mesh: { caDir: ca.dir, service: 'edge' },
        log: quiet,
        services: { catalog: { retries: { attempts: 2 }, outlier: { consecutiveConnectFailures: 2, baseEjection: '5s' } } },
        routes: [{ name: 'catalog', match: { pathPrefix: '/catalog' }, rewrite: { stripPrefix: true }, service: 'catalog' }],
        datacenters: {
          failover: { threshold: 0.7, hysteresis: 0.1, failbackAfter: '1s', checkEvery: '200ms' },
          peers: [{ dc: peer.dc, address: '127.0.0.1', port: peer.port }],
        },
      },
      `test:edge-${name}`,
    ),
  );
  return { name, redis, apps: [a.app, b.app], sidecars: [a.sidecar, b.sidecar], gateway, peerPort };
}

async function servedBy(gw: Gateway, path = '/catalog/x'): Promise<{ status: number; app: string; body: string }> {
  const res = await request(`http://127.0.0.1:${gw.http.port}${path}`);
  const body = await res.body.text();
  return { status: res.statusCode, app: String(res.headers['x-app'] ?? ''), body };
}

async function describeDcs(gw: Gateway): Promise<{ services: Record<string, { mode: string; localShare: number; failoverTo: string | null }> }> {
  const res = await request(`http://127.0.0.1:${gw.admin.port}/datacenters`);
  return (await res.body.json()) as never;
}

describe('failover between datacenters', { skip: !redisServerAvailable() && 'redis-server is not installed' }, () => {
  let ca: TestCa;
  let a: Dc;
  let b: Dc;

  before(async () => {
    ca = await createTestCa();
    const [pa, pb] = [await freePort(), await freePort()];
    a = await startDc(ca, 'dc-a', pa, { dc: 'dc-b', port: pb });
    b = await startDc(ca, 'dc-b', pb, { dc: 'dc-a', port: pa });
    // Both edges see their own two instances and the peer as reachable.
    for (const dc of [a, b]) {
      await waitFor(`${dc.name} sees its instances and its peer`, async () => {
        const d = await describeDcs(dc.gateway);
        const s = d.services.catalog as unknown as { datacenters: Array<{ dc: string; healthy: number; reachable?: boolean }> };
        return s.datacenters.every((x) => x.healthy === 2) ? true : undefined;
      }, 20_000, 100);
    }
  });

  after(async () => {
    await stopAll(a?.gateway, b?.gateway, ...(a?.sidecars ?? []), ...(b?.sidecars ?? []));
    await Promise.all([...(a?.apps ?? []), ...(b?.apps ?? [])].map((x) => x.close()));
    await Promise.all([a?.redis.stop(), b?.redis.stop()]);
  });

  test('each edge serves from its own datacenter while it is healthy', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await servedBy(a.gateway);
      assert.equal(r.status, 200, r.body);
      assert.match(r.app, /^dc-a-/);
    }
    const d = await describeDcs(a.gateway);
    assert.equal(d.services.catalog.mode, 'local');
    assert.equal(d.services.catalog.localShare, 1);
  });

  test('a forwarded request is served where it lands, never sent on; a caller that is not a peer edge is refused', async () => {
    const client = ca.leaf('edge');
    // dc-b's peer listener, as dc-a's edge: served by dc-b's own instances.
    const r = await tlsRequest(b.peerPort, '/catalog/x', { rootPem: ca.ca.rootCert, client, headers: { host: 'shop.test', 'x-meshgate-dc-hop': 'dc-a' } });
    assert.equal(r.status, 200, r.body);
    assert.match(String(r.headers['x-app']), /^dc-b-/);
    // A request that names dc-b as a hop already came through it: a loop.
    const loop = await tlsRequest(b.peerPort, '/catalog/x', { rootPem: ca.ca.rootCert, client, headers: { host: 'shop.test', 'x-meshgate-dc-hop': 'dc-b' } });
    assert.equal(loop.status, 508, loop.body);
    assert.equal(loop.json<{ error: { code: string } }>().error.code, 'LOOP_DETECTED');
    // Any other mesh identity may not use the peer listener.
    const refused = await tlsRequest(b.peerPort, '/catalog/x', { rootPem: ca.ca.rootCert, client: ca.leaf('catalog'), headers: { host: 'shop.test' } });
    assert.equal(refused.status, 403, refused.body);
  });

  test("dc-a's apps crash behind live sidecars: no failed request, dc-b serves, dc-a takes over again once they are back", async () => {
    const load = steadyLoad(`http://127.0.0.1:${a.gateway.http.port}/catalog/x`, { concurrency: 4, pauseMs: 5, countHeader: 'x-app' });
    await waitFor('load running', () => (load.result.ok > 50 ? true : undefined), 10_000, 20);
    const ports = a.apps.map((x) => x.port);
    const crashedAt = Date.now();
    await Promise.all(a.apps.map((x) => x.close()));
    // The sidecars answer 502 for their dead apps; the edge retries, then hands each request to dc-b.
    const shiftedAt = await waitFor('the plan shifts to dc-b', async () => ((await describeDcs(a.gateway)).services.catalog.failoverTo === 'dc-b' && (await describeDcs(a.gateway)).services.catalog.localShare < 1 ? Date.now() : undefined), 15_000, 50);
    console.log(`# plan shifted ${shiftedAt - crashedAt} ms after the crash`);
    a.apps = await Promise.all(ports.map((port, i) => startApp(`dc-a-${i + 1}`, port)));
    const backAt = await waitFor('dc-a serves again', async () => ((await describeDcs(a.gateway)).services.catalog.mode === 'local' ? Date.now() : undefined), 20_000, 100);
    const result = await load.stop();
    console.log(`# back to local ${backAt - shiftedAt} ms later (outlier ejection 5 s); ${result.ok} requests, ${result.failures.length} failed; by app ${JSON.stringify(Object.fromEntries(result.byHeader))}`);
    assert.deepEqual(result.failures.slice(0, 5), [], 'no client-visible error');
    assert.ok((result.byHeader.get('dc-b-1') ?? 0) + (result.byHeader.get('dc-b-2') ?? 0) > 0, 'dc-b served while dc-a was down');
  });

  test("stopping all of dc-a's instances under steady GET load moves traffic to dc-b with no failed request, then back", async () => {
    const load = steadyLoad(`http://127.0.0.1:${a.gateway.http.port}/catalog/x`, { concurrency: 4, pauseMs: 5, countHeader: 'x-app' });
    await waitFor('load running', () => (load.result.ok > 50 ? true : undefined), 10_000, 20);
    const stoppedAt = Date.now();
    // Gracefully, as an orchestrator would: the sidecars deregister, then the apps stop.
    await Promise.all(a.sidecars.map((s) => s.stop()));
    await Promise.all(a.apps.map((x) => x.close()));
    const movedAt = await waitFor('dc-b serves dc-a traffic', async () => ((await servedBy(a.gateway)).app.startsWith('dc-b-') ? Date.now() : undefined), 10_000, 20);
    console.log(`# traffic served from dc-b ${movedAt - stoppedAt} ms after dc-a's instances stopped`);
    const d = await describeDcs(a.gateway);
    assert.equal(d.services.catalog.failoverTo, 'dc-b');
    assert.equal(d.services.catalog.localShare, 0);
    await new Promise((r) => setTimeout(r, 500));

    // dc-a's instances come back: after failbackAfter the edge serves locally again.
    const back = await Promise.all([startDcInstance(ca, 'dc-a', a.redis, 'dc-a-3'), startDcInstance(ca, 'dc-a', a.redis, 'dc-a-4')]);
    a.apps = back.map((x) => x.app);
    a.sidecars = back.map((x) => x.sidecar);
    const failedBackAt = await waitFor('dc-a serves again', async () => ((await describeDcs(a.gateway)).services.catalog.mode === 'local' ? Date.now() : undefined), 15_000, 50);
    const result = await load.stop();
    console.log(`# fail-back ${failedBackAt - movedAt} ms after the move; ${result.ok} requests, ${result.failures.length} failed; by app ${JSON.stringify(Object.fromEntries(result.byHeader))}`);
    assert.deepEqual(result.failures.slice(0, 5), [], 'no client-visible error while the datacenter failed and recovered');
    assert.ok([...result.byHeader.keys()].some((k) => k.startsWith('dc-b-')), 'dc-b served some of it');
    const after = await servedBy(a.gateway);
    assert.match(after.app, /^dc-a-/);
  });

  test("dc-a's redis killed: dc-a keeps serving from what it last knew", async () => {
    await a.redis.kill();
    try {
      for (let i = 0; i < 20; i++) {
        const r = await servedBy(a.gateway);
        assert.equal(r.status, 200, r.body);
        assert.match(r.app, /^dc-a-/);
      }
    } finally {
      await a.redis.restart();
    }
  });

  test('a datacenter whose service is entirely down is never chosen', async () => {
    // dc-b loses its instances: dc-a's plan must not name it even when dc-a degrades.
    await Promise.all(b.sidecars.map((s) => s.stop()));
    await waitFor('dc-a sees dc-b down', async () => {
      const s = (await describeDcs(a.gateway)).services.catalog as unknown as { datacenters: Array<{ dc: string; healthy: number }> };
      return s.datacenters.find((x) => x.dc === 'dc-b')?.healthy === 0 ? true : undefined;
    }, 10_000, 50);
    await Promise.all(a.apps.map((x) => x.close()));
    // dc-a's instances refuse connections now: the edge answers the error itself instead of
    // sending the request to a datacenter with nothing to serve it.
    const r = await servedBy(a.gateway);
    assert.ok(r.status >= 500, r.body);
    const d = await describeDcs(a.gateway);
    assert.equal(d.services.catalog.failoverTo, null);
  });
});

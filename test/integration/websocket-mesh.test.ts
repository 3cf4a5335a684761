// WebSocket across the mTLS mesh hop: client → edge gateway → (mTLS) chat sidecar inbound → chat app,
// and east-west: a client of the orders sidecar's outbound (Host: chat) → (mTLS) chat sidecar → app.
// Echo (text, binary, 1 MB), close codes both ways, the app vanishing, inbound authorization and an
// inbound plugin refusing an upgrade, an impostor endpoint refused, and no tunnel left open anywhere.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { buildGatewayConfig, buildProxyConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import { startSidecar, type Sidecar } from '../../mesh-proxy/sidecar.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { tempDir } from '../helpers/cli.ts';
import { call, stopAll } from '../helpers/mesh.ts';
import { createTestCa, metricValue, type TestCa } from '../helpers/mtls.ts';
import { waitFor } from '../helpers/ports.ts';
import { connect, refused, startWsApp, type WsApp } from '../helpers/websocket.ts';

const PLUGINS = resolve(import.meta.dirname, '../../examples/plugins');
const EDGE_ID = 'spiffe://cluster.local/ns/default/sa/edge';

async function sidecarFor(store: MemoryStore, service: string, id: string, appPort: number, extra: Record<string, unknown>): Promise<Sidecar> {
  return startSidecar(
    buildProxyConfig(
      {
        node: { service, instance: id, zone: 'z1' },
        app: { port: appPort },
        inbound: { address: '127.0.0.1', port: 0 },
        outbound: { address: '127.0.0.1', port: 0 },
        admin: { port: 0 },
        registration: { ttl: '3s', heartbeat: '1s' },
        discovery: { resync: '500ms', stateDir: tempDir() },
        log: { level: 'silent', access: false },
        ...extra,
      },
      `test:${id}`,
    ),
    { store },
  );
}

describe('WebSocket across the mTLS mesh', () => {
  const store = new MemoryStore();
  let ca: TestCa;
  let chatApp: WsApp;
  let ordersApp: WsApp;
  let chat: Sidecar;
  let orders: Sidecar;
  let gateway: Gateway;
  let impostor: https.Server;
  let edge = '';

  before(async () => {
    ca = await createTestCa();
    const mesh = { caDir: ca.dir };
    chatApp = await startWsApp('chat-app');
    ordersApp = await startWsApp('orders-app');
    chat = await sidecarFor(store, 'chat', 'chat-1', chatApp.port, {
      mesh,
      inbound: { address: '127.0.0.1', port: 0, authorize: { default: 'deny', allow: [{ from: ['edge', 'orders'], paths: ['/chat', '/tenant'] }] } },
      plugins: { dir: PLUGINS, inbound: [{ tenant: { tenants: ['acme'], header: 'x-inbound-tenant' } }] },
    });
    orders = await sidecarFor(store, 'orders', 'orders-1', ordersApp.port, { mesh, services: { chat: { retries: { attempts: 0 } } } });
    gateway = await startGateway(
      buildGatewayConfig(
        {
          node: { name: 'edge-1', zone: 'z1' },
          listeners: { http: { address: '127.0.0.1', port: 0 } },
          admin: { port: 0 },
          discovery: { resync: '500ms', stateDir: tempDir() },
          log: { level: 'silent', access: false },
          mesh: { ...mesh, service: 'edge' },
          services: { chat: {}, impostor: { retries: { attempts: 0 } } },
          routes: [
            { name: 'impostor', match: { pathPrefix: '/impostor' }, service: 'impostor', websocket: true },
            { name: 'chat', match: { pathPrefix: '/' }, service: 'chat', websocket: true },
          ],
        },
        'test:edge',
      ),
      { store },
    );
    edge = `ws://127.0.0.1:${gateway.http.port}`;
    // A TLS server with a valid mesh certificate for "billing", registered as if it were "impostor".
    const billing = ca.leaf('billing');
    impostor = https.createServer({ key: billing.keyPem, cert: billing.certChainPem, ca: ca.ca.rootCert, requestCert: true }, (_q, res) => res.end('impostor'));
    impostor.on('upgrade', (_q, s) => s.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n'));
    await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', () => r()));
    const port = (impostor.address() as AddressInfo).port;
    await store.registry.register({ service: 'impostor', id: 'impostor-1', address: '127.0.0.1', port, dc: 'local', zone: 'z1', metadata: {}, identity: 'spiffe://cluster.local/ns/default/sa/impostor' }, 60_000);
    await waitFor('chat routable through the edge', async () => ((await call(`http://127.0.0.1:${gateway.http.port}/chat`, { headers: { 'x-inbound-tenant': 'acme' } })).status === 200 ? true : undefined), 15_000);
  });

  after(async () => {
    await stopAll(gateway, chat, orders);
    await Promise.allSettled([chatApp?.close(), ordersApp?.close()]);
    impostor?.closeAllConnections();
    impostor?.close();
    await store.close();
  });

  test('edge → sidecar (mTLS) → app: echo of text, binary and 1 MB; the app sees the edge identity', async (t) => {
    const t0 = performance.now();
    const c = await connect(`${edge}/chat/room`, { 'x-inbound-tenant': 'acme' });
    const upgradeMs = performance.now() - t0;
    assert.equal(chatApp.handshakes.at(-1)!['x-meshgate-client-id'], EDGE_ID);
    assert.equal(chatApp.handshakes.at(-1)!['x-tenant-id'], 'acme');
    c.ws.send('hello mesh');
    assert.equal((await c.next()).data.toString(), 'hello mesh');
    c.ws.send(Buffer.from([9, 8, 7]));
    const b = await c.next();
    assert.equal(b.binary, true);
    assert.deepEqual([...b.data], [9, 8, 7]);
    const big = Buffer.alloc(1024 * 1024, 0x5a);
    big.writeUInt32BE(0xdeadbeef, 512 * 1024);
    const t1 = performance.now();
    c.ws.send(big);
    const m = await c.next(20_000);
    const echoMs = performance.now() - t1;
    assert.ok(m.data.equals(big));
    c.ws.close(1000);
    await c.closed();
    t.diagnostic(`upgrade edge → sidecar (mTLS) → app: ${upgradeMs.toFixed(1)} ms; 1 MB echo: ${echoMs.toFixed(1)} ms`);
  });

  test('close codes cross both hops: 4001 to the app, 4002 to the client', async () => {
    const before = chatApp.closes.length;
    const a = await connect(`${edge}/chat`, { 'x-inbound-tenant': 'acme' });
    a.ws.close(4001);
    assert.equal((await a.closed()).code, 4001);
    await waitFor('the app to see 4001', () => (chatApp.closes.length > before ? true : undefined));
    assert.equal(chatApp.closes.at(-1), 4001);
    const b = await connect(`${edge}/chat`, { 'x-inbound-tenant': 'acme' });
    b.ws.send('close:4002');
    assert.equal((await b.closed()).code, 4002);
  });

  test('the app going away closes the client promptly, across both hops', async () => {
    const c = await connect(`${edge}/chat`, { 'x-inbound-tenant': 'acme' });
    const t0 = performance.now();
    c.ws.send('terminate');
    assert.equal((await c.closed(5000)).code, 1006);
    assert.ok(performance.now() - t0 < 3000);
  });

  test('east-west: the orders sidecar outbound (Host: chat) tunnels over mTLS as orders', async () => {
    const c = await connect(`ws://127.0.0.1:${orders.outbound.port}/chat/feed`, { host: 'chat', 'x-inbound-tenant': 'acme' });
    assert.equal(chatApp.handshakes.at(-1)!['x-meshgate-client-id'], 'spiffe://cluster.local/ns/default/sa/orders');
    c.ws.send('east-west');
    assert.equal((await c.next()).data.toString(), 'east-west');
    c.ws.close(4003);
    assert.equal((await c.closed()).code, 4003);
  });

  test('refusals inside the mesh are relayed: inbound authorization 403, the inbound plugin 400', async () => {
    const denied = await refused(`${edge}/admin`, { 'x-inbound-tenant': 'acme' });
    assert.equal(denied.status, 403);
    assert.equal(JSON.parse(denied.body).error.code, 'FORBIDDEN');
    const noTenant = await refused(`${edge}/chat`);
    assert.equal(noTenant.status, 400);
    assert.equal(JSON.parse(noTenant.body).error.code, 'TENANT_REQUIRED');
    const m = (await call(`http://127.0.0.1:${gateway.admin.port}/metrics`)).body;
    assert.ok(metricValue(m, 'meshgate_websocket_upgrades_total', { direction: 'edge', service: 'chat', result: 'rejected' }) >= 2);
  });

  test('an endpoint presenting another identity than it registered: 502 naming both', async () => {
    const r = await refused(`${edge}/impostor`);
    assert.equal(r.status, 502);
    const err = JSON.parse(r.body).error;
    assert.equal(err.code, 'UPSTREAM_UNAVAILABLE');
    assert.match(err.message, /presented identity spiffe:\/\/cluster\.local\/ns\/default\/sa\/billing, expected spiffe:\/\/cluster\.local\/ns\/default\/sa\/impostor/);
  });

  test('no tunnel left open on any proxy, and the app holds no socket', async () => {
    const proxies = [
      { admin: gateway.admin.port, direction: 'edge' },
      { admin: chat.admin.port, direction: 'inbound' },
      { admin: orders.admin.port, direction: 'outbound' },
    ];
    for (const p of proxies) {
      await waitFor(`${p.direction} tunnels back to 0`, async () => {
        const m = (await call(`http://127.0.0.1:${p.admin}/metrics`)).body;
        return metricValue(m, 'meshgate_websocket_tunnels_open', { direction: p.direction, service: 'chat' }) === 0 ? true : undefined;
      });
    }
    const inbound = (await call(`http://127.0.0.1:${chat.admin.port}/metrics`)).body;
    assert.ok(metricValue(inbound, 'meshgate_websocket_upgrades_total', { direction: 'inbound', service: 'chat', result: 'switched' }) >= 4);
    assert.ok(metricValue(inbound, 'meshgate_websocket_upgrades_total', { direction: 'inbound', service: 'chat', result: 'local' }) >= 2);
    await waitFor('the app to hold no socket', () => (chatApp.sockets.size === 0 ? true : undefined));
  });
});

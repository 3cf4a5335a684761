// The outbound side of mTLS: gateway → sidecar → app end to end over mTLS (active health checks
// too), and a caller refusing a server whose identity is not the one the endpoint registered, or an
// endpoint whose registered identity belongs to another service or trust domain.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { buildGatewayConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { createTestCa, metricValue, type TestCa } from '../helpers/mtls.ts';
import { call, startInstance, stopAll, type Instance } from '../helpers/mesh.ts';
import { tempDir } from '../helpers/cli.ts';
import { waitFor } from '../helpers/ports.ts';

describe('mTLS outbound', () => {
  const store = new MemoryStore();
  let ca: TestCa;
  let catalog: Instance;
  let orders: Instance;
  let gateway: Gateway;
  let impostor: https.Server;
  let base = '';

  before(async () => {
    ca = await createTestCa();
    const mesh = { caDir: ca.dir };
    catalog = await startInstance(store, 'catalog', 'catalog-1', {
      mesh,
      inbound: { address: '127.0.0.1', port: 0, authorize: { default: 'deny', allow: [{ from: ['edge', 'orders'] }] } },
    });
    orders = await startInstance(store, 'orders', 'orders-1', { mesh, services: { catalog: { retries: { attempts: 0 } } } });
    gateway = await startGateway(
      buildGatewayConfig(
        {
          node: { name: 'edge-1', zone: 'z1' },
          listeners: { http: { address: '127.0.0.1', port: 0 } },
          admin: { port: 0 },
          discovery: { resync: '500ms', stateDir: tempDir() },
          log: { level: 'silent', access: false },
          mesh: { ...mesh, service: 'edge' },
          services: { catalog: { healthCheck: { interval: '200ms', path: '/health' } }, orders: {} },
          routes: [
            { name: 'catalog', match: { pathPrefix: '/catalog' }, rewrite: { stripPrefix: true }, service: 'catalog' },
            { name: 'orders', match: { pathPrefix: '/orders' }, service: 'orders' },
          ],
        },
        'test:edge',
      ),
      { store },
    );
    base = `http://127.0.0.1:${gateway.http.port}`;
    // A TLS server with a valid mesh certificate for "billing", to be registered as if it were catalog.
    const billing = ca.leaf('billing');
    impostor = https.createServer({ key: billing.keyPem, cert: billing.certChainPem, ca: ca.ca.rootCert, requestCert: true }, (_req, res) => res.end('impostor'));
    await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', () => r()));
  });
  after(async () => {
    await stopAll(gateway, catalog?.sidecar, orders?.sidecar, catalog?.app, orders?.app);
    impostor?.close();
    await store.close();
  });

  test('gateway → sidecar → app over mTLS, the app seeing the edge identity; health checks pass over mTLS', async () => {
    await waitFor('catalog known to the gateway', async () => ((await call(`${base}/catalog/items`)).status === 200 ? true : undefined), 10_000);
    const r = await call(`${base}/catalog/items`);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json<{ headers: Record<string, string> }>().headers['x-meshgate-client-id'], 'spiffe://cluster.local/ns/default/sa/edge');
    // Health checks went over mTLS (they reach the app's /health through the sidecar, with the edge's certificate)
    await waitFor('a health check to reach the app', () => (catalog.app.received.some((x) => x.url === '/health' && x.headers['x-meshgate-client-id'] === 'spiffe://cluster.local/ns/default/sa/edge') ? true : undefined), 10_000);
    const ident = (await call(`http://127.0.0.1:${gateway.admin.port}/identity`)).json<{ identity: string }>();
    assert.equal(ident.identity, 'spiffe://cluster.local/ns/default/sa/edge');
  });

  test("orders' sidecar calls catalog over mTLS as orders (east-west)", async () => {
    const out = `http://127.0.0.1:${orders.sidecar.outbound.port}`;
    await waitFor('catalog known to orders', async () => ((await call(`${out}/items`, { headers: { host: 'catalog' } })).status === 200 ? true : undefined), 10_000);
    const r = await call(`${out}/items`, { headers: { host: 'catalog', 'x-meshgate-client-id': 'forged' } });
    assert.equal(r.json<{ headers: Record<string, string> }>().headers['x-meshgate-client-id'], 'spiffe://cluster.local/ns/default/sa/orders');
  });

  test('a server presenting another identity than the endpoint registered: 502 naming both, no request sent', async () => {
    const port = (impostor.address() as AddressInfo).port;
    // A registry entry for catalog pointing at the billing server but claiming catalog's identity.
    await store.registry.register({ service: 'catalog', id: 'catalog-evil', address: '127.0.0.1', port, dc: 'local', zone: 'z1', metadata: {}, identity: 'spiffe://cluster.local/ns/default/sa/catalog' }, 60_000);
    await catalog.sidecar.stop();
    const out = `http://127.0.0.1:${orders.sidecar.outbound.port}`;
    const r = await waitFor('the impostor to be tried', async () => {
      const x = await call(`${out}/items`, { headers: { host: 'catalog' } });
      return x.status === 502 ? x : undefined;
    }, 10_000);
    const err = r.json<{ error: { code: string; message: string } }>().error;
    assert.equal(err.code, 'UPSTREAM_UNAVAILABLE');
    assert.match(err.message, /presented identity spiffe:\/\/cluster\.local\/ns\/default\/sa\/billing, expected spiffe:\/\/cluster\.local\/ns\/default\/sa\/catalog/);
    const m = (await call(`http://127.0.0.1:${orders.sidecar.admin.port}/metrics`)).body;
    assert.ok(metricValue(m, 'meshgate_tls_handshake_failures_total', { direction: 'outbound', reason: 'identity-mismatch' }) >= 1);

    // The same server registered honestly (its identity is billing's) as a catalog endpoint: refused before connecting.
    // (a new instance id: the first one's breaker is open by now)
    await store.registry.deregister('catalog', 'catalog-evil');
    await store.registry.register({ service: 'catalog', id: 'catalog-evil-2', address: '127.0.0.1', port, dc: 'local', zone: 'z1', metadata: {}, identity: 'spiffe://cluster.local/ns/default/sa/billing' }, 60_000);
    let last = '';
    const r2 = await waitFor('the re-registered impostor to be refused', async () => {
      const x = await call(`${out}/items`, { headers: { host: 'catalog' } });
      last = `${x.status} ${x.body}`;
      return x.status === 502 ? x : undefined;
    }, 10_000, 200).catch((err: Error) => assert.fail(`${err.message}; last reply: ${last}`));
    assert.equal(r2.json<{ error: { code: string } }>().error.code, 'UPSTREAM_UNAVAILABLE');
    assert.match(r2.body, /registered identity spiffe:\/\/cluster\.local\/ns\/default\/sa\/billing, which belongs to service \\"billing\\"/);
  });
});

// A sidecar's inbound listener with mTLS and inbound authorization, hit by Node TLS clients: a valid
// mesh certificate is admitted and its identity reaches the app (a forged x-meshgate-client-id does
// not); no certificate, another CA's and an expired one are refused in the handshake, logged and
// counted by reason; a valid certificate for an identity no rule allows gets 403 FORBIDDEN.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { createTestCa, metricValue, tlsRequest, type TestCa } from '../helpers/mtls.ts';
import { call, startInstance, stopAll, type Instance } from '../helpers/mesh.ts';
import { waitFor } from '../helpers/ports.ts';

describe('mTLS inbound', () => {
  const store = new MemoryStore();
  let ca: TestCa;
  let catalog: Instance;
  let port = 0;
  let admin = '';

  before(async () => {
    ca = await createTestCa();
    catalog = await startInstance(store, 'catalog', 'catalog-1', {
      mesh: { caDir: ca.dir },
      inbound: {
        address: '127.0.0.1', port: 0,
        authorize: { default: 'deny', allow: [{ name: 'orders-reads', from: 'orders', methods: ['GET'], paths: ['/items'] }, { from: 'spiffe://cluster.local/ns/default/sa/edge' }] },
      },
    });
    port = catalog.sidecar.inbound.port;
    admin = `http://127.0.0.1:${catalog.sidecar.admin.port}`;
  });
  after(async () => {
    await stopAll(catalog?.sidecar, catalog?.app);
    await store.close();
  });

  test('registers its SPIFFE identity and shows it on /identity', async () => {
    assert.equal(catalog.sidecar.instance.identity, 'spiffe://cluster.local/ns/default/sa/catalog');
    const id = (await call(`${admin}/identity`)).json<{ identity: string; serial: string; notAfter: string; source: string }>();
    assert.equal(id.identity, 'spiffe://cluster.local/ns/default/sa/catalog');
    assert.equal(id.source, 'caDir');
    assert.match(id.serial, /^[0-9a-f]+$/);
    const metrics = (await call(`${admin}/metrics`)).body;
    assert.ok(Math.abs(metricValue(metrics, 'meshgate_identity_cert_expiry_timestamp_seconds') - Date.parse(id.notAfter) / 1000) < 2);
  });

  test('a valid mesh certificate is admitted; the app sees the verified identity, never a forged one', async () => {
    const orders = ca.leaf('orders');
    const r = await tlsRequest(port, '/items?x=1', { rootPem: ca.ca.rootCert, client: orders, headers: { 'x-meshgate-client-id': 'spiffe://cluster.local/ns/default/sa/admin' } });
    assert.equal(r.status, 200, r.body);
    const seen = catalog.app.received.at(-1)!;
    assert.equal(seen.headers['x-meshgate-client-id'], 'spiffe://cluster.local/ns/default/sa/orders');
  });

  test('no certificate, another CA, an expired certificate: refused in the handshake, counted by reason', async () => {
    const other = await createTestCa();
    const cases: Array<[string, { keyPem: string; certChainPem: string } | undefined, string]> = [
      ['none', undefined, 'no-certificate'],
      ['foreign', other.leaf('orders'), 'unknown-ca'],
      ['expired', ca.leaf('orders', -120_000), 'expired'],
    ];
    for (const [name, client, reason] of cases) {
      const outcome = await tlsRequest(port, '/items', { rootPem: ca.ca.rootCert, client }).then((r) => `answered ${r.status}`, (err: Error) => `refused ${err.message}`);
      assert.match(outcome, /^refused/, name);
      await waitFor(`handshake failure ${reason} counted`, async () => {
        const m = (await call(`${admin}/metrics`)).body;
        return metricValue(m, 'meshgate_tls_handshake_failures_total', { direction: 'inbound', reason }) >= 1 ? true : undefined;
      }, 5000);
    }
    // The app never saw any of them.
    assert.ok(catalog.app.received.every((r) => r.headers['x-meshgate-client-id'] === 'spiffe://cluster.local/ns/default/sa/orders'));
  });

  test('a valid certificate whose identity no rule allows: 403 FORBIDDEN naming the caller', async () => {
    const before = catalog.app.received.length;
    const billing = await tlsRequest(port, '/items', { rootPem: ca.ca.rootCert, client: ca.leaf('billing') });
    assert.equal(billing.status, 403);
    assert.equal(billing.headers['x-meshgate-error'], 'FORBIDDEN');
    const err = billing.json<{ error: { code: string; message: string } }>().error;
    assert.equal(err.code, 'FORBIDDEN');
    assert.match(err.message, /no rule allows spiffe:\/\/cluster\.local\/ns\/default\/sa\/billing to GET \/items/);
    // orders may GET /items only: a POST, another path, or a dot-segment escape is denied, naming its rule
    const post = await tlsRequest(port, '/items', { rootPem: ca.ca.rootCert, client: ca.leaf('orders'), method: 'POST' });
    assert.equal(post.status, 403);
    assert.match(post.json<{ error: { message: string } }>().error.message, /rule orders-reads/);
    assert.equal((await tlsRequest(port, '/admin', { rootPem: ca.ca.rootCert, client: ca.leaf('orders') })).status, 403);
    assert.equal((await tlsRequest(port, '/items/../admin', { rootPem: ca.ca.rootCert, client: ca.leaf('orders') })).status, 403);
    assert.equal((await tlsRequest(port, '/itemsx', { rootPem: ca.ca.rootCert, client: ca.leaf('orders') })).status, 403);
    // the edge (full SPIFFE id rule) may do anything
    assert.equal((await tlsRequest(port, '/anything', { rootPem: ca.ca.rootCert, client: ca.leaf('edge'), method: 'DELETE' })).status, 200);
    assert.equal(catalog.app.received.length, before + 1, 'only the allowed request reached the app');
    const m = (await call(`${admin}/metrics`)).body;
    assert.equal(metricValue(m, 'meshgate_authz_denied_total', { service: 'catalog' }), 5);
  });
});

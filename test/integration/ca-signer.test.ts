// The CA's signing endpoint (`meshgate ca serve` runs startSignServer): a good token and CSR get a
// leaf that chains to the root with the requested identity (the key never left the client); a bad
// token is 401; a garbage CSR, a CSR whose signature does not verify, and non-JSON are 400 with a
// code; lifetimes are capped; a sidecar with mesh.signer obtains its identity from it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import { createLogger } from '../../mesh-proxy/observe/log.ts';
import { createKeyAndCsr } from '../../mesh-proxy/identity/csr.ts';
import { identityOf } from '../../mesh-proxy/identity/ca.ts';
import { startSignServer, type SignServer } from '../../mesh-proxy/identity/sign-server.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestCa, metricValue, tlsRequest, type TestCa } from '../helpers/mtls.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { call, startInstance, stopAll } from '../helpers/mesh.ts';
import { tempDir } from '../helpers/cli.ts';

const TOKEN = 'test-bootstrap-token-0123456789';

function post(port: number, rootPem: string, body: string, token = TOKEN): Promise<{ status: number; json: Record<string, any> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/v1/sign', method: 'POST', agent: false, ca: rootPem, checkServerIdentity: () => undefined, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('CA signing endpoint', () => {
  let ca: TestCa;
  let server: SignServer;
  let port = 0;

  before(async () => {
    ca = await createTestCa();
    server = await startSignServer({ ca: ca.ca, token: TOKEN, address: '127.0.0.1', port: 0, log: createLogger({ level: 'silent' }, {}), maxTtlMs: 3_600_000 });
    port = server.address.port;
  });
  after(() => server?.close());

  test('a good token and CSR: a leaf for the requested identity, chaining to the root, lifetime capped', async () => {
    const { csrPem, keyPem } = await createKeyAndCsr('orders');
    const r = await post(port, ca.ca.rootCert, JSON.stringify({ csr: csrPem, service: 'orders', namespace: 'shop', ttl: '48h' }));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.identity, 'spiffe://cluster.local/ns/shop/sa/orders');
    const leaf = new X509Certificate(r.json.certChain);
    assert.ok(leaf.verify(new X509Certificate(r.json.root).publicKey));
    assert.equal(identityOf(r.json.certChain), 'spiffe://cluster.local/ns/shop/sa/orders');
    assert.ok(leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(keyPem)), 'the leaf is for the key that stayed with the client');
    const life = Date.parse(r.json.notAfter) - Date.now();
    assert.ok(life <= 3_600_000 && life > 3_500_000, `capped to the 1h maximum, got ${life} ms`);
  });

  test('a wrong token: 401; garbage or tampered CSR, non-JSON: 400 with a code; reserved namespace: 403', async () => {
    const { csrPem } = await createKeyAndCsr('orders');
    const bad = await post(port, ca.ca.rootCert, JSON.stringify({ csr: csrPem, service: 'orders' }), 'wrong-token-wrong-token');
    assert.equal(bad.status, 401);
    assert.equal(bad.json.error.code, 'UNAUTHORIZED');
    const garbage = await post(port, ca.ca.rootCert, JSON.stringify({ csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAAAAAA\n-----END CERTIFICATE REQUEST-----', service: 'orders' }));
    assert.equal(garbage.status, 400);
    assert.equal(garbage.json.error.code, 'BAD_CSR');
    // One byte flipped inside the signed part: the self-signature no longer verifies.
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der[40] ^= 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const t = await post(port, ca.ca.rootCert, JSON.stringify({ csr: tampered, service: 'orders' }));
    assert.equal(t.status, 400);
    assert.equal(t.json.error.code, 'BAD_CSR');
    const notJson = await post(port, ca.ca.rootCert, '{csr:');
    assert.equal(notJson.status, 400);
    assert.equal(notJson.json.error.code, 'BAD_REQUEST');
    const reserved = await post(port, ca.ca.rootCert, JSON.stringify({ csr: csrPem, service: 'ca', namespace: 'meshgate-system' }));
    assert.equal(reserved.status, 403);
  });

  test('a sidecar with mesh.signer gets its identity from the endpoint and serves mTLS with it', async () => {
    const dir = tempDir();
    const rootFile = join(dir, 'ca.pem');
    writeFileSync(rootFile, ca.ca.rootCert);
    const store = new MemoryStore();
    const inst = await startInstance(store, 'catalog', 'catalog-1', { mesh: { signer: { url: `https://127.0.0.1:${port}`, token: TOKEN, ca: rootFile }, ttl: '1h' } });
    try {
      const id = (await call(`http://127.0.0.1:${inst.sidecar.admin.port}/identity`)).json<{ identity: string; source: string }>();
      assert.deepEqual([id.identity, id.source], ['spiffe://cluster.local/ns/default/sa/catalog', 'signer']);
      const r = await tlsRequest(inst.sidecar.inbound.port, '/x', { rootPem: ca.ca.rootCert, client: ca.leaf('orders') });
      assert.equal(r.status, 200);
    } finally {
      await stopAll(inst.sidecar, inst.app);
      await store.close();
    }
  });

  test('renewal failures are retried with backoff while the old certificate serves; renewal resumes when the signer returns', async () => {
    const dir = tempDir();
    const rootFile = join(dir, 'ca.pem');
    writeFileSync(rootFile, ca.ca.rootCert);
    // A port claimed for the run, below the ephemeral range: restarted on it after a pause, a port
    // from listen(0) could meanwhile be another test's listener or a connection's source port.
    const ownPort = await freePort();
    const own = await startSignServer({ ca: ca.ca, token: TOKEN, address: '127.0.0.1', port: ownPort, log: createLogger({ level: 'silent' }, {}) });
    const store = new MemoryStore();
    const inst = await startInstance(store, 'catalog', 'catalog-2', { mesh: { signer: { url: `https://127.0.0.1:${ownPort}`, token: TOKEN, ca: rootFile }, ttl: '9s' } });
    const admin = `http://127.0.0.1:${inst.sidecar.admin.port}`;
    let restarted: SignServer | undefined;
    try {
      const first = (await call(`${admin}/identity`)).json<{ serial: string; notAfter: string }>();
      // 1. the signer goes away: renewal (due after 6 s, 2/3 of the 9 s TTL) fails, is retried, and
      //    the old certificate keeps serving (3 s of margin before it expires, for a loaded machine)
      await own.close();
      const failing = await waitFor('a failed renewal', async () => {
        const id = (await call(`${admin}/identity`)).json<{ serial: string; lastError?: string }>();
        return id.lastError ? id : undefined;
      }, 20_000, 100);
      assert.equal(failing.serial, first.serial);
      assert.equal((await tlsRequest(inst.sidecar.inbound.port, '/x', { rootPem: ca.ca.rootCert, client: ca.leaf('orders') })).status, 200);
      const m = (await call(`${admin}/metrics`)).body;
      assert.ok(metricValue(m, 'meshgate_identity_renewals_total', { result: 'failed' }) >= 1);
      // 2. it comes back on the same port: a retry succeeds with a new certificate
      restarted = await startSignServer({ ca: ca.ca, token: TOKEN, address: '127.0.0.1', port: ownPort, log: createLogger({ level: 'silent' }, {}) });
      const renewed = await waitFor('a renewed certificate', async () => {
        const id = (await call(`${admin}/identity`)).json<{ serial: string; lastError?: string }>();
        return id.serial !== first.serial && id.lastError === undefined ? id : undefined;
      }, 10_000, 100);
      assert.notEqual(renewed.serial, first.serial);
    } finally {
      await stopAll(inst.sidecar, inst.app);
      await restarted?.close();
      await store.close();
    }
  });
});

// Certificate rotation without restarts or failed requests. With 6 s lifetimes (renewed at 2/3,
// every ~4 s) the gateway and a sidecar rotate several times under ~13 s of continuous traffic:
// zero failed requests, several serials on /identity, and new connections to the inbound listener
// are served with the new certificate (setSecureContext). Identity files replaced on disk are
// picked up without a restart.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import { buildGatewayConfig } from '../../config/load.ts';
import { startGateway, type Gateway } from '../../gateway/gateway.ts';
import { MemoryStore } from '../../mesh-proxy/store/memory/memory-store.ts';
import { createTestCa, tlsRequest } from '../helpers/mtls.ts';
import { call, startInstance, stopAll, type Instance } from '../helpers/mesh.ts';
import { tempDir } from '../helpers/cli.ts';
import { waitFor } from '../helpers/ports.ts';

const LOAD_MS = 13_000;
const WORKERS = 4;

describe('certificate rotation', () => {
  const store = new MemoryStore();
  const running: Array<Instance | Gateway> = [];
  after(async () => {
    await stopAll(...running.map((r) => ('sidecar' in r ? r.sidecar : r)), ...running.flatMap((r) => ('app' in r ? [r.app] : [])));
    await store.close();
  });

  test('6 s certificates rotating every ~4 s under steady load: zero failed requests, several serials', async () => {
    const ca = await createTestCa();
    // 6 s, renewed at 4 s: a 2 s margin a busy CI machine cannot eat, and still three rotations in the run.
    const mesh = { caDir: ca.dir, ttl: '6s' };
    const catalog = await startInstance(store, 'catalog', 'catalog-1', { mesh, inbound: { address: '127.0.0.1', port: 0, authorize: { default: 'deny', allow: [{ from: ['edge', 'probe'] }] } } });
    running.push(catalog);
    const gateway = await startGateway(
      buildGatewayConfig(
        {
          node: { name: 'edge-1', zone: 'z1' },
          listeners: { http: { address: '127.0.0.1', port: 0 } },
          admin: { port: 0 },
          discovery: { resync: '500ms', stateDir: tempDir() },
          log: { level: 'silent', access: false },
          mesh: { ...mesh, service: 'edge' },
          // Short keep-alive so the gateway keeps opening new connections with its newest certificate.
          services: { catalog: { pool: { keepAlive: '500ms' } } },
          routes: [{ name: 'catalog', match: { pathPrefix: '/' }, service: 'catalog' }],
        },
        'test:edge',
      ),
      { store },
    );
    running.push(gateway);
    const base = `http://127.0.0.1:${gateway.http.port}`;
    await waitFor('catalog routable', async () => ((await call(`${base}/items`)).status === 200 ? true : undefined), 10_000);

    const client = new Pool(base, { connections: WORKERS });
    const probe = ca.leaf('probe');
    const statuses = new Map<string, number>();
    const gatewaySerials = new Set<string>();
    const sidecarSerials = new Set<string>();
    const servedSerials = new Set<string>();
    let ok = 0;
    const started = Date.now();
    const worker = async () => {
      // Bounded by time and by count.
      for (let i = 0; i < 100_000 && Date.now() - started < LOAD_MS; i++) {
        const outcome = await client.request({ path: '/items', method: 'GET' }).then(
          async (r) => {
            await r.body.text();
            return String(r.statusCode);
          },
          (err: Error) => `error ${err.message}`,
        );
        if (outcome === '200') ok++;
        else statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1);
      }
    };
    const observer = async () => {
      while (Date.now() - started < LOAD_MS) {
        gatewaySerials.add((await call(`http://127.0.0.1:${gateway.admin.port}/identity`)).json<{ serial: string }>().serial);
        sidecarSerials.add((await call(`http://127.0.0.1:${catalog.sidecar.admin.port}/identity`)).json<{ serial: string }>().serial);
        // A new connection to the inbound listener: which certificate does it present now?
        const r = await tlsRequest(catalog.sidecar.inbound.port, '/items', { rootPem: ca.ca.rootCert, client: probe });
        assert.equal(r.status, 200);
        servedSerials.add(r.serverSerial);
        await new Promise((res) => setTimeout(res, 250));
      }
    };
    await Promise.all([...Array.from({ length: WORKERS }, worker), observer()]);
    await client.close();
    const elapsed = Date.now() - started;
    console.log(`rotation under load: ${ok} ok in ${elapsed} ms; serials gateway ${gatewaySerials.size}, sidecar ${sidecarSerials.size}, served on new connections ${servedSerials.size}`);
    assert.deepEqual(Object.fromEntries(statuses), {}, 'no failed requests');
    assert.ok(ok > 50, `steady load (${ok} requests)`);
    assert.ok(gatewaySerials.size >= 2, `gateway rotated (${gatewaySerials.size} serials)`);
    assert.ok(sidecarSerials.size >= 2, `sidecar rotated (${sidecarSerials.size} serials)`);
    assert.ok(servedSerials.size >= 2, `new connections saw the rotated certificate (${servedSerials.size} serials)`);
  });

  test('identity files replaced on disk are picked up without a restart', async () => {
    const ca = await createTestCa();
    const dir = tempDir();
    const files = { cert: join(dir, 'orders.pem'), key: join(dir, 'orders.key'), ca: join(dir, 'ca.pem') };
    const write = (leaf: { certChainPem: string; keyPem: string }) => {
      writeFileSync(files.key, leaf.keyPem);
      writeFileSync(files.cert, leaf.certChainPem);
    };
    writeFileSync(files.ca, ca.ca.rootCert);
    write(ca.leaf('orders'));
    const orders = await startInstance(store, 'orders', 'orders-1', { mesh: { identity: files, checkEvery: '100ms' } });
    running.push(orders);
    const admin = `http://127.0.0.1:${orders.sidecar.admin.port}/identity`;
    const first = (await call(admin)).json<{ serial: string }>().serial;
    // A certificate for another service is refused (the old one keeps serving)...
    write(ca.leaf('billing'));
    await waitFor('the wrong certificate to be refused', async () => ((await call(admin)).json<{ lastError?: string }>().lastError ? true : undefined), 5000);
    assert.equal((await call(admin)).json<{ serial: string }>().serial, first);
    // ...and a proper one replaces it.
    const next = ca.leaf('orders');
    write(next);
    const serial = await waitFor('the new certificate', async () => {
      const s = (await call(admin)).json<{ serial: string }>().serial;
      return s !== first ? s : undefined;
    }, 5000);
    const r = await tlsRequest(orders.sidecar.inbound.port, '/x', { rootPem: ca.ca.rootCert, client: ca.leaf('edge') });
    assert.equal(r.status, 200);
    assert.equal(r.serverSerial, serial);
  });
});

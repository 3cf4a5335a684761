// `meshgate proxy` and `meshgate gateway` cap V8's young generation (bin/young-generation.ts; README:
// Memory and CPU): 2 MB semi-spaces for a sidecar, 4 MB for a gateway, where V8 alone grows them to
// 16 MB under load. An operator's --max-semi-space-size (through NODE_OPTIONS) gives V8 its own
// sizing back. Seen through each process's own heap metrics after traffic through it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Pool } from 'undici';
import { MeshgateProcess, tempDir, writeConfig } from '../helpers/cli.ts';
import { cleanEnv } from '../helpers/env.ts';
import { metricValue } from '../helpers/metrics.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { RedisServer } from '../helpers/redis-server.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

const REQUESTS = 6_000;
const MiB = 1024 * 1024;

let app: TestApp;
const procs: MeshgateProcess[] = [];

before(async () => {
  app = await startApp('orders');
});

after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await app?.close();
});

async function newSpace(adminUrl: string): Promise<number> {
  return metricValue(adminUrl, 'meshgate_process_nodejs_heap_space_size_total_bytes', { space: 'new' });
}

/** A sidecar for the test app (store and discovery added by the caller). */
function sidecarConfig(instance: string, inbound: number, outbound: number, admin: number) {
  return {
    node: { service: 'orders', instance },
    app: { port: app.port },
    inbound: { address: '127.0.0.1', port: inbound },
    outbound: { port: outbound },
    admin: { port: admin },
    log: { level: 'warn', access: false },
  };
}

/** Sends REQUESTS requests with a 512-byte header through `url`, 16 at a time. */
async function load(url: string): Promise<void> {
  const pool = new Pool(url, { connections: 16 });
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < REQUESTS) {
          next++;
          const res = await pool.request({ path: '/orders/1', method: 'GET', headers: { 'x-padding': 'x'.repeat(512) } });
          await res.body.dump();
          assert.equal(res.statusCode, 200);
        }
      }),
    );
  } finally {
    await pool.close();
  }
}

test('a gateway caps its young generation at 4 MB semi-spaces, its sidecar at 2 MB, under load', async () => {
  const redis = await RedisServer.start();
  try {
    const dir = tempDir();
    const store = { kind: 'redis', url: redis.url };
    const discovery = { resync: '500ms', stateDir: dir };
    const [inbound, outbound, scAdmin, port, gwAdmin] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const scFile = writeConfig(dir, 'proxy.yaml', { ...sidecarConfig('orders-1', inbound, outbound, scAdmin), store, discovery });
    const gwFile = writeConfig(dir, 'gateway.yaml', {
      store,
      listeners: { http: { address: '127.0.0.1', port } },
      admin: { port: gwAdmin },
      discovery,
      log: { level: 'warn', access: false },
      services: { orders: {} },
      routes: [{ name: 'orders', match: { pathPrefix: '/' }, service: 'orders' }],
    });
    const sidecar = new MeshgateProcess(['proxy', '--config', scFile], { ...cleanEnv('warn'), NODE_OPTIONS: '' });
    const gateway = new MeshgateProcess(['gateway', '--config', gwFile], { ...cleanEnv('warn'), NODE_OPTIONS: '' });
    procs.push(sidecar, gateway);
    const [scUrl, gwUrl] = [`http://127.0.0.1:${scAdmin}`, `http://127.0.0.1:${gwAdmin}`];
    await Promise.all([sidecar.ready(scUrl, 30_000), gateway.ready(gwUrl, 30_000)]);
    await waitFor(
      'the gateway to see the orders instance',
      async () => ((JSON.parse(await (await fetch(`${gwUrl}/endpoints`)).text()) as { services: Record<string, unknown[]> }).services.orders?.length === 1 ? true : undefined),
      30_000,
      100,
    );
    await load(`http://127.0.0.1:${port}`);
    const [gwBytes, scBytes] = [await newSpace(gwUrl), await newSpace(scUrl)];
    assert.ok(gwBytes > 0 && scBytes > 0, 'the heap-space metric is exported');
    assert.ok(gwBytes <= 8 * MiB, `gateway new space ${gwBytes / MiB} MiB`);
    assert.ok(scBytes <= 4 * MiB, `sidecar new space ${scBytes / MiB} MiB`);
    await Promise.all([sidecar.stop(), gateway.stop()]);
  } finally {
    await redis.stop();
  }
});

test('--max-semi-space-size in NODE_OPTIONS gives V8 its own sizing back', async () => {
  const dir = tempDir();
  const [inbound, outbound, admin] = await Promise.all([freePort(), freePort(), freePort()]);
  const file = writeConfig(dir, 'proxy.yaml', { ...sidecarConfig('orders-2', inbound, outbound, admin), discovery: { stateDir: dir } });
  const proxy = new MeshgateProcess(['proxy', '--config', file], { ...cleanEnv('warn'), NODE_OPTIONS: '--max-semi-space-size=8' });
  procs.push(proxy);
  const adminUrl = `http://127.0.0.1:${admin}`;
  await proxy.ready(adminUrl, 30_000);
  await load(`http://127.0.0.1:${inbound}`);
  const bytes = await newSpace(adminUrl);
  assert.ok(bytes > 4 * MiB, `new space ${bytes / MiB} MiB`);
});

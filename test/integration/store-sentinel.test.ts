// The Redis store reached through Sentinel: the ioredis Sentinel options pass through, the sidecar
// registers on the master Sentinel names, and a peer discovers it and routes to it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { buildProxyConfig } from '../../config/load.ts';
import { startSidecar, type Sidecar } from '../../mesh-proxy/sidecar.ts';
import { tempDir } from '../helpers/cli.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { RedisServer } from '../helpers/redis-server.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

let master: RedisServer;
let sentinel: ChildProcess;
let sentinelPort: number;
const dir = tempDir();
const sidecars: Sidecar[] = [];
let app: TestApp;

before(async () => {
  master = await RedisServer.start();
  sentinelPort = await freePort();
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(conf, `port ${sentinelPort}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor mg 127.0.0.1 ${master.port} 1\n`);
  sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  await waitFor('sentinel to know the master', async () => {
    const c = new Redis({ port: sentinelPort, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await c.connect();
      const addr = (await c.call('SENTINEL', 'get-master-addr-by-name', 'mg')) as string[] | null;
      return addr?.[1] === String(master.port) ? true : undefined;
    } finally {
      c.disconnect();
    }
  });
  app = await startApp('catalog-app');
});

after(async () => {
  await Promise.allSettled(sidecars.map((s) => s.stop()));
  await app?.close();
  sentinel?.kill('SIGKILL');
  await master?.stop();
});

function proxyConfig(service: string, instance: string, appPort: number) {
  return buildProxyConfig(
    {
      node: { service, instance },
      app: { port: appPort },
      inbound: { address: '127.0.0.1', port: 0 },
      outbound: { address: '127.0.0.1', port: 0 },
      admin: { port: 0 },
      store: { kind: 'redis', sentinels: [{ host: '127.0.0.1', port: sentinelPort }], sentinelName: 'mg' },
      registration: { ttl: '3s', heartbeat: '1s' },
      discovery: { resync: '500ms', stateDir: dir },
      log: { level: 'silent', access: false },
    },
    `sentinel-test:${instance}`,
  );
}

test('a sidecar configured with Sentinel registers on the master and is routable from a peer', async () => {
  sidecars.push(await startSidecar(proxyConfig('catalog', 'catalog-1', app.port)));
  const observer = await startSidecar(proxyConfig('orders', 'orders-1', 1));
  sidecars.push(observer);

  // 1. the registration landed on the master Sentinel points at
  const direct = new Redis({ port: master.port, host: '127.0.0.1' });
  try {
    const ids = await waitFor('catalog-1 in the master', async () => {
      const v = await direct.zrange('meshgate:{registry}:i:catalog', 0, -1);
      return v.length > 0 ? v : undefined;
    });
    assert.deepEqual(ids, ['catalog-1']);
  } finally {
    direct.disconnect();
  }

  // 2. the peer discovered it and routes through it to the app
  const res = await waitFor('a routed response', async () => {
    // undici's request, not fetch: fetch drops a caller-set Host header.
    const r = await request(`http://127.0.0.1:${observer.outbound.port}/items`, { headers: { host: 'catalog' } });
    const body = (await r.body.json()) as { app?: string };
    return r.statusCode === 200 ? body : undefined;
  });
  assert.equal(res.app, 'catalog-app');
});

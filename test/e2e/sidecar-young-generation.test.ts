// `meshgate proxy` keeps V8's young generation at its initial size (README: Memory and CPU), and an
// operator's --max-semi-space-size (through NODE_OPTIONS) gives V8 its own sizing back. Seen through
// the sidecar's own heap metrics after the same traffic through its inbound listener.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Pool } from 'undici';
import { MeshgateProcess, tempDir, writeConfig } from '../helpers/cli.ts';
import { cleanEnv } from '../helpers/env.ts';
import { metricValue } from '../helpers/metrics.ts';
import { freePort } from '../helpers/ports.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';

const REQUESTS = 6_000;
const NEW_SPACE = 'meshgate_process_nodejs_heap_space_size_total_bytes';
const SMALL = 4 * 1024 * 1024;

let app: TestApp;
const procs: MeshgateProcess[] = [];

before(async () => {
  app = await startApp('orders');
});

after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await app?.close();
});

/** Starts a sidecar, sends it REQUESTS requests, returns its new space before and after (bytes). */
async function newSpaceUnderLoad(nodeOptions: string): Promise<{ before: number; after: number }> {
  const dir = tempDir();
  const [inbound, outbound, admin] = await Promise.all([freePort(), freePort(), freePort()]);
  const file = writeConfig(dir, 'proxy.yaml', {
    node: { service: 'orders', instance: `orders-${inbound}` },
    app: { port: app.port },
    inbound: { address: '127.0.0.1', port: inbound },
    outbound: { port: outbound },
    admin: { port: admin },
    discovery: { stateDir: dir },
    log: { level: 'warn', access: false },
  });
  const proxy = new MeshgateProcess(['proxy', '--config', file], { ...cleanEnv('warn'), NODE_OPTIONS: nodeOptions });
  procs.push(proxy);
  const adminUrl = `http://127.0.0.1:${admin}`;
  await proxy.ready(adminUrl);
  const before = await metricValue(adminUrl, NEW_SPACE, { space: 'new' });
  const pool = new Pool(`http://127.0.0.1:${inbound}`, { connections: 16 });
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
  return { before, after: await metricValue(adminUrl, NEW_SPACE, { space: 'new' }) };
}

test('a sidecar keeps the young generation at its initial size under load', async () => {
  const { before, after } = await newSpaceUnderLoad('');
  assert.ok(before > 0, 'the heap-space metric is exported');
  assert.equal(after, before, `new space ${before} → ${after} bytes`);
  // 1 MB semi-spaces make a 2 MiB new space; 4 MiB when the sources run through tsx, whose
  // start-up compiles enough for one growth before the cap applies. V8's own sizing reaches 32 MiB.
  assert.ok(after <= SMALL, `new space ${after} bytes`);
});

test('--max-semi-space-size in NODE_OPTIONS gives V8 its own sizing back', async () => {
  const { before, after } = await newSpaceUnderLoad('--max-semi-space-size=8');
  assert.ok(after > SMALL, `new space grew: ${before} → ${after} bytes`);
});

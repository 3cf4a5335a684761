// A sidecar's inbound plugin chain (plugins.inbound) with a custom plugin from a directory, and its
// hot reload: a changed config applies without a restart, a broken one is rejected while the old
// chain keeps serving.
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { MeshgateProcess, tempDir, writeConfig } from '../helpers/cli.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { startApp, type TestApp } from '../helpers/upstream.ts';
import { cleanEnv } from '../helpers/env.ts';

const PLUGINS = resolve(import.meta.dirname, '../../examples/plugins');

let app: TestApp;
let proxy: MeshgateProcess;
let dir: string;
let file: string;
let inbound: number;
let admin: number;
let outbound: number;

function config(tenants: unknown) {
  return {
    node: { service: 'orders', instance: 'orders-1' },
    app: { port: app.port },
    inbound: { address: '127.0.0.1', port: inbound },
    outbound: { port: outbound },
    admin: { port: admin },
    discovery: { stateDir: dir },
    log: { level: 'info', access: false },
    plugins: { dir: PLUGINS, inbound: [{ tenant: { header: 'x-tenant', tenants } }] },
  };
}

async function get(tenant?: string): Promise<{ status: number; body: string; served?: string }> {
  const res = await request(`http://127.0.0.1:${inbound}/orders/1`, { headers: tenant ? { 'x-tenant': tenant } : {} });
  const body = await res.body.text();
  return { status: res.statusCode, body, served: res.headers['x-served-tenant'] as string | undefined };
}

before(async () => {
  app = await startApp('orders');
  dir = tempDir();
  [inbound, admin, outbound] = await Promise.all([freePort(), freePort(), freePort()]);
  file = writeConfig(dir, 'proxy.yaml', config(['acme']));
  proxy = new MeshgateProcess(['proxy', '--config', file], cleanEnv('info'));
  await proxy.ready(`http://127.0.0.1:${admin}`);
});

after(async () => {
  await proxy?.stop();
  await app?.close();
});

test('1. the inbound chain runs before the app: refusals never reach it, passes are rewritten', async () => {
  const before = app.received.length;
  const refused = await get();
  assert.equal(refused.status, 400);
  assert.equal(JSON.parse(refused.body).error.code, 'TENANT_REQUIRED');
  assert.equal((await get('globex')).status, 403);
  assert.equal(app.received.length, before, 'refused requests did not reach the app');

  const ok = await get('ACME');
  assert.equal(ok.status, 200);
  assert.equal(ok.served, 'acme');
  const seen = app.received.at(-1)!;
  assert.equal(seen.headers['x-tenant-id'], 'acme');
  assert.equal(seen.headers['x-tenant'], undefined);
});

test('2. a changed config is applied without a restart; a broken one is rejected and the old chain serves', async () => {
  writeConfig(dir, 'proxy.yaml', config(['acme', 'globex']));
  const started = Date.now();
  await waitFor('globex allowed after the reload', async () => ((await get('globex')).status === 200 ? true : undefined), 20_000, 100);
  process.stdout.write(`# sidecar reload applied ${Date.now() - started} ms after the file changed\n`);

  writeConfig(dir, 'proxy.yaml', config([]));
  const res = await request(`http://127.0.0.1:${admin}/reload`, { method: 'POST' });
  const body = (await res.body.json()) as { applied: boolean; issues: Array<{ path: string }> };
  assert.equal(res.statusCode, 400);
  assert.equal(body.applied, false);
  assert.ok(body.issues.some((i) => i.path === 'plugins.inbound[0].tenant.tenants'), JSON.stringify(body));
  assert.equal((await get('globex')).status, 200, 'the previous chain keeps serving');
  assert.ok(proxy.logs().some((l) => l.msg === 'configuration reload rejected; the running configuration keeps serving'));
});

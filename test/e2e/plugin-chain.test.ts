// Plugins in a real gateway process (`meshgate gateway --config FILE`, custom plugin directory
// test/fixtures/plugins/chain): a plugin that throws fails only its request with 500 PLUGIN_FAILED
// (logged, counted) and the process keeps serving; dry-run lets a denial through and counts it;
// staged headers reach local and upstream replies; a header a plugin removes does not break the
// deadline header the upstream receives; a bad plugin entry stops the gateway at start (exit 2).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { MeshgateProcess, runCli, tempDir, writeConfig } from '../helpers/cli.ts';
import { cleanEnv } from '../helpers/env.ts';
import { call, startInstance, stopAll, type Instance } from '../helpers/mesh.ts';
import { metricValue } from '../helpers/metrics.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { RedisServer } from '../helpers/redis-server.ts';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/plugins/chain');

let redis: RedisServer;
let instance: Instance;
let gw: MeshgateProcess;
let base: string;
let admin: string;
const dir = tempDir();

function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(3000, () => (s.destroy(), resolve('timeout')));
    s.on('connect', () => (s.destroy(), resolve('connected')));
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

before(async () => {
  redis = await RedisServer.start();
  instance = await startInstance({ url: redis.url }, 'app', 'app-1');
  const port = await freePort();
  const adminPort = await freePort();
  base = `http://127.0.0.1:${port}`;
  admin = `http://127.0.0.1:${adminPort}`;
  const file = writeConfig(dir, 'gateway.yaml', {
    store: { kind: 'redis', url: redis.url },
    listeners: { http: { address: '127.0.0.1', port } },
    admin: { address: '127.0.0.1', port: adminPort },
    discovery: { resync: '500ms', stateDir: dir },
    log: { level: 'info', access: false },
    services: { app: {}, ghost: {} },
    plugins: { dir: FIXTURES },
    routes: [
      { name: 'ghost', match: { pathPrefix: '/ghost' }, service: 'ghost', plugins: [{ gate: {} }] },
      { name: 'main', match: { pathPrefix: '/main' }, service: 'app', timeout: '5s', plugins: [{ boom: {} }, { strip: { header: 'x-drop' } }, { gate: {} }] },
      { name: 'dry', match: { pathPrefix: '/dry' }, service: 'app', plugins: [{ gate: {}, dryRun: true }] },
    ],
  });
  gw = new MeshgateProcess(['gateway', '--config', file], cleanEnv('info'));
  await gw.ready(admin, 30_000);
  await waitFor('the app endpoint at the gateway', async () => ((await call(`${base}/main/x`)).status === 200 ? true : undefined), 20_000);
});

after(async () => {
  await gw?.stop('SIGKILL');
  await stopAll(instance?.sidecar, instance?.app);
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a plugin that throws', () => {
  for (const how of ['sync', 'async']) {
    test(`${how}: 500 PLUGIN_FAILED for that request, logged and counted; the gateway keeps serving`, async () => {
      const before = await metricValue(admin, 'meshgate_plugin_errors_total', { plugin: 'boom', route: 'main' });
      const seen = instance.app.received.length;
      const r = await call(`${base}/main/fail`, { headers: { 'x-boom': how } });
      assert.equal(r.status, 500, r.body);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      assert.equal(r.headers['x-meshgate-error'], 'PLUGIN_FAILED');
      const body = r.json<{ error: { code: string; message: string; requestId: string } }>();
      assert.equal(body.error.code, 'PLUGIN_FAILED');
      assert.equal(body.error.message, 'plugin boom failed');
      assert.equal(instance.app.received.length, seen, 'nothing reached the upstream');
      await waitFor('the error log line', () =>
        gw.logs().some((l) => l.msg === 'plugin failed' && l.plugin === 'boom' && l.route === 'main' && l.rid === body.error.requestId) ? true : undefined,
      );
      assert.equal(await metricValue(admin, 'meshgate_plugin_errors_total', { plugin: 'boom', route: 'main' }), before + 1);
      assert.equal(gw.exited, false);
      const ok = await call(`${base}/main/after`);
      assert.equal(ok.status, 200, ok.body);
    });
  }
});

describe('chain behaviour through a real gateway', () => {
  test('an async denial answers 403 with the staged header; a pass carries it on the upstream reply', async () => {
    const denied = await call(`${base}/main/x`, { headers: { 'x-deny': '1' } });
    assert.equal(denied.status, 403);
    assert.equal(denied.json<{ error: { code: string } }>().error.code, 'GATE_DENIED');
    assert.equal(denied.headers['x-gate'], 'seen');
    const passed = await call(`${base}/main/x`);
    assert.equal(passed.status, 200);
    assert.equal(passed.headers['x-app'], 'app-1');
    assert.equal(passed.headers['x-gate'], 'seen');
    assert.ok((await metricValue(admin, 'meshgate_plugin_replies_total', { plugin: 'gate', route: 'main', code: 'GATE_DENIED' })) >= 1);
  });

  test('a mesh error (503 NO_ENDPOINTS) also carries the staged header', async () => {
    const r = await call(`${base}/ghost/x`);
    assert.equal(r.status, 503, r.body);
    assert.equal(r.headers['x-meshgate-error'], 'NO_ENDPOINTS');
    assert.equal(r.headers['x-gate'], 'seen');
  });

  test('the upstream gets a correct deadline header after a plugin removed a header before it', async () => {
    const r = await call(`${base}/main/deadline`, { headers: { 'x-drop': 'secret', 'x-keep': 'yes' } });
    assert.equal(r.status, 200, r.body);
    const got = instance.app.received.at(-1)!;
    assert.equal(got.url, '/main/deadline');
    assert.equal(got.headers['x-drop'], undefined);
    assert.equal(got.headers['x-keep'], 'yes');
    const ms = Number(got.headers['x-meshgate-timeout-ms']);
    assert.ok(Number.isInteger(ms) && ms > 0 && ms <= 5000, `x-meshgate-timeout-ms: ${got.headers['x-meshgate-timeout-ms']}`);
    assert.match(String(got.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
  });

  test('dry-run: a denial is let through and counted', async () => {
    const before = await metricValue(admin, 'meshgate_plugin_dry_run_total', { plugin: 'gate', route: 'dry', code: 'GATE_DENIED' });
    const r = await call(`${base}/dry/x`, { headers: { 'x-deny': '1' } });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers['x-app'], 'app-1');
    assert.equal(await metricValue(admin, 'meshgate_plugin_dry_run_total', { plugin: 'gate', route: 'dry', code: 'GATE_DENIED' }), before + 1);
    assert.equal(await metricValue(admin, 'meshgate_plugin_replies_total', { plugin: 'gate', route: 'dry' }), 0);
    await waitFor('the dry-run log line', () => (gw.logs().some((l) => l.msg === 'dry-run: plugin would have answered' && l.plugin === 'gate' && l.code === 'GATE_DENIED') ? true : undefined));
  });

  test('the admin API lists each route\'s chain', async () => {
    const v = (await call(`${admin}/routes`)).json<{ routes: Array<{ name: string; plugins: string[] }> }>();
    assert.deepEqual(v.routes.map((r) => [r.name, r.plugins]), [['ghost', ['gate']], ['main', ['boom', 'strip', 'gate']], ['dry', ['gate (dry-run)']]]);
  });
});

describe('startup with a bad plugin entry', () => {
  test('exits 2 naming the file and the path; nothing listens', async () => {
    const port = await freePort();
    const adminPort = await freePort();
    const file = writeConfig(dir, 'bad.yaml', {
      listeners: { http: { address: '127.0.0.1', port } },
      admin: { address: '127.0.0.1', port: adminPort },
      discovery: { stateDir: dir },
      services: { app: {} },
      plugins: { dir: FIXTURES },
      routes: [
        { name: 'ok', match: { pathPrefix: '/ok' }, service: 'app' },
        { name: 'bad', match: { pathPrefix: '/' }, service: 'app', plugins: [{ strip: { header: '' } }, { nope: {} }] },
      ],
    });
    const r = await runCli(['gateway', '--config', file], cleanEnv('info'));
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(file), r.stderr);
    assert.match(r.stderr, /routes\[1\]\.plugins\[0\]\.strip\.header/);
    assert.match(r.stderr, /routes\[1\]\.plugins\[1\]\.nope: unknown plugin \(available: [^)]*\bboom\b[^)]*\bgate\b[^)]*\bstrip\b[^)]*\)/);
    assert.equal(await tryConnect(port), 'ECONNREFUSED');
    assert.equal(await tryConnect(adminPort), 'ECONNREFUSED');
  });

  test('a plugin directory with a broken module also stops it', async () => {
    const plugins = tempDir('meshgate-plugins-');
    writeConfig(plugins, 'broken.mjs', 'export default {\n');
    const file = writeConfig(dir, 'bad-dir.yaml', {
      listeners: { http: { address: '127.0.0.1', port: await freePort() } },
      admin: { address: '127.0.0.1', port: await freePort() },
      discovery: { stateDir: dir },
      plugins: { dir: plugins },
    });
    const r = await runCli(['gateway', '--config', file], cleanEnv('info'));
    rmSync(plugins, { recursive: true, force: true });
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(file), r.stderr);
    assert.match(r.stderr, /plugins\.dir: .*broken\.mjs: cannot load the plugin/);
  });
});

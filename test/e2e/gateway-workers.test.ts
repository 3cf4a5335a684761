// `meshgate gateway --workers 2` as a user runs it: both workers serve the one listener, the
// primary's admin API sums their metrics and answers views through a worker, and SIGTERM drains
// them all and exits 0.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { MeshgateProcess, runCli, tempDir, writeConfig } from '../helpers/cli.ts';
import { cleanEnv } from '../helpers/env.ts';
import { call, startInstance, stopAll, type Instance } from '../helpers/mesh.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { RedisServer } from '../helpers/redis-server.ts';

let redis: RedisServer;
let instance: Instance;
let gw: MeshgateProcess;
let port: number;
let admin: string;
const dir = tempDir();

before(async () => {
  redis = await RedisServer.start();
  instance = await startInstance({ url: redis.url }, 'catalog', 'catalog-1');
  port = await freePort();
  const adminPort = await freePort();
  admin = `http://127.0.0.1:${adminPort}`;
  const file = writeConfig(dir, 'gateway.yaml', {
    store: { kind: 'redis', url: redis.url },
    listeners: { http: { address: '127.0.0.1', port } },
    admin: { address: '127.0.0.1', port: adminPort },
    discovery: { resync: '500ms', stateDir: dir },
    log: { level: 'info', access: true },
    services: { catalog: {} },
    routes: [{ name: 'catalog', match: { pathPrefix: '/' }, service: 'catalog' }],
  });
  gw = new MeshgateProcess(['gateway', '--config', file, '--workers', '2'], cleanEnv('info'));
  await gw.ready(admin, 30_000);
});

after(async () => {
  await gw?.stop('SIGKILL');
  await stopAll(instance?.sidecar, instance?.app);
  await redis?.stop();
});

/** One request on its own connection, so the primary hands each to a worker in turn. */
function getFresh(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
}

test('two workers share the listener; the primary sums their metrics and serves their views', async () => {
  await waitFor('the catalog endpoint at a worker', async () => {
    const v = (await call(`${admin}/endpoints`)).json<{ services?: Record<string, unknown[]> }>();
    return v.services?.catalog?.length === 1 ? true : undefined;
  });
  // 1. forty requests on fresh connections all succeed
  for (let i = 0; i < 40; i++) assert.equal(await getFresh('/items'), 200);
  // 2. both workers answered some (their access-log lines carry the worker id)
  await waitFor('access-log lines from both workers', () => {
    const workers = new Set(gw.logs().filter((l) => l.msg === 'access').map((l) => l.worker));
    return workers.size === 2 ? true : undefined;
  });
  // 3. the primary's /metrics is the sum over workers
  const metrics = (await call(`${admin}/metrics`)).body;
  const line = metrics.split('\n').find((l) => l.startsWith('meshgate_requests_total{') && l.includes('route="catalog"') && l.includes('status_code="200"'));
  assert.ok(line, metrics.slice(0, 500));
  assert.equal(Number(line.split(' ').pop()), 40);
  // 4. views come from a worker
  const routes = (await call(`${admin}/routes`)).json<{ routes: Array<{ name: string }> }>();
  assert.deepEqual(routes.routes.map((r) => r.name), ['catalog']);
});

test("the primary's admin API forwards splits, explain and datacenters to a worker", async () => {
  const put = await fetch(`${admin}/splits/catalog`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ weights: { v1: 100 } }) });
  const stored = (await put.json()) as { version: number; weights: Record<string, number> };
  assert.equal(put.status, 200, JSON.stringify(stored));
  assert.deepEqual(stored.weights, { v1: 100 });
  const bad = await fetch(`${admin}/splits/catalog`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ weights: {} }) });
  assert.equal(bad.status, 400);
  await waitFor('every worker applies it', async () => {
    const list = (await (await fetch(`${admin}/splits`)).json()) as { splits: Array<{ version: number }> };
    return list.splits[0]?.version === stored.version ? true : undefined;
  }, 10_000, 50);
  const explain = await fetch(`${admin}/explain`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ method: 'GET', path: '/x' }) });
  const doc = (await explain.json()) as { route: { name: string }; split: { subset: string } };
  assert.equal(doc.route.name, 'catalog');
  assert.equal(doc.split.subset, 'v1');
  assert.equal((await fetch(`${admin}/datacenters`)).status, 404);
  assert.equal((await fetch(`${admin}/splits/catalog`, { method: 'DELETE' })).status, 200);
});

test('POST /reload on the primary reloads every worker and reports each', async () => {
  const res = await fetch(`${admin}/reload`, { method: 'POST' });
  const body = (await res.json()) as { applied: boolean; workers: Array<{ applied: boolean }> };
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.applied, true);
  assert.equal(body.workers.length, 2);
  assert.ok(body.workers.every((w) => w.applied));
  assert.equal(await getFresh('/items'), 200);
});

function workerPids(): number[] {
  const r = spawnSync('pgrep', ['-P', String(gw.child.pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

test('a worker that dies is replaced and the gateway keeps serving', async () => {
  const before = workerPids();
  assert.equal(before.length, 2, `two workers: ${before.join(' ')}`);
  process.kill(before[0], 'SIGKILL');
  const after = await waitFor('a replacement worker', () => {
    const now = workerPids();
    return now.length === 2 && !now.includes(before[0]) ? now : undefined;
  }, 20_000);
  assert.ok(after.includes(before[1]), 'the other worker kept running');
  await waitFor('the primary to be ready again', async () => ((await fetch(`${admin}/ready`)).status === 200 ? true : undefined), 20_000);
  for (let i = 0; i < 10; i++) assert.equal(await getFresh('/items'), 200);
});

test('SIGTERM drains every worker and exits 0', async () => {
  const r = await gw.stop('SIGTERM', 30_000);
  assert.equal(r.code, 0, r.stderr);
  await assert.rejects(getFresh('/items'), 'nothing listens any more');
});

test('--workers must be a whole number or "auto"', async () => {
  const r = await runCli(['gateway', '--config', 'x.yaml', '--workers', 'many']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--workers must be a whole number/);
});

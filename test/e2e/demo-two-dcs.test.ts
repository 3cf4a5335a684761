// `meshgate demo --dcs 2` as a user runs it: two datacenters, each with its own store and edge;
// SIGUSR2 stops dc-1's catalog instances and traffic moves to dc-2 without an error; again brings
// them back; `meshgate status` and `meshgate explain` read the running gateway; SIGINT stops all.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { rmSync } from 'node:fs';
import { MeshgateProcess, runCli, tempDir } from '../helpers/cli.ts';
import { waitFor } from '../helpers/ports.ts';

const PORTS = [8080, 8180, 8443, 9444, 9544, 9901, 10001, 6391, 6392, 3001, 3002, 3003, 3004, 3101, 3102, 4140, 4143, 4191, 4240, 4243, 4291, 4340, 4343, 4391, 4440, 4443, 4491, 4540, 4543, 4591, 4640, 4643, 4691];

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Every port in 10000..19999: clear of freePort()'s range and of the ephemeral range (as demo.test.ts). */
async function pickOffset(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const offset = 7_000 + Math.floor(Math.random() * 2_900);
    if ((await Promise.all(PORTS.map((p) => canBind(p + offset)))).every(Boolean)) return offset;
  }
  throw new Error('no free port offset for the demo after 50 attempts');
}

async function instanceOf(url: string): Promise<{ status: number; instance: string }> {
  const res = await fetch(url);
  const body = (await res.json().catch(() => ({}))) as { instance?: string };
  return { status: res.status, instance: body.instance ?? '' };
}

describe('meshgate demo --dcs 2', () => {
  let demo: MeshgateProcess;
  let dir: string;
  let offset: number;
  let edge: string;
  let admin: string;

  before(async () => {
    dir = tempDir('meshgate-e2e-demo2-');
    // The probe and the demo's own binds can race with the other demo test: a new offset then (bounded).
    for (let attempt = 1; ; attempt++) {
      offset = await pickOffset();
      edge = `http://127.0.0.1:${8080 + offset}`;
      admin = `http://127.0.0.1:${9901 + offset}`;
      demo = new MeshgateProcess(['demo', '--dcs', '2', '--port-offset', String(offset), '--state-dir', dir], { MESHGATE_LOG_LEVEL: 'warn', MESHGATE_REDIS_URL: '' });
      const d = demo;
      const up = await waitFor('both datacenters serve and see each other', async () => {
        if (d.exited) return 'exited';
        const r = await fetch(`${admin}/datacenters`).then((x) => x.json() as Promise<{ peers: Array<{ reachable: boolean }> }>).catch(() => undefined);
        return r?.peers.every((p) => p.reachable) ? 'up' : undefined;
      }, 60_000, 200);
      if (up === 'up') break;
      const result = await d.stop('SIGTERM', 15_000);
      if (!/EADDRINUSE|did not start/.test(result.stderr) || attempt >= 3) throw new Error(`the demo exited:\n${result.stdout.slice(-1500)}\n${result.stderr.slice(-1500)}`);
    }
  });

  after(async () => {
    if (demo && !demo.exited) await demo.stop('SIGTERM', 15_000);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the banner says how to stop a datacenter; each edge serves its own catalog', async () => {
    await waitFor('the banner', () => (demo.stdout.includes('kill -USR2') ? true : undefined), 10_000, 50);
    assert.match(demo.stdout, /dc-1: (redis-server on|in-memory)/);
    assert.match((await instanceOf(`${edge}/catalog/items`)).instance, /^catalog-[12]$/);
    assert.match((await instanceOf(`http://127.0.0.1:${8180 + offset}/catalog/items`)).instance, /^catalog-[34]$/);
  });

  test('status and explain read the running gateway', async () => {
    const status = await runCli(['status', '--admin', admin]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /catalog-1 +127\.0\.0\.1:\d+ +dc-1/);
    assert.match(status.stdout, /failover: all local \(standby dc-2\)/);
    const json = JSON.parse((await runCli(['status', '--admin', admin, '--json'])).stdout) as { datacenters: { dc: string } };
    assert.equal(json.datacenters.dc, 'dc-1');
    const explain = await runCli(['explain', 'GET', `${edge}/catalog/items`, '--admin', admin]);
    assert.equal(explain.code, 0, explain.stderr);
    assert.match(explain.stdout, /route +catalog → service catalog, upstream path \/items/);
    assert.match(explain.stdout, /datacenter dc-1 \(this one\)/);
    assert.match(explain.stdout, /outcome +forwarded to catalog, most likely catalog-[12]/);
    const none = await runCli(['explain', '/nowhere', '--admin', admin]);
    assert.match(none.stdout, /404 NO_ROUTE/);
  });

  test("SIGUSR2: dc-1's catalog stops, dc-2 serves without an error; again: dc-1 serves again", async () => {
    demo.child.kill('SIGUSR2');
    const errors: number[] = [];
    await waitFor('dc-2 answers for dc-1', async () => {
      const r = await instanceOf(`${edge}/catalog/items`);
      if (r.status !== 200) errors.push(r.status);
      return /^catalog-[34]$/.test(r.instance) ? true : undefined;
    }, 20_000, 50);
    for (let i = 0; i < 20; i++) {
      const r = await instanceOf(`${edge}/catalog/items`);
      assert.equal(r.status, 200);
      assert.match(r.instance, /^catalog-[34]$/);
    }
    assert.deepEqual(errors, [], 'no error while dc-1 went away');
    const explain = await runCli(['explain', `${edge}/catalog/items`, '--admin', admin]);
    assert.match(explain.stdout, /datacenter dc-2: 0\/0 local endpoints healthy: failing over/);
    demo.child.kill('SIGUSR2');
    await waitFor('dc-1 serves again', async () => (/^catalog-[12]$/.test((await instanceOf(`${edge}/catalog/items`)).instance) ? true : undefined), 30_000, 100);
  });

  test('SIGINT stops both datacenters: exit 0', async () => {
    const started = Date.now();
    const result = await demo.stop('SIGINT', 30_000);
    assert.equal(result.code, 0, `after ${Date.now() - started} ms: ${result.stdout.slice(-3000)}\n${result.stderr.slice(-2000)}`);
  });
});

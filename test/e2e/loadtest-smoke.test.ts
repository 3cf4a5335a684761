// `npm run loadtest -- --quick` as a smoke check: the harness starts its upstreams and targets,
// measures, prints its tables and stops everything. Nothing about speed is asserted here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

async function portFree(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = createServer();
    s.once('error', () => r(false));
    s.listen(port, '127.0.0.1', () => s.close(() => r(true)));
  });
}

/**
 * A base port whose 100 successors are all free right now (bounded attempts), above Linux's
 * ephemeral range (32768-60999) so other tests' sockets never land in it.
 */
async function freeRange(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = 61_000 + Math.floor(Math.random() * 44) * 100;
    const checks = await Promise.all(Array.from({ length: 100 }, (_, i) => portFree(base + i)));
    if (checks.every(Boolean)) return base;
  }
  throw new Error('no free range of 100 ports found');
}

test('npm run loadtest -- --quick prints its tables and stops every process it started', { timeout: 180_000 }, async (t) => {
  const base = await freeRange();
  const child = spawn(process.execPath, ['--import', 'tsx', 'loadtest/run.ts', '--quick', '--base-port', String(base)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 170_000);
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  clearTimeout(timer);
  t.diagnostic(out.split('\n').filter((l) => l.startsWith('| meshgate')).join('\n'));
  assert.equal(code, 0, `loadtest exited ${code}: ${err.slice(-1500)}`);
  assert.match(out, /### Scenario plain-h1/);
  assert.match(out, /\| meshgate \| \d+/);
  assert.match(out, /### Scenario sidecar/);
  assert.match(out, /\| meshgate proxy \| \d+/, 'the sidecar row, from a `meshgate proxy` process');
  assert.match(out, /### Scenario slow-instance/);
  assert.match(out, /\| meshgate p2c-ewma \| \d+/);
  // 1. every process it started is gone, and nothing listens on its ports
  const pids = (/stopped pids: ([\d ]*)/.exec(err)?.[1] ?? '').trim().split(' ').filter(Boolean).map(Number);
  assert.ok(pids.length >= 4, `the harness reports the processes it started: ${err.slice(-300)}`);
  const alive = pids.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  assert.deepEqual(alive, [], 'no process of the run is left');
  const stillBound = (await Promise.all(Array.from({ length: 100 }, (_, i) => portFree(base + i)))).filter((free) => !free).length;
  assert.equal(stillBound, 0, 'every port of the run is free again');
});

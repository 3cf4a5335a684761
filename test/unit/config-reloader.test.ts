// The reloader's bookkeeping with its file watcher: a change made while a reload is loading files is
// not lost (the next poll reloads again), and an emptied file is never swapped in.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import type { GatewayConfig } from '../../config/schema.ts';
import { Reloader } from '../../config/reloader.ts';
import { loadGatewayConfig } from '../../config/load.ts';
import type { GatewaySnapshot } from '../../gateway/snapshot.ts';
import { tempDir } from '../helpers/cli.ts';
import { waitFor } from '../helpers/ports.ts';

const dir = tempDir('meshgate-reloader-');
after(() => rmSync(dir, { recursive: true, force: true }));

function put(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function snapshot(config: GatewayConfig): GatewaySnapshot {
  return { config, table: {} as GatewaySnapshot['table'], chains: { chains: new Map(), close: async () => {} }, pluginDir: undefined, stamp: async () => '' };
}

function setup(file: string, build: (c: GatewayConfig) => Promise<GatewaySnapshot>) {
  let current = snapshot({ node: { name: 'start' } } as GatewayConfig);
  const reloads = new Counter({ name: 'reloads_total', help: 'x', labelNames: ['result'], registers: [new Registry()] });
  const reloader = new Reloader<GatewayConfig, GatewaySnapshot>({
    file,
    load: (f) => loadGatewayConfig(f),
    restartSections: [],
    log: pino({ level: 'silent' }),
    reloads,
    watch: true,
    current: () => current,
    build,
    swap: (next) => (current = next),
  });
  return { reloader, reloads, current: () => current };
}

test('a change made while a reload is loading files is picked up by the next poll', async () => {
  const file = join(dir, 'a.yaml');
  put(file, 'node: { name: one }\n');
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const built: string[] = [];
  const { reloader, current } = setup(file, async (c) => {
    built.push(c.node.name);
    if (built.length === 1) await gate; // 1. the first reload is still building …
    return snapshot(c);
  });
  await reloader.start();
  try {
    const first = reloader.reload('request');
    await waitFor('the first build', () => (built.length === 1 ? true : undefined));
    put(file, 'node: { name: two }\n'); // 2. … when the file changes again
    release();
    assert.equal((await first).applied, true);
    // 3. the watcher still sees the second change and reloads it
    await waitFor('the second change applied', () => (current().config.node.name === 'two' ? true : undefined), 10_000);
    assert.deepEqual(built, ['one', 'two']);
  } finally {
    reloader.stop();
  }
});

test('an emptied file is rejected at reload and the running snapshot stays', async () => {
  const file = join(dir, 'b.yaml');
  put(file, 'node: { name: one }\n');
  const { reloader, current, reloads } = setup(file, async (c) => snapshot(c));
  await reloader.start();
  try {
    assert.equal((await reloader.reload('request')).applied, true);
    writeFileSync(file, '  \n');
    const r = await reloader.reload('request');
    assert.equal(r.applied, false);
    assert.deepEqual(r.issues, [{ path: '', message: 'the file is empty (a reload never empties the route table; restart to run with no config)' }]);
    assert.equal(current().config.node.name, 'one');
    assert.deepEqual((await reloads.get()).values.map((v) => [v.labels.result, v.value]).sort(), [['applied', 1], ['rejected', 1]]);
  } finally {
    reloader.stop();
  }
});

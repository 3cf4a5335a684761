// Hot reload of a real gateway process started from a YAML file in a temp dir, with plugins.dir →
// a temp plugin dir holding a .ts and an .mjs plugin, while a steady request loop runs:
//   (a) config changes (a plugin added to a route, its config changed) and (b) edited plugin files
//       take effect with no failed request;
//   (c) a broken config or plugin file is rejected (logged, counted, POST /reload → 400 with the
//       issues) while the old config keeps serving;
//   (d) SIGHUP reloads a gateway that does not watch its file;
//   (e) a slow streaming response started before a reload completes intact.
// Files are replaced by rename, as editors and ConfigMaps do (a poll never sees a half-written file).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { MeshgateProcess, tempDir } from '../helpers/cli.ts';
import { cleanEnv } from '../helpers/env.ts';
import { steadyLoad } from '../helpers/load.ts';
import { metricValue } from '../helpers/metrics.ts';
import { call, startInstance, stopAll, type Instance } from '../helpers/mesh.ts';
import { freePort, waitFor } from '../helpers/ports.ts';
import { RedisServer } from '../helpers/redis-server.ts';

const API = resolve(import.meta.dirname, '../../plugins/api.ts');

/** Replaces a file atomically. */
function put(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

// A TypeScript plugin living outside the project (compiled by tsx at load): stamps every response
// with its config value and the file's version, and logs its creation and close().
const stampTs = (version: string) => `import { definePlugin } from ${JSON.stringify(API)};
const VERSION: string = ${JSON.stringify(version)};
export default definePlugin({
  name: 'stamp',
  schema: { type: 'object', properties: { value: { type: 'string', default: 'none' } }, additionalProperties: false } as never,
  create(config: { value: string }, env) {
    env.log.info({ value: config.value, version: VERSION }, 'stamp created');
    return {
      onRequest(ctx) {
        ctx.addResponseHeader('x-stamp', config.value + '/' + VERSION);
      },
      close() {
        env.log.info({ value: config.value, version: VERSION }, 'stamp closed');
      },
    };
  },
});
`;
// A plain JavaScript plugin: no imports at all.
const markMjs = (version: string) => `const VERSION = ${JSON.stringify(version)};
export default {
  name: 'mark',
  schema: { type: 'object' },
  create: () => ({ onResponse(ctx) { ctx.setResponseHeader('x-mark', VERSION); } }),
};
`;

let redis: RedisServer;
let instance: Instance;
const root = tempDir('meshgate-reload-');

interface Gw {
  proc: MeshgateProcess;
  base: string;
  admin: string;
  file: string;
  pluginDir: string;
  write(routePlugins: unknown[]): void;
}

async function startGw(name: string, watch: boolean): Promise<Gw> {
  const dir = join(root, name);
  const pluginDir = join(dir, 'plugins.d');
  mkdirSync(pluginDir, { recursive: true });
  put(join(pluginDir, 'stamp.ts'), stampTs('v1'));
  put(join(pluginDir, 'mark.mjs'), markMjs('m1'));
  const port = await freePort();
  const adminPort = await freePort();
  const file = join(dir, 'gateway.yaml');
  const write = (routePlugins: unknown[]) =>
    put(
      file,
      stringify({
        store: { kind: 'redis', url: redis.url },
        listeners: { http: { address: '127.0.0.1', port } },
        admin: { address: '127.0.0.1', port: adminPort },
        discovery: { resync: '500ms', stateDir: dir },
        log: { level: 'info', access: false },
        drainTimeout: '1s',
        watch,
        services: { app: {} },
        plugins: { dir: 'plugins.d' },
        routes: [{ name: 'r', match: { pathPrefix: '/' }, service: 'app', plugins: routePlugins }],
      }),
    );
  write([{ mark: {} }]);
  const proc = new MeshgateProcess(['gateway', '--config', file], cleanEnv('info'));
  const gw = { proc, base: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${adminPort}`, file, pluginDir, write };
  await proc.ready(gw.admin, 30_000);
  await waitFor('the app endpoint at the gateway', async () => ((await call(`${gw.base}/warm`)).status === 200 ? true : undefined), 20_000);
  return gw;
}

/** Polls until a request shows `want` in `header`; returns the time it took. */
async function observe(gw: Gw, header: string, want: string, timeoutMs = 20_000): Promise<number> {
  const t0 = performance.now();
  await waitFor(`${header}: ${want}`, async () => ((await call(`${gw.base}/probe`)).headers[header] === want ? true : undefined), timeoutMs, 50);
  return Math.round(performance.now() - t0);
}

function logCount(gw: Gw, msg: string): number {
  return gw.proc.logs().filter((l) => String(l.msg).startsWith(msg)).length;
}

const measured: Record<string, number> = {};

before(async () => {
  redis = await RedisServer.start();
  instance = await startInstance({ url: redis.url }, 'app', 'app-1');
  instance.app.handler = (req, res) => {
    if (req.url !== '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-app': 'app-1' });
      res.end('ok');
      return;
    }
    // A slow stream: a chunk every 100 ms for 2 s.
    res.writeHead(200, { 'content-type': 'text/plain' });
    let n = 0;
    const t = setInterval(() => {
      res.write(`chunk-${String(n).padStart(2, '0')}\n`);
      if (++n === 20) {
        clearInterval(t);
        res.end();
      }
    }, 100);
    res.on('close', () => clearInterval(t));
  };
});

after(async () => {
  await stopAll(instance?.sidecar, instance?.app);
  await redis?.stop();
  rmSync(root, { recursive: true, force: true });
  console.log(`# reload latencies (ms, write → first request showing it): ${JSON.stringify(measured)}`);
});

describe('hot reload of a watched config and plugin dir under steady load', () => {
  let gw: Gw;
  let load: ReturnType<typeof steadyLoad>;
  let loadStopped = false;

  before(async () => {
    gw = await startGw('watched', true);
    load = steadyLoad(`${gw.base}/load`, { concurrency: 4, pauseMs: 2 });
  });

  after(async () => {
    if (!loadStopped) await load?.stop().catch(() => {});
    await gw?.proc.stop('SIGKILL');
  });

  test('(a) a plugin added to a route, then its config changed', async () => {
    assert.equal((await call(`${gw.base}/probe`)).headers['x-mark'], 'm1');
    gw.write([{ mark: {} }, { stamp: { value: 'a' } }]);
    measured.addPlugin = await observe(gw, 'x-stamp', 'a/v1');
    gw.write([{ mark: {} }, { stamp: { value: 'b' } }]);
    measured.changeConfig = await observe(gw, 'x-stamp', 'b/v1');
    // The retired snapshot's instance is closed once its drain time (1 s) has passed.
    await waitFor('the old stamp instance closed', () => (gw.proc.logs().some((l) => l.msg === 'stamp closed' && l.value === 'a') ? true : undefined), 10_000);
  });

  test('(b) an edited .ts and an edited .mjs plugin', async () => {
    put(join(gw.pluginDir, 'stamp.ts'), stampTs('v2'));
    measured.editTs = await observe(gw, 'x-stamp', 'b/v2');
    put(join(gw.pluginDir, 'mark.mjs'), markMjs('m2'));
    measured.editMjs = await observe(gw, 'x-mark', 'm2');
  });

  test('(c) a broken config or plugin file is rejected and the old config keeps serving', async () => {
    const cases: Array<{ what: string; breakIt(): void; fixIt(): void; issue: RegExp }> = [
      {
        what: 'schema error in the config',
        breakIt: () => gw.write([{ mark: {} }, { stamp: { value: 5 } }]),
        fixIt: () => gw.write([{ mark: {} }, { stamp: { value: 'b' } }]),
        issue: /^routes\[0\]\.plugins\[1\]\.stamp\.value: expected a string/,
      },
      {
        what: 'unknown top-level key',
        breakIt: () => put(gw.file, `routez: []\n${readFileSync(gw.file, 'utf8')}`),
        fixIt: () => gw.write([{ mark: {} }, { stamp: { value: 'b' } }]),
        issue: /^routez: unknown key/,
      },
      {
        what: 'an emptied config file (a truncate-then-write caught half way)',
        breakIt: () => writeFileSync(gw.file, ''),
        fixIt: () => gw.write([{ mark: {} }, { stamp: { value: 'b' } }]),
        issue: /the file is empty/,
      },
      {
        what: 'syntax error in a .ts plugin',
        breakIt: () => put(join(gw.pluginDir, 'stamp.ts'), 'export default definePlugin({ name: ;\n'),
        fixIt: () => put(join(gw.pluginDir, 'stamp.ts'), stampTs('v2')),
        issue: /^plugins\.dir: .*stamp\.ts: cannot load the plugin/,
      },
      {
        what: 'bad default export in an .mjs plugin',
        breakIt: () => put(join(gw.pluginDir, 'mark.mjs'), 'export default 42;\n'),
        fixIt: () => put(join(gw.pluginDir, 'mark.mjs'), markMjs('m2')),
        issue: /^plugins\.dir: .*mark\.mjs: the default export must be a plugin/,
      },
    ];
    for (const c of cases) {
      const rejectedBefore = await metricValue(gw.admin, 'meshgate_config_reloads_total', { result: 'rejected' });
      const logsBefore = logCount(gw, 'configuration reload rejected');
      c.breakIt();
      // 1. the file poll notices and rejects it (logged with the detail)
      await waitFor(`the rejection of: ${c.what}`, () => (logCount(gw, 'configuration reload rejected') > logsBefore ? true : undefined), 15_000, 50).catch((err: Error) => {
        throw new Error(`${err.message}\n${gw.proc.stdout.slice(-3000)}`);
      });
      // 2. POST /reload answers 400 with the issues
      const r = await call(`${gw.admin}/reload`, { method: 'POST' });
      assert.equal(r.status, 400, `${c.what}: ${r.body}`);
      const body = r.json<{ applied: boolean; error: string; issues: Array<{ path: string; message: string }> }>();
      assert.equal(body.applied, false);
      assert.ok(body.issues.some((i) => c.issue.test(`${i.path}: ${i.message}`)), `${c.what}: ${r.body}`);
      assert.ok(body.error.includes(gw.file), body.error);
      assert.equal(await metricValue(gw.admin, 'meshgate_config_reloads_total', { result: 'rejected' }), rejectedBefore + 2);
      // 3. the old config still serves
      const still = await call(`${gw.base}/probe`);
      assert.equal(still.status, 200);
      assert.equal(still.headers['x-stamp'], 'b/v2');
      assert.equal(still.headers['x-mark'], 'm2');
      const applied = await metricValue(gw.admin, 'meshgate_config_reloads_total', { result: 'applied' });
      c.fixIt();
      await waitFor(`the reload after fixing: ${c.what}`, async () =>
        (await metricValue(gw.admin, 'meshgate_config_reloads_total', { result: 'applied' })) > applied ? true : undefined, 15_000, 50);
    }
    const rejections = gw.proc.logs().filter((l) => String(l.msg).startsWith('configuration reload rejected'));
    assert.ok(rejections.some((l) => String(l.error).includes('routes[0].plugins[1].stamp.value')), JSON.stringify(rejections.slice(0, 2)));
  });

  test('no request failed during the reloads', async () => {
    loadStopped = true;
    const result = await load.stop();
    assert.ok(result.sent > 100, `only ${result.sent} requests sent`);
    assert.deepEqual(result.failures.slice(0, 5), [], `${result.failures.length} of ${result.sent} failed`);
    measured.requestsDuringReloads = result.sent;
    measured.failedRequests = result.failures.length;
  });

  test('(e) a slow streaming response started before a reload completes intact', async () => {
    const started = performance.now();
    const done = new Promise<{ status: number; stamp: string | undefined; body: string; firstChunkAt: number }>((resolve, reject) => {
      const req = http.get(`${gw.base}/stream`, { agent: false }, (res) => {
        let body = '';
        let firstChunkAt = 0;
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (!firstChunkAt) firstChunkAt = performance.now() - started;
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, stamp: res.headers['x-stamp'] as string | undefined, body, firstChunkAt }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(15_000, () => req.destroy(new Error('stream timed out')));
    });
    // The stream is under way (its headers came through the old chain) when the reload happens.
    await new Promise((r) => setTimeout(r, 300));
    gw.write([{ mark: {} }, { stamp: { value: 'c' } }]);
    const r = await call(`${gw.admin}/reload`, { method: 'POST' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json<{ applied: boolean }>().applied, true);
    assert.equal((await call(`${gw.base}/probe`)).headers['x-stamp'], 'c/v2', 'new requests see the new config');
    const s = await done;
    assert.equal(s.status, 200);
    assert.equal(s.stamp, 'b/v2', 'the stream kept the chain it started with');
    assert.equal(s.body, Array.from({ length: 20 }, (_, i) => `chunk-${String(i).padStart(2, '0')}\n`).join(''));
    assert.ok(performance.now() - started >= 1900, 'the stream outlived the reload');
  });
});

describe('SIGHUP', () => {
  test('reloads a gateway that does not watch its file', async () => {
    const gw = await startGw('unwatched', false);
    try {
      gw.write([{ stamp: { value: 'hup' } }]);
      // 1. no watch: nothing changes by itself
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal((await call(`${gw.base}/probe`)).headers['x-stamp'], undefined);
      // 2. SIGHUP applies it
      const t0 = performance.now();
      gw.proc.child.kill('SIGHUP');
      await observe(gw, 'x-stamp', 'hup/v1');
      measured.sighup = Math.round(performance.now() - t0);
      await waitFor('the SIGHUP reload log', () => (gw.proc.logs().some((l) => l.msg === 'configuration reloaded' && l.trigger === 'SIGHUP') ? true : undefined));
      assert.equal(gw.proc.exited, false);
      assert.equal(await metricValue(gw.admin, 'meshgate_config_reloads_total', { result: 'applied' }), 1);
    } finally {
      await gw.proc.stop('SIGKILL');
    }
  });
});

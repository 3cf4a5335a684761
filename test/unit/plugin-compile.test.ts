// Compiling plugin entries and loading custom plugin directories: every config problem is reported
// with its path in the file, unknown names list the available plugins, places are respected, and a
// directory with a broken module is refused with the file named.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import pino from 'pino';
import { Registry } from 'prom-client';
import { ConfigError } from '../../config/errors.ts';
import { MemoryRateLimits } from '../../mesh-proxy/store/memory/memory-rate-limits.ts';
import { definePlugin, type PluginDefinition, type PluginPlace } from '../../plugins/api.ts';
import { pluginChainMetrics } from '../../plugins/chain-metrics.ts';
import { compileChains, pluginNames, type CompileOptions, type PluginEntry } from '../../plugins/compile.ts';
import { PluginError } from '../../plugins/errors.ts';
import { loadRegistry, pluginDirStamp, type PluginRegistry } from '../../plugins/registry.ts';
import { tempDir } from '../helpers/cli.ts';

const EXAMPLES = resolve(import.meta.dirname, '../../examples/plugins');
const silent = pino({ level: 'silent' });

const edgeOnly = definePlugin({ name: 'edge-only', schema: Type.Object({}), places: ['edge'], create: () => ({}) }) as PluginDefinition;
let closed: string[] = [];
const starter = definePlugin({
  name: 'starter',
  schema: Type.Object({ fail: Type.Boolean({ default: false }), id: Type.String({ default: '' }) }),
  create(c) {
    if (c.fail) throw new Error('no keys today');
    return { close: () => void closed.push(c.id) };
  },
}) as PluginDefinition;

async function registry(): Promise<Map<string, PluginDefinition>> {
  const r = new Map(await loadRegistry(EXAMPLES));
  r.set(edgeOnly.name, edgeOnly);
  r.set(starter.name, starter);
  return r;
}

function options(reg: PluginRegistry, routes: PluginEntry[][], more: Partial<CompileOptions> = {}): CompileOptions {
  return {
    file: 'gateway.yaml',
    place: 'edge',
    registry: reg,
    global: [],
    globalPath: 'plugins.global',
    services: {},
    servicesPath: 'plugins.services',
    targets: routes.map((entries, i) => ({ route: `r${i}`, service: 'svc', entries, path: `routes[${i}].plugins` })),
    log: silent,
    metrics: pluginChainMetrics(new Registry()),
    rateLimits: new MemoryRateLimits(),
    baseDir: process.cwd(),
    ...more,
  };
}

async function configError(p: Promise<unknown>): Promise<ConfigError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
  assert.equal(err.code, 'CONFIG_INVALID');
  assert.equal(err.file, 'gateway.yaml');
  return err;
}

describe('compiling plugin entries', () => {
  test('a schema error names the path inside the file', async () => {
    const err = await configError(compileChains(options(await registry(), [[], [{ tenant: { tenants: [] } }]])));
    assert.deepEqual(err.issues.map((i) => i.path), ['routes[1].plugins[0].tenant.tenants']);
    assert.match(err.message, /^gateway\.yaml: routes\[1\]\.plugins\[0\]\.tenant\.tenants: /);
  });

  test('an unknown key and a wrong type are both reported, with paths', async () => {
    const err = await configError(compileChains(options(await registry(), [[{ tenant: { tenants: ['a'], header: 5, colour: 'red' } }]])));
    assert.deepEqual(err.issues.map((i) => i.path).sort(), ['routes[0].plugins[0].tenant.colour', 'routes[0].plugins[0].tenant.header']);
  });

  test('an unknown plugin lists the available ones', async () => {
    const err = await configError(compileChains(options(await registry(), [[{ tennant: {} }]])));
    assert.equal(err.issues[0].path, 'routes[0].plugins[0].tennant');
    const listed = /unknown plugin \(available: (.*)\)/.exec(err.issues[0].message)?.[1].split(', ') ?? [];
    for (const name of ['edge-only', 'starter', 'tenant', 'rate-limit', 'jwt-auth']) assert.ok(listed.includes(name), `${name} in ${listed.join(', ')}`);
    assert.deepEqual(listed, [...listed].sort(), 'in alphabetical order');
  });

  test('a registry loads only the built-ins a config names, and still knows the others by name', async () => {
    const reg = await loadRegistry(undefined, pluginNames([[{ cors: { origins: ['*'] }, dryRun: true }], [{ headers: {} }, { custom: {} }]]));
    assert.deepEqual([...reg.keys()].sort(), ['cors', 'headers']);
    const err = await configError(compileChains(options(reg, [[{ 'jwt-auth': {} }, { nope: {} }]])));
    assert.deepEqual(err.issues.map((i) => i.path), ['routes[0].plugins[0].jwt-auth', 'routes[0].plugins[1].nope']);
    assert.match(err.issues[0].message, /unknown plugin \(available: .*jwt-auth/, 'a built-in the registry was not asked to load is named, not used');
  });

  test('two names in one entry, or none, are rejected', async () => {
    const err = await configError(compileChains(options(await registry(), [[{ tenant: { tenants: ['a'] }, starter: {} }, { dryRun: true }]])));
    assert.deepEqual(err.issues.map((i) => i.path), ['routes[0].plugins[0]', 'routes[0].plugins[1]']);
    assert.match(err.issues[0].message, /got tenant, starter/);
    assert.match(err.issues[1].message, /got none/);
  });

  test('dryRun must be a boolean', async () => {
    const err = await configError(compileChains(options(await registry(), [[{ starter: {}, dryRun: 'yes' }]])));
    assert.deepEqual(err.issues.map((i) => i.path), ['routes[0].plugins[0].dryRun']);
  });

  test('problems at every level are reported together', async () => {
    const err = await configError(
      compileChains(options(await registry(), [[{ nope: {} }]], { global: [{ tenant: {} }], services: { svc: [{ starter: { fail: 'no' } }] } })),
    );
    assert.deepEqual(err.issues.map((i) => i.path), ['plugins.global[0].tenant.tenants', 'plugins.services.svc[0].starter.fail', 'routes[0].plugins[0].nope']);
  });

  test('places are respected', async () => {
    const reg = await registry();
    const err = await configError(compileChains(options(reg, [[{ 'edge-only': {} }]], { place: 'inbound' as PluginPlace, targets: [{ route: '', service: 'svc', entries: [{ 'edge-only': {} }], path: 'plugins.inbound' }] })));
    assert.equal(err.issues[0].path, 'plugins.inbound[0].edge-only');
    assert.match(err.issues[0].message, /does not run on a sidecar's inbound side/);
    const ok = await compileChains(options(reg, [[{ 'edge-only': {} }]]));
    assert.equal(ok.chains.get('r0')?.links[0].name, 'edge-only');
    await ok.close();
  });

  test('create() failing is a config error at the entry; instances already made are closed', async () => {
    closed = [];
    const err = await configError(compileChains(options(await registry(), [[{ starter: { id: 'first' } }], [{ starter: { fail: true } }]])));
    assert.deepEqual(err.issues, [{ path: 'routes[1].plugins[0].starter', message: 'plugin starter could not start: no keys today' }]);
    assert.deepEqual(closed, ['first']);
  });

  test('defaults are filled without touching the frozen config; one instance per entry', async () => {
    closed = [];
    const entry = Object.freeze({ starter: Object.freeze({}) });
    const set = await compileChains(options(await registry(), [[], []], { global: [entry] }));
    assert.equal(set.chains.get('r0')!.links[0].handlers, set.chains.get('r1')!.links[0].handlers, 'a global entry is one instance');
    await set.close();
    assert.deepEqual(closed, [''], 'closed once');
  });

  test('routes without plugins get no chain', async () => {
    const set = await compileChains(options(await registry(), [[], [{ starter: {} }]]));
    assert.deepEqual([...set.chains.keys()], ['r1']);
    await set.close();
  });
});

describe('loading a plugin directory', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  function dirWith(files: Record<string, string>): string {
    const d = tempDir('meshgate-plugins-');
    dirs.push(d);
    for (const [n, text] of Object.entries(files)) writeFileSync(join(d, n), text);
    return d;
  }
  const plain = (name: string) => `export default { name: '${name}', schema: { type: 'object' }, create: () => ({}) };\n`;

  async function pluginError(dir: string, code: string): Promise<PluginError> {
    const err = await loadRegistry(dir).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PluginError, `expected a PluginError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }

  test('loads .ts and .mjs/.js modules; skips .d.ts, tests and other files', async () => {
    const api = resolve(import.meta.dirname, '../../plugins/api.ts');
    const d = dirWith({
      'a.ts': `import { definePlugin } from ${JSON.stringify(api)};\nconst n: string = 'from-ts';\nexport default definePlugin({ name: n, schema: { type: 'object' } as never, create: () => ({}) });\n`,
      'b.mjs': plain('from-mjs'),
      'c.js': plain('from-js'),
      'd.d.ts': 'export {};\n',
      'e.test.ts': 'throw new Error("not a plugin");\n',
      'README.md': '# notes\n',
    });
    const reg = await loadRegistry(d);
    assert.deepEqual([...reg.keys()].filter((k) => k.startsWith('from-')).sort(), ['from-js', 'from-mjs', 'from-ts']);
  });

  test('a syntax error names the file', async () => {
    const d = dirWith({ 'broken.mjs': 'export default {\n' });
    const err = await pluginError(d, 'PLUGIN_LOAD_FAILED');
    assert.ok(err.message.startsWith(join(d, 'broken.mjs')), err.message);
  });

  test('a .ts syntax error names the file', async () => {
    const d = dirWith({ 'broken.ts': 'export default { name: ;\n' });
    const err = await pluginError(d, 'PLUGIN_LOAD_FAILED');
    assert.ok(err.message.startsWith(join(d, 'broken.ts')), err.message);
  });

  test('a default export that is not a plugin is refused', async () => {
    for (const text of ['export default 42;\n', 'export const x = 1;\n', "export default { name: 'x' };\n"]) {
      const err = await pluginError(dirWith({ 'bad.mjs': text }), 'PLUGIN_INVALID');
      assert.match(err.message, /the default export must be a plugin made with definePlugin/);
    }
  });

  test('two plugins may not share a name', async () => {
    const err = await pluginError(dirWith({ 'a.mjs': plain('twin'), 'b.mjs': plain('twin') }), 'PLUGIN_INVALID');
    assert.match(err.message, /plugin name "twin" is already taken/);
  });

  test('a missing directory is refused', async () => {
    await pluginError('/nonexistent/meshgate-plugins', 'PLUGIN_LOAD_FAILED');
  });

  test('an edited .mjs is loaded afresh', async () => {
    const d = dirWith({ 'p.mjs': plain('v-one') });
    assert.ok((await loadRegistry(d)).has('v-one'));
    const stamp = await pluginDirStamp(d);
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(join(d, 'p.mjs'), plain('v-two'));
    assert.notEqual(await pluginDirStamp(d), stamp);
    const reg = await loadRegistry(d);
    assert.ok(reg.has('v-two') && !reg.has('v-one'));
  });

  test('an edited .ts is loaded afresh', async () => {
    const d = dirWith({ 'p.ts': plain('t-one') });
    assert.ok((await loadRegistry(d)).has('t-one'));
    writeFileSync(join(d, 'p.ts'), plain('t-two'));
    const reg = await loadRegistry(d);
    assert.ok(reg.has('t-two') && !reg.has('t-one'));
  });
});

// What a command loads, seen by a module resolve hook in the CLI's own process: a sidecar
// (`meshgate proxy`) imports neither node-forge (the CA), jose and undici's index (jwt-auth, the
// admin client), fastify, the gateway nor any built-in plugin, which the README's memory notes rely on.
// The hook is checked to see those packages where a command does load them.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BIN, tempDir } from '../helpers/cli.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));

const hooks = join(dir, 'hooks.mjs');
writeFileSync(
  hooks,
  `import { appendFileSync } from 'node:fs';
export async function resolve(spec, ctx, next) {
  const r = await next(spec, ctx);
  if (process.env.MG_TRACE_FILE) appendFileSync(process.env.MG_TRACE_FILE, spec + '\\t' + (ctx.parentURL ?? '') + '\\t' + r.url + '\\n');
  return r;
}
`,
);
const register = join(dir, 'register.mjs');
writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);

/** Every module `meshgate <args>` resolved: [specifier, importer, resolved URL]. */
function loaded(args: string[]): string[][] {
  const trace = join(dir, `trace-${args.join('-')}.txt`);
  writeFileSync(trace, '');
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(register).href, BIN, ...args], { env: { ...process.env, MG_TRACE_FILE: trace }, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return readFileSync(trace, 'utf8').split('\n').filter(Boolean).map((l) => l.split('\t'));
}

test('meshgate proxy loads no CA library, no jose, no undici index, no fastify, no gateway and no built-in plugin', () => {
  const mods = loaded(['proxy', '--help']);
  const specs = new Set(mods.map((m) => m[0]));
  assert.ok(specs.has('prom-client'), 'the hook saw the sidecar being loaded (its metrics)');
  for (const pkg of ['node-forge', 'jose', 'undici', 'fastify']) assert.ok(!specs.has(pkg), `${pkg} is not loaded by a sidecar`);
  // plugins/builtin/index is the table of loaders; a plugin's own directory is the plugin.
  const ours = mods.map((m) => m[2]).filter((u) => u.includes('/gateway/') || /\/plugins\/builtin\/[^/]+\//.test(u));
  assert.deepEqual(ours, [], 'neither the gateway nor a built-in plugin');
});

test('the same hook sees node-forge where a command needs it (meshgate ca)', () => {
  const specs = new Set(loaded(['ca', '--help']).map((m) => m[0]));
  assert.ok(specs.has('node-forge'));
});

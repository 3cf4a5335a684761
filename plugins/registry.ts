// Which plugins exist: the built-ins, plus custom plugins loaded from a directory. A custom plugin
// is a module (.ts, .mts, .js or .mjs) whose default export is a definePlugin() result. Each load
// imports the files afresh, so a reload picks up edited plugins without a restart. Built-ins are
// imported only when named (`used`); the others are known by name, for error messages.
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PluginDefinition } from './api.ts';
import { BUILTIN_NAMES, BUILTIN_PLUGINS } from './builtin/index.ts';
import { PluginError } from './errors.ts';

export type PluginRegistry = ReadonlyMap<string, PluginDefinition>;

const EXTENSIONS = ['.ts', '.mts', '.js', '.mjs'];

/** The built-ins named in `used` (all of them when omitted), loaded on first use. */
export async function builtinRegistry(used?: Iterable<string>): Promise<Map<string, PluginDefinition>> {
  const names = used === undefined ? BUILTIN_NAMES : [...new Set(used)].filter((n) => Object.hasOwn(BUILTIN_PLUGINS, n));
  const defs = await Promise.all(names.map(async (n) => (await BUILTIN_PLUGINS[n]()).default as PluginDefinition));
  return new Map(defs.map((d) => [d.name, d]));
}

/**
 * The built-ins named in `used` (all when omitted) plus every plugin in `dir`; a custom plugin may
 * not reuse a built-in's name.
 */
export async function loadRegistry(dir: string | undefined, used?: Iterable<string>): Promise<PluginRegistry> {
  const registry = await builtinRegistry(used);
  if (dir === undefined) return registry;
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => EXTENSIONS.some((e) => n.endsWith(e)) && !n.endsWith('.d.ts') && !n.includes('.test.')).sort();
  } catch (err) {
    throw new PluginError('PLUGIN_LOAD_FAILED', `cannot read the plugin directory ${dir} (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  for (const name of names) {
    const file = resolve(join(dir, name));
    const def = await importPlugin(file);
    if (registry.has(def.name) || BUILTIN_NAMES.includes(def.name)) {
      throw new PluginError('PLUGIN_INVALID', `${file}: plugin name "${def.name}" is already taken${BUILTIN_NAMES.includes(def.name) ? ' by a built-in plugin' : ''}`);
    }
    registry.set(def.name, def);
  }
  return registry;
}

/** The newest modification time among the directory's plugin files (for reload detection). */
export async function pluginDirStamp(dir: string): Promise<string> {
  try {
    const names = (await readdir(dir)).filter((n) => EXTENSIONS.some((e) => n.endsWith(e))).sort();
    const stamps = await Promise.all(names.map(async (n) => `${n}:${(await stat(join(dir, n))).mtimeMs}`));
    return stamps.join('|');
  } catch {
    return 'unreadable';
  }
}

async function importPlugin(file: string): Promise<PluginDefinition> {
  let mod: { default?: unknown };
  try {
    if (file.endsWith('.ts') || file.endsWith('.mts')) {
      // tsx compiles the file on the fly (and re-reads it on every call), also when meshgate
      // itself runs from its compiled dist/.
      const { tsImport } = await import('tsx/esm/api');
      mod = (await tsImport(pathToFileURL(file).href, import.meta.url)) as { default?: unknown };
    } else {
      // A query string makes ESM load the current file instead of the cached module.
      const s = await stat(file);
      mod = (await import(`${pathToFileURL(file).href}?v=${s.mtimeMs}`)) as { default?: unknown };
    }
  } catch (err) {
    throw new PluginError('PLUGIN_LOAD_FAILED', `${file}: cannot load the plugin: ${(err as Error).message?.split('\n')[0] ?? err}`, [], { cause: err });
  }
  let def = mod.default as Partial<PluginDefinition> | undefined;
  // A .ts file outside a "type": "module" package compiles to CommonJS: its default export then
  // arrives as module.exports.default.
  if (def !== null && typeof def === 'object' && !('create' in def) && 'default' in def) def = (def as { default?: Partial<PluginDefinition> }).default;
  if (def === undefined || typeof def !== 'object' || typeof def.name !== 'string' || typeof def.create !== 'function' || typeof def.schema !== 'object') {
    throw new PluginError('PLUGIN_INVALID', `${file}: the default export must be a plugin made with definePlugin({ name, schema, create })`);
  }
  return def as PluginDefinition;
}

// Compiles the plugin entries of a config into one chain per route (or per sidecar inbound):
// global entries first, then the service's, then the route's, each in file order. A plugin named
// again at a more specific level replaces the less specific entry in its place (Kong's precedence),
// so a route can retune or dry-run a global policy. Every entry's config is validated against its
// plugin's schema; all problems are reported together, with their paths in the config file.
import type { Ajv as AjvType, ValidateFunction } from 'ajv';
import type { Logger } from '../mesh-proxy/observe/log.ts';
import type { RateLimitStore } from '../mesh-proxy/store/types.ts';
import { ConfigError, type ConfigIssue } from '../config/errors.ts';
import { describeErrors } from '../config/load.ts';
import { AJV_OPTIONS } from '../config/validators.ts';
import type { PluginDefinition, PluginEnv, PluginHandlers, PluginPlace } from './api.ts';
import { PluginChain, type ChainLink, type PluginLevel } from './chain.ts';
import type { PluginChainMetrics } from './chain-metrics.ts';
import type { PluginRegistry } from './registry.ts';
import { BUILTIN_NAMES } from './builtin/index.ts';

/** One entry as written: `{ cors: {...} }`, optionally with `dryRun: true` beside the name. */
export type PluginEntry = Readonly<Record<string, unknown>>;

const META_KEYS = new Set(['dryRun']);

/** The plugin names some entry lists use: the built-ins a registry must load for them. */
export function pluginNames(lists: Iterable<readonly PluginEntry[]>): Set<string> {
  const names = new Set<string>();
  for (const list of lists) for (const entry of list) for (const k of Object.keys(entry)) if (!META_KEYS.has(k)) names.add(k);
  return names;
}

export interface ChainTarget {
  /** The route's name ('' for a sidecar's inbound). */
  readonly route: string;
  readonly service: string;
  readonly entries: readonly PluginEntry[];
  /** Where `entries` sit in the file, e.g. `routes[2].plugins`. */
  readonly path: string;
}

export interface CompileOptions {
  readonly file: string;
  readonly place: PluginPlace;
  readonly registry: PluginRegistry;
  readonly global: readonly PluginEntry[];
  readonly globalPath: string;
  readonly services: Readonly<Record<string, readonly PluginEntry[]>>;
  readonly servicesPath: string;
  readonly targets: readonly ChainTarget[];
  readonly log: Logger;
  readonly metrics: PluginChainMetrics;
  readonly rateLimits: RateLimitStore;
  readonly baseDir: string;
}

/** The chains of one config snapshot, by route name, and the instances to close when it retires. */
export interface ChainSet {
  readonly chains: ReadonlyMap<string, PluginChain>;
  close(): Promise<void>;
}

interface Parsed {
  readonly name: string;
  readonly config: unknown;
  readonly dryRun: boolean;
  readonly path: string;
  readonly level: PluginLevel;
}

// ajv's compiler loads only when a config has plugin entries (the config itself is validated by
// code generated at build time).
let ajv: AjvType | undefined;
const validatorOf = new WeakMap<object, ValidateFunction>();

export async function compileChains(o: CompileOptions): Promise<ChainSet> {
  const issues: ConfigIssue[] = [];
  const hasEntries = o.global.length > 0 || Object.values(o.services).some((l) => l.length > 0) || o.targets.some((t) => t.entries.length > 0);
  if (hasEntries && ajv === undefined) {
    const { Ajv } = await import('ajv');
    ajv = new Ajv({ ...AJV_OPTIONS });
  }
  const global = parseList(o.global, o.globalPath, 'global', o, issues);
  const services = new Map<string, Parsed[]>();
  for (const [svc, list] of Object.entries(o.services)) services.set(svc, parseList(list, `${o.servicesPath}.${svc}`, 'service', o, issues));
  const perTarget = o.targets.map((t) => merge(merge(global, services.get(t.service) ?? []), parseList(t.entries, t.path, 'route', o, issues)));
  if (issues.length > 0) throw new ConfigError('CONFIG_INVALID', o.file, issues);

  // One instance per entry: a global entry serves every route, a service entry every route of it.
  const instances = new Map<Parsed, PluginHandlers>();
  const created: PluginHandlers[] = [];
  const chains = new Map<string, PluginChain>();
  try {
    for (let t = 0; t < o.targets.length; t++) {
      const target = o.targets[t];
      const links: ChainLink[] = [];
      for (const p of perTarget[t]) {
        let handlers = instances.get(p);
        if (handlers === undefined) {
          handlers = await instantiate(p, target, o);
          instances.set(p, handlers);
          created.push(handlers);
        }
        links.push(Object.freeze({ name: p.name, level: p.level, dryRun: p.dryRun, handlers }));
      }
      if (links.length > 0) chains.set(target.route, new PluginChain(target.route, Object.freeze(links), o.metrics, o.log));
    }
  } catch (err) {
    await closeAll(created, o.log);
    throw err;
  }
  return {
    chains,
    close: () => closeAll(created, o.log),
  };
}

function parseList(list: readonly PluginEntry[], path: string, level: PluginLevel, o: CompileOptions, issues: ConfigIssue[]): Parsed[] {
  const out: Parsed[] = [];
  list.forEach((entry, i) => {
    const at = `${path}[${i}]`;
    const names = Object.keys(entry).filter((k) => !META_KEYS.has(k));
    if (names.length !== 1) {
      issues.push({ path: at, message: `expected one plugin name with its config (e.g. "cors: { origins: [...] }"), got ${names.length === 0 ? 'none' : names.join(', ')}` });
      return;
    }
    const name = names[0];
    const def = o.registry.get(name);
    if (def === undefined) {
      issues.push({ path: `${at}.${name}`, message: `unknown plugin (available: ${[...new Set([...BUILTIN_NAMES, ...o.registry.keys()])].sort().join(', ')})` });
      return;
    }
    if (def.places !== undefined && !def.places.includes(o.place)) {
      issues.push({ path: `${at}.${name}`, message: `plugin ${name} does not run ${o.place === 'edge' ? 'at the edge' : "on a sidecar's inbound side"}` });
      return;
    }
    const dryRun = entry.dryRun;
    if (dryRun !== undefined && typeof dryRun !== 'boolean') {
      issues.push({ path: `${at}.dryRun`, message: 'expected true or false' });
      return;
    }
    // ajv fills defaults in place: validate a copy of the frozen config.
    const config = structuredClone(entry[name] ?? {});
    const validate = compiled(def);
    if (!validate(config)) {
      for (const issue of describeErrors(validate.errors ?? [])) {
        issues.push({ path: issue.path ? `${at}.${name}${issue.path.startsWith('[') ? '' : '.'}${issue.path}` : `${at}.${name}`, message: issue.message });
      }
      return;
    }
    out.push({ name, config, dryRun: dryRun === true, path: `${at}.${name}`, level });
  });
  return out;
}

/** `specific` entries replace same-named `base` entries in place; new names are appended. */
function merge(base: readonly Parsed[], specific: readonly Parsed[]): Parsed[] {
  const out = [...base];
  for (const p of specific) {
    const i = out.findIndex((b) => b.name === p.name);
    if (i >= 0) out[i] = p;
    else out.push(p);
  }
  return out;
}

function compiled(def: PluginDefinition): ValidateFunction {
  let v = validatorOf.get(def.schema);
  if (v === undefined) {
    v = ajv!.compile(def.schema);
    validatorOf.set(def.schema, v);
  }
  return v;
}

async function instantiate(p: Parsed, target: ChainTarget, o: CompileOptions): Promise<PluginHandlers> {
  const env: PluginEnv = {
    place: o.place,
    route: p.level === 'route' ? target.route : '',
    service: p.level === 'global' ? '' : target.service,
    log: o.log.child({ plugin: p.name }),
    metrics: o.metrics.forPlugins,
    rateLimits: o.rateLimits,
    baseDir: o.baseDir,
    dryRun: p.dryRun,
  };
  try {
    const handlers = await o.registry.get(p.name)!.create(p.config as never, env);
    if (handlers === null || typeof handlers !== 'object') throw new TypeError('create() must return an object of phase handlers');
    return handlers;
  } catch (err) {
    throw new ConfigError('CONFIG_INVALID', o.file, [{ path: p.path, message: `plugin ${p.name} could not start: ${(err as Error).message ?? err}` }]);
  }
}

async function closeAll(list: readonly PluginHandlers[], log: Logger): Promise<void> {
  await Promise.all(
    list.map(async (h) => {
      try {
        await h.close?.();
      } catch (err) {
        log.warn({ err }, 'a plugin failed to close');
      }
    }),
  );
}

// One configuration snapshot of the edge: the compiled route table with each route's plugin chain.
// A reload builds a whole new snapshot off to the side and swaps one reference; requests already
// running keep the chain they started with, and the old plugin instances are closed once drained.
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../config/errors.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { Logger } from '../mesh-proxy/observe/log.ts';
import type { Metrics } from '../mesh-proxy/observe/metrics.ts';
import type { RateLimitStore } from '../mesh-proxy/store/types.ts';
import { pluginChainMetrics } from '../plugins/chain-metrics.ts';
import { compileChains, pluginNames, type ChainSet } from '../plugins/compile.ts';
import { PluginError } from '../plugins/errors.ts';
import { loadRegistry, pluginDirStamp } from '../plugins/registry.ts';
import { compileRoutes, type RouteTable } from './router/route-table.ts';

export interface GatewaySnapshot {
  readonly config: GatewayConfig;
  readonly table: RouteTable;
  readonly chains: ChainSet;
  /** The resolved custom plugin directory, if any. */
  readonly pluginDir: string | undefined;
  /** The plugin directory's state, for reload detection. */
  readonly stamp: () => Promise<string>;
}

export interface SnapshotDeps {
  /** The config file: relative paths resolve against its directory, and errors name it. */
  readonly file: string | undefined;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly rateLimits: RateLimitStore;
}

export async function buildSnapshot(config: GatewayConfig, d: SnapshotDeps): Promise<GatewaySnapshot> {
  const file = d.file ?? '(config)';
  const baseDir = d.file ? dirname(resolve(d.file)) : process.cwd();
  const pluginDir = config.plugins.dir ? resolve(baseDir, config.plugins.dir) : undefined;
  let registry;
  try {
    const used = pluginNames([config.plugins.global, ...Object.values(config.plugins.services), ...config.routes.map((r) => r.plugins ?? [])]);
    registry = await loadRegistry(pluginDir, used);
  } catch (err) {
    if (err instanceof PluginError) throw new ConfigError('CONFIG_INVALID', file, [{ path: 'plugins.dir', message: err.message }]);
    throw err;
  }
  const chains = await compileChains({
    file,
    place: 'edge',
    registry,
    global: config.plugins.global,
    globalPath: 'plugins.global',
    services: config.plugins.services,
    servicesPath: 'plugins.services',
    targets: config.routes.map((r, i) => ({ route: r.name, service: r.service, entries: r.plugins ?? [], path: `routes[${i}].plugins` })),
    log: d.log,
    metrics: pluginChainMetrics(d.metrics.registry),
    rateLimits: d.rateLimits,
    baseDir,
  });
  return {
    config, chains, pluginDir,
    table: compileRoutes(config.routes, d.metrics.requests, chains.chains),
    stamp: async () => (pluginDir ? pluginDirStamp(pluginDir) : ''),
  };
}

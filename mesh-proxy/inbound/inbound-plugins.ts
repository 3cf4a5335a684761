// The sidecar's inbound plugin chain (plugins.inbound): the same plugin API as the edge, run after
// inbound authorization and before the app, with the caller's mesh identity in the context.
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../../config/errors.ts';
import type { ProxyConfig } from '../../config/schema.ts';
import { pluginChainMetrics } from '../../plugins/chain-metrics.ts';
import { compileChains, pluginNames, type ChainSet } from '../../plugins/compile.ts';
import { PluginError } from '../../plugins/errors.ts';
import { loadRegistry, pluginDirStamp } from '../../plugins/registry.ts';
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { RateLimitStore } from '../store/types.ts';

/** A sidecar's reloadable state: its config and the inbound chain compiled from it. */
export interface InboundSnapshot {
  readonly config: ProxyConfig;
  readonly chains: ChainSet;
  readonly stamp: () => Promise<string>;
}

export async function buildInboundChains(config: ProxyConfig, file: string | undefined, log: Logger, metrics: Metrics, rateLimits: RateLimitStore): Promise<InboundSnapshot> {
  const name = file ?? '(config)';
  const baseDir = file ? dirname(resolve(file)) : process.cwd();
  let registry;
  const dir = config.plugins.dir ? resolve(baseDir, config.plugins.dir) : undefined;
  try {
    registry = await loadRegistry(dir, pluginNames([config.plugins.inbound]));
  } catch (err) {
    if (err instanceof PluginError) throw new ConfigError('CONFIG_INVALID', name, [{ path: 'plugins.dir', message: err.message }]);
    throw err;
  }
  const chains = await compileChains({
    file: name,
    place: 'inbound',
    registry,
    global: [],
    globalPath: 'plugins.global',
    services: {},
    servicesPath: 'plugins.services',
    targets: [{ route: '', service: config.node.service, entries: config.plugins.inbound, path: 'plugins.inbound' }],
    log,
    metrics: pluginChainMetrics(metrics.registry),
    rateLimits,
    baseDir,
  });
  return { config, chains, stamp: async () => (dir ? pluginDirStamp(dir) : '') };
}

// Metrics of the plugin layer, and the registry handle plugins create their own metrics through.
// Created once per process and reused across reloads (prom-client refuses a name twice).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PluginMetrics } from './api.ts';
import { PluginError } from './errors.ts';

export interface PluginChainMetrics {
  readonly replies: Counter<'plugin' | 'route' | 'code'>;
  readonly dryRun: Counter<'plugin' | 'route' | 'code'>;
  readonly errors: Counter<'plugin' | 'route'>;
  readonly reloads: Counter<'result'>;
  readonly forPlugins: PluginMetrics;
}

const byRegistry = new WeakMap<Registry, PluginChainMetrics>();

export function pluginChainMetrics(registry: Registry): PluginChainMetrics {
  let m = byRegistry.get(registry);
  if (m !== undefined) return m;
  const registers = [registry];
  m = {
    replies: new Counter({ name: 'meshgate_plugin_replies_total', help: 'Requests a plugin answered itself (401, 429, preflight …), by plugin, route and code.', labelNames: ['plugin', 'route', 'code'], registers }),
    dryRun: new Counter({ name: 'meshgate_plugin_dry_run_total', help: 'Replies a plugin in dry-run mode would have sent (not enforced), by plugin, route and code.', labelNames: ['plugin', 'route', 'code'], registers }),
    errors: new Counter({ name: 'meshgate_plugin_errors_total', help: 'Plugin handlers that threw, by plugin and route.', labelNames: ['plugin', 'route'], registers }),
    reloads: new Counter({ name: 'meshgate_config_reloads_total', help: 'Configuration reloads, by result (applied, rejected).', labelNames: ['result'], registers }),
    forPlugins: ownMetrics(registry),
  };
  byRegistry.set(registry, m);
  return m;
}

function ownMetrics(registry: Registry): PluginMetrics {
  const check = (name: string) => {
    if (!/^meshgate_plugin_[a-z0-9_]+$/.test(name)) throw new PluginError('PLUGIN_INVALID', `metric name "${name}" must match meshgate_plugin_[a-z0-9_]+`);
    return registry.getSingleMetric(name);
  };
  return {
    counter(name, help, labelNames = []) {
      return (check(name) as Counter<never>) ?? new Counter({ name, help, labelNames, registers: [registry] });
    },
    gauge(name, help, labelNames = []) {
      return (check(name) as Gauge<never>) ?? new Gauge({ name, help, labelNames, registers: [registry] });
    },
    histogram(name, help, labelNames = [], buckets) {
      return (check(name) as Histogram<never>) ?? new Histogram({ name, help, labelNames, registers: [registry], ...(buckets ? { buckets } : {}) });
    },
  };
}

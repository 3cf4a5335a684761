import { parseArgs } from 'node:util';
import { loadGatewayConfig } from '../../config/load.ts';
import { availableParallelism } from 'node:os';
import { isClusterWorker, startClusterPrimary, startClusterWorker } from '../../gateway/cluster.ts';
import { startGateway } from '../../gateway/gateway.ts';
import { EXIT_OK, EXIT_USAGE, reportStartupError, runUntilSignal } from '../lifecycle.ts';
import { youngGenerationServing } from '../young-generation.ts';

export const GATEWAY_HELP = `Usage: meshgate gateway --config FILE

Runs an edge gateway: listeners, the route table, and the mesh client that forwards into the mesh.

Options:
  -c, --config FILE   gateway configuration (YAML); see the README's configuration reference
  -w, --workers N     run N worker processes sharing the listener (node:cluster); "auto" = one
                      per core. Default 1. Workers share breakers and discovery through the store
                      (use Redis); the primary serves the admin API for all of them.
  -h, --help          show this help

Environment (overrides the file):
  MESHGATE_REDIS_URL      use this Redis as the store (sets store.kind to redis)
  MESHGATE_ADMIN_TOKEN    bearer token for the admin API
  MESHGATE_DC, MESHGATE_ZONE, MESHGATE_LOG_LEVEL, MESHGATE_STATE_DIR
  NODE_OPTIONS=--max-semi-space-size=N  size V8's young generation yourself (by default a
                          gateway caps it to 4 MB semi-spaces; V8 alone grows it to 16 MB)
  node --heap-growing-percent=0 bin/meshgate.js gateway …  keep V8's own old-generation
                          sizing (by default a gateway limits it to twice the live heap)

The config file (and the plugin directory) is reloaded when it changes, on SIGHUP, or on
POST /reload to the admin API; an invalid new config is rejected and the running one keeps serving.

On SIGTERM or SIGINT the gateway stops accepting, drains in-flight requests (drainTimeout) and exits 0.`;

export async function gatewayCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' }, workers: { type: 'string', short: 'w', default: '1' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${GATEWAY_HELP}\n`);
    return EXIT_OK;
  }
  if (!values.config) {
    process.stderr.write(`meshgate gateway: --config FILE is required\n\n${GATEWAY_HELP}\n`);
    return EXIT_USAGE;
  }
  const workers = values.workers === 'auto' ? availableParallelism() : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 256) {
    process.stderr.write(`meshgate gateway: --workers must be a whole number from 1 to 256, or "auto" (got "${values.workers}")\n`);
    return EXIT_USAGE;
  }
  let running: { stop(): Promise<void> };
  try {
    const config = await loadGatewayConfig(values.config);
    if (isClusterWorker()) running = await startClusterWorker(config, values.config);
    else if (workers > 1) running = await startClusterPrimary(config, workers);
    else running = await startGateway(config, { configFile: values.config });
  } catch (err) {
    return reportStartupError('gateway', err);
  }
  youngGenerationServing();
  return runUntilSignal('gateway', () => running.stop(), isClusterWorker());
}

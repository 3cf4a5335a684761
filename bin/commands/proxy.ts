import { parseArgs } from 'node:util';
import { loadProxyConfig } from '../../config/load.ts';
import { startSidecar } from '../../mesh-proxy/sidecar.ts';
import { EXIT_OK, EXIT_USAGE, reportStartupError, runUntilSignal } from '../lifecycle.ts';
import { youngGenerationServing } from '../young-generation.ts';

export const PROXY_HELP = `Usage: meshgate proxy --config FILE

Runs a sidecar mesh proxy beside one service instance: it registers the instance, forwards the
app's outbound calls (127.0.0.1:4140, target service in the Host header) and peers' inbound
requests (port 4143) to the app.

Options:
  -c, --config FILE   proxy configuration (YAML); see the README's configuration reference
  -h, --help          show this help

Environment (overrides the file):
  MESHGATE_REDIS_URL          use this Redis as the store (sets store.kind to redis)
  MESHGATE_INSTANCE           instance id (default: <service>-<hostname>-<pid>)
  MESHGATE_ADVERTISE_ADDRESS  address peers use to reach this proxy
  MESHGATE_ADMIN_TOKEN, MESHGATE_DC, MESHGATE_ZONE, MESHGATE_LOG_LEVEL, MESHGATE_STATE_DIR
  NODE_OPTIONS=--max-semi-space-size=N  size V8's young generation yourself (by default a
                              sidecar caps it to 2 MB semi-spaces; V8 alone grows it to 16 MB)
  node --no-optimize-for-size bin/meshgate.js proxy …  keep V8's own old-generation sizing
                              (by default a sidecar runs in V8's memory-saving mode)

On SIGTERM or SIGINT the proxy deregisters, stops accepting, drains in-flight requests
(drainTimeout) and exits 0.`;

export async function proxyCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    process.stdout.write(`${PROXY_HELP}\n`);
    return EXIT_OK;
  }
  if (!values.config) {
    process.stderr.write(`meshgate proxy: --config FILE is required\n\n${PROXY_HELP}\n`);
    return EXIT_USAGE;
  }
  let proxy;
  try {
    proxy = await startSidecar(await loadProxyConfig(values.config), { configFile: values.config });
  } catch (err) {
    return reportStartupError('proxy', err);
  }
  youngGenerationServing();
  return runUntilSignal('proxy', () => proxy.stop());
}

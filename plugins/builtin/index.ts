// The built-in plugins, all written on the public plugin API. Each is imported only when a config
// names it: jwt-auth alone brings jose and undici's fetch stack, and a sidecar that runs no plugin
// should not hold them in memory.
import type { PluginDefinition } from '../api.ts';

type Loader = () => Promise<{ default: PluginDefinition<never> }>;

export const BUILTIN_PLUGINS: Readonly<Record<string, Loader>> = {
  'jwt-auth': () => import('./jwt-auth/index.ts'),
  'api-key': () => import('./api-key/index.ts'),
  'rate-limit': () => import('./rate-limit/index.ts'),
  cors: () => import('./cors/index.ts'),
  'request-size-limit': () => import('./request-size-limit/index.ts'),
  headers: () => import('./headers/index.ts'),
  'ip-filter': () => import('./ip-filter/index.ts'),
  'request-id': () => import('./request-id/index.ts'),
};

export const BUILTIN_NAMES: readonly string[] = Object.keys(BUILTIN_PLUGINS);

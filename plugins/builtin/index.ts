// The built-in plugins, all written on the public plugin API.
import type { PluginDefinition } from '../api.ts';
import apiKey from './api-key/index.ts';
import jwtAuth from './jwt-auth/index.ts';
import rateLimit from './rate-limit/index.ts';

export const BUILTIN_PLUGINS: readonly PluginDefinition<never>[] = [
  jwtAuth,
  apiKey,
  rateLimit,
];

// The built-in plugins, all written on the public plugin API.
import type { PluginDefinition } from '../api.ts';
import apiKey from './api-key/index.ts';
import cors from './cors/index.ts';
import headers from './headers/index.ts';
import ipFilter from './ip-filter/index.ts';
import jwtAuth from './jwt-auth/index.ts';
import rateLimit from './rate-limit/index.ts';
import requestId from './request-id/index.ts';
import requestSizeLimit from './request-size-limit/index.ts';

export const BUILTIN_PLUGINS: readonly PluginDefinition<never>[] = [
  jwtAuth,
  apiKey,
  rateLimit,
  cors,
  requestSizeLimit,
  headers,
  ipFilter,
  requestId,
];

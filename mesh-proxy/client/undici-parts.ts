// The two undici pieces the proxy uses, loaded without the package index. The index also loads
// fetch, WebSocket, EventSource, caches and their WebAssembly: measured on Node 20, a process that
// imports the index and makes one request holds 73 MB resident, one that loads only the Pool
// module 56 MB. Same undici version and code paths; the package is pinned to ^7 (no "exports" map).
import { createRequire } from 'node:module';
import type * as undici from 'undici';

const require = createRequire(import.meta.url);

export const Pool = require('undici/lib/dispatcher/pool.js') as typeof undici.Pool;
export type Pool = undici.Pool;
export const buildConnector = require('undici/lib/core/connect.js') as typeof undici.buildConnector;

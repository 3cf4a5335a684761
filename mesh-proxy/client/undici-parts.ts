// The one undici piece the proxy uses, its connector (TCP or TLS with a session cache and a
// connect timeout), loaded without the package index. The index also loads fetch, WebSocket,
// EventSource, caches and their WebAssembly: measured on Node 20, a process that imports the index
// and makes one request holds 73 MB resident, one that loads only the Pool module 56 MB. HTTP/1.1
// requests go through our own client (h1-pool.ts), so neither undici's Pool nor its wasm llhttp is
// loaded. The package is pinned to ^7 (no "exports" map).
import { createRequire } from 'node:module';
import type * as undici from 'undici';

const require = createRequire(import.meta.url);

export const buildConnector = require('undici/lib/core/connect.js') as typeof undici.buildConnector;

// V8 settings for a proxy process, applied before anything else loads (first import of the CLI and
// of the load-test servers).
//
// Allocation-site pretenuring off: at start-up, while code is still interpreted and connections
// open, a request's objects outlive a scavenge or two, so V8 decides that the sites allocating
// them (IncomingMessage, header lists, request heads) make long-lived objects and from then on
// allocates them straight in the old generation. Every request's garbage then waits for a full
// mark-compact: the old space grew ~3 MB/s at 2,000 req/s, scavenges took ~4 ms instead of ~1.4 ms,
// and the p99 rose with them (loadtest/RESULTS.md, 2026-12-06). Proxy objects live for one
// request: the young generation is where they belong.
import { setFlagsFromString } from 'node:v8';

// `node --allocation-site-pretenuring bin/meshgate.js …` keeps V8's default (NODE_OPTIONS cannot carry it).
if (!process.execArgv.some((a) => a.includes('allocation-site-pretenuring'))) setFlagsFromString('--no-allocation-site-pretenuring');

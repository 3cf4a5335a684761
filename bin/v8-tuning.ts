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

const YOUNG_GENERATION_FLAGS = ['--max-semi-space-size', '--semi-space-growth-factor'];

/**
 * Keeps V8's young generation at its initial size (1 MB semi-spaces) for a sidecar, where memory
 * per pod matters more than the last percent of throughput. V8 otherwise grows it to 16 MB
 * semi-spaces under load: 25 MB of resident memory that a sidecar at 2,000 req/s does not need
 * (99 → 74 MB, same p50/p99 and CPU; loadtest/RESULTS.md). The maximum semi-space size is fixed
 * when the heap is created, but the growth factor is read at each growth, so setting it to 1 here
 * caps the young generation without a node command-line flag. An operator who passes either flag
 * (node's command line or NODE_OPTIONS) keeps V8's sizing, and sets it with that flag instead.
 * Returns whether the cap was applied.
 */
export function keepYoungGenerationSmall(): boolean {
  // V8 reads `--max_semi_space_size` as `--max-semi-space-size`.
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map((a) => a.replaceAll('_', '-'));
  if (given.some((a) => YOUNG_GENERATION_FLAGS.some((f) => a.startsWith(f)))) return false;
  setFlagsFromString('--semi-space-growth-factor=1');
  return true;
}

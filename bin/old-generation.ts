// How far V8 lets the old generation grow past what its last full collection left alive. V8 picks
// the factor itself from GC and mutator speed, up to ×4 on a host with this much memory, plus steps
// of several MB: a proxy under load then carries tens of MB of garbage between full collections
// (objects that outlived a scavenge or two: requests and HTTP/2 streams in flight). Measured on one
// core (loadtest/RESULTS.md, 2026-12-06, fourth part):
//
//   - a gateway with TLS + HTTP/2 (h2load -c50 -m10): old space 42–53 MB committed for 11–27 MB
//     live; with the limit at ×2 (`--heap-growing-percent=100`) 26–28 MB, RSS 112–125 → 97–99 MB,
//     GC 18.0–18.5% → 18.6–19.5% of the core (×1.5: 91–93 MB but 21–22%; ×2.5: 106 MB);
//   - a sidecar at 2,000 req/s: its old space is small, the steps dominate and ×2 saved nothing;
//     V8's memory-saving mode (`--optimize-for-size`, which also shortens the steps and keeps the
//     young generation at 1 MB semi-spaces) 73–75 → 66–68 MB, 0.5% more of a core in GC, and
//     69–73 MB instead of 82–83 at saturation with the same req/s (40k). In a gateway the same mode
//     cost a quarter of the HTTP/2 throughput (more scavenges and full collections): gateways get ×2,
//     and so does a sidecar whose operator sized the young generation (the mode would undo that).
//
// Set at run time: V8 reads both at each collection. (`--optimize-for-size` on node's command line
// would also pin 1 MB semi-spaces: +15% CPU.) An operator who gives either flag on node's command
// line keeps that choice: `node --no-optimize-for-size bin/meshgate.js proxy …` or
// `node --heap-growing-percent=0 bin/meshgate.js gateway …` restores V8's own sizing.
import { setFlagsFromString } from 'node:v8';
import { youngGenerationSizedByOperator } from './young-generation.ts';

const USER_FLAGS = ['--heap-growing-percent', '--optimize-for-size', '--no-optimize-for-size'];

function sizedByOperator(): boolean {
  return process.execArgv.some((a) => USER_FLAGS.some((f) => a.replaceAll('_', '-').startsWith(f)));
}

/** A sidecar (`proxy`) saves memory V8's way; a gateway (and the demo) keeps the limit at twice the live heap. */
export function limitOldGeneration(kind: 'sidecar' | 'gateway'): void {
  if (sizedByOperator()) return;
  const memorySaving = kind === 'sidecar' && !youngGenerationSizedByOperator();
  setFlagsFromString(memorySaving ? '--optimize-for-size' : '--heap-growing-percent=100');
}

// A cap on V8's young generation, where each request's short-lived objects live. V8 grows it to
// 16 MB semi-spaces under load: 20–30 MB of resident memory a proxy does not need. Measured on one
// core (loadtest/RESULTS.md, 2026-12-06, third part): capped at 2–4 MB, a sidecar and a gateway
// carried 3–7% more HTTP/1.1 req/s at saturation than at 16 MB, as many with TLS + HTTP/2, and held
// 20–30 MB less; 1 MB semi-spaces cost 4–7% of the throughput.
//
// The maximum semi-space size is fixed when the heap is created (`--max-semi-space-size`, a node
// command-line or NODE_OPTIONS flag), but V8 reads its growth factor at each growth. So the cap is
// kept at run time: growth is off (factor 1) while the young generation is at or above the cap, and
// on (V8's factor 2) below it, re-checked after every garbage collection, once the process serves.
// The cap is best-effort: the check runs between event-loop turns, so one long synchronous turn
// with growth on can double the young generation more than once past the cap, where it then stays
// until V8 shrinks it. Start-up compiles in such bursts, hence growth waits until the process
// serves; a proxy's turns under load did not (8 MiB held for a gateway, 4 MiB for a sidecar, in
// every run measured). For a hard limit, give node --max-semi-space-size (NODE_OPTIONS accepts it):
// an operator who passes it, or --semi-space-growth-factor, keeps V8's sizing under that flag.
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

const USER_FLAGS = ['--max-semi-space-size', '--semi-space-growth-factor'];
const MiB = 1024 * 1024;

let observer: PerformanceObserver | undefined;
let serving = false;

/** Whether the operator sized the young generation (node's command line or NODE_OPTIONS). */
export function youngGenerationSizedByOperator(): boolean {
  // V8 reads `--max_semi_space_size` as `--max-semi-space-size`; NODE_OPTIONS may quote an option.
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map((a) => a.replace(/^["']/, '').replaceAll('_', '-'));
  return given.some((a) => USER_FLAGS.some((f) => a.startsWith(f)));
}

function newSpaceBytes(): number {
  for (const s of getHeapSpaceStatistics()) if (s.space_name === 'new_space') return s.space_size;
  return 0;
}

/**
 * Caps the young generation at semi-spaces of `semiSpaceMb` MB (the new space is two of them).
 * Call it before the command's modules load, and youngGenerationServing() once the command serves:
 * growth is off in between.
 */
export function capYoungGeneration(semiSpaceMb: number): void {
  if (observer !== undefined || youngGenerationSizedByOperator()) return;
  const cap = semiSpaceMb * 2 * MiB;
  let factor = 1;
  setFlagsFromString('--semi-space-growth-factor=1');
  // Called after collections, between event-loop turns (see above: a long turn may grow it twice).
  observer = new PerformanceObserver(() => {
    if (!serving) return;
    const want = newSpaceBytes() < cap ? 2 : 1;
    if (want !== factor) {
      factor = want;
      setFlagsFromString(`--semi-space-growth-factor=${want}`);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
}

/** The process serves: from the next collection on, the young generation may grow up to the cap. */
export function youngGenerationServing(): void {
  serving = true;
}

/** The defaults: a sidecar (one per pod) at 2 MB semi-spaces, a gateway (and the demo) at 4 MB. */
export const SIDECAR_SEMI_SPACE_MB = 2;
export const GATEWAY_SEMI_SPACE_MB = 4;

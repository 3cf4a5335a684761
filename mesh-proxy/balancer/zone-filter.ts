// Prefer endpoints in the caller's zone: a simplified form of Envoy's zone-aware routing
// (envoy: intro/arch_overview/upstream/load_balancing/zone_aware). Envoy spills a computed share of
// traffic across zones; here it is all or nothing: the local zone takes everything while it has
// enough endpoints, both in number and as a share of the whole, and otherwise every candidate does,
// so a zone down to its last endpoint or two is not flooded with the whole service's traffic.
import type { Endpoint } from '../discovery/endpoint.ts';

interface ZoneSubset {
  readonly zone: string;
  readonly minHealthy: number;
  readonly minShare: number;
  readonly local: readonly Endpoint[];
}

// Candidate arrays are immutable snapshots swapped on change, so identity is a sound cache key,
// and the WeakMap lets a replaced snapshot's subset go with it.
const subsets = new WeakMap<readonly Endpoint[], ZoneSubset>();

/**
 * Returns the endpoints in `zone` when at least `minHealthy` (and at least one) of them are present
 * AND they are at least `minShare` (0..1) of all candidates; otherwise `candidates` itself. Zone ''
 * means no preference. Allocates only the first time a snapshot's local subset is chosen.
 */
export function preferZone(candidates: readonly Endpoint[], zone: string, minHealthy: number, minShare: number): readonly Endpoint[] {
  if (zone === '') return candidates;
  const cached = subsets.get(candidates);
  if (cached !== undefined && cached.zone === zone && cached.minHealthy === minHealthy && cached.minShare === minShare) return cached.local;
  let count = 0;
  for (let i = 0; i < candidates.length; i++) if (candidates[i].instance.zone === zone) count++;
  // Compare counts rather than a ratio: no division, and minShare 0 with no candidates stays false.
  if (count === 0 || count < minHealthy || count < minShare * candidates.length) return candidates;
  if (count === candidates.length) return candidates;
  const local: Endpoint[] = [];
  for (let i = 0; i < candidates.length; i++) if (candidates[i].instance.zone === zone) local.push(candidates[i]);
  subsets.set(candidates, { zone, minHealthy, minShare, local: Object.freeze(local) });
  return local;
}

// Power of two choices: sample two distinct endpoints at random and take the less loaded. Two
// choices already give an exponential improvement in maximum load over one (Mitzenmacher, "The
// Power of Two Choices in Randomized Load Balancing", IEEE TPDS 2001), and unlike "always the least
// loaded" they don't herd onto one endpoint when many proxies act on the same stale view
// (Mitzenmacher, "How Useful Is Old Information?", IEEE TPDS 2000).
import type { Endpoint } from '../discovery/endpoint.ts';

export interface Balancer {
  pick(endpoints: readonly Endpoint[]): Endpoint | undefined;
}

export class P2CBalancer implements Balancer {
  readonly #load: (ep: Endpoint) => number;
  readonly #random: () => number;

  constructor(load: (ep: Endpoint) => number, random: () => number = Math.random) {
    this.#load = load;
    this.#random = random;
  }

  pick(endpoints: readonly Endpoint[]): Endpoint | undefined {
    const n = endpoints.length;
    if (n === 0) return undefined;
    if (n === 1) return endpoints[0];
    const i = index(this.#random(), n);
    // Draw from the n - 1 others and skip over i: distinct without a retry loop.
    let j = index(this.#random(), n - 1);
    if (j >= i) j++;
    const a = endpoints[i];
    const b = endpoints[j];
    // Strictly less: a tie (or a NaN load) keeps the first draw.
    return this.#load(b) < this.#load(a) ? b : a;
  }
}

/** floor(r * n) kept in [0, n): a random source may return 1 (or garbage) at the edges. */
function index(r: number, n: number): number {
  const i = Math.floor(r * n);
  return i >= 0 && i < n ? i : i >= n ? n - 1 : 0;
}

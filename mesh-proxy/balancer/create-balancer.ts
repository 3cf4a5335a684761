// The balancer a concrete service uses, by name, and the per-endpoint statistics the load-aware
// ones read. The mesh client brackets each request with statsOf(ep).ewma.start() / end().
import type { Endpoint } from '../discovery/endpoint.ts';
import { P2CBalancer, type Balancer } from './p2c.ts';
import { PeakEwma, type PeakEwmaOptions } from './peak-ewma.ts';
import { RoundRobin } from './round-robin.ts';

export type BalancerKind = 'p2c-ewma' | 'round-robin' | 'least-request';

/** What the balancers know about one endpoint; lives as long as its Endpoint object. */
export class EndpointStats {
  readonly ewma: PeakEwma;

  constructor(opts?: Partial<PeakEwmaOptions>) {
    this.ewma = new PeakEwma(opts);
  }
}

// Keyed by the Endpoint object: a changed instance gets a new Endpoint and so fresh statistics,
// and a removed one's are collected with it.
const stats = new WeakMap<Endpoint, EndpointStats>();

/** The endpoint's statistics, created on first use. */
export function statsOf(ep: Endpoint): EndpointStats {
  let s = stats.get(ep);
  if (s === undefined) {
    s = new EndpointStats();
    stats.set(ep, s);
  }
  return s;
}

// Module-level so that a balancer holds one function for its lifetime: no closure per pick.
function ewmaLoad(ep: Endpoint): number {
  return statsOf(ep).ewma.load();
}

function pendingLoad(ep: Endpoint): number {
  return statsOf(ep).ewma.pending;
}

export function createBalancer(kind: BalancerKind, random?: () => number): Balancer {
  switch (kind) {
    case 'p2c-ewma':
      return new P2CBalancer(ewmaLoad, random);
    case 'least-request':
      // P2C over in-flight counts: Envoy's LEAST_REQUEST with its default choice_count of 2.
      return new P2CBalancer(pendingLoad, random);
    case 'round-robin':
      return new RoundRobin();
    default:
      throw new TypeError(`unknown balancer kind "${String(kind satisfies never)}"`);
  }
}

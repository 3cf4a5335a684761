import type { Instance } from '../store/types.ts';

/**
 * An instance as a mesh target. The object lives as long as the instance is known unchanged, so
 * per-endpoint state (connection pool, balancer statistics) can hang off it.
 */
export class Endpoint {
  readonly instance: Instance;
  /** `address:port`, the key of its connection pool. */
  readonly authority: string;
  readonly origin: string;
  /** Its connection pool's key: the authority, plus the identity for mTLS endpoints (a changed identity gets new connections). */
  readonly poolKey: string;

  constructor(instance: Instance) {
    this.instance = instance;
    const host = instance.address.includes(':') ? `[${instance.address}]` : instance.address;
    this.authority = `${host}:${instance.port}`;
    this.origin = instance.identity === undefined ? `http://${this.authority}` : `https://${this.authority}`;
    this.poolKey = instance.identity === undefined ? this.authority : `${this.authority} ${instance.identity}`;
  }
}

/** What the request path reads for one service: swapped as a whole when membership changes. */
export interface ServiceEndpoints {
  readonly service: string;
  readonly endpoints: readonly Endpoint[];
}

/** Where the mesh client reads endpoints from: the store-fed EndpointCache, or a fixed set (peer datacenters' edges). */
export interface EndpointSource {
  get(service: string): ServiceEndpoints | undefined;
  services(): IterableIterator<ServiceEndpoints>;
  onChange(listener: (service: string) => void): void;
}

export function sameInstance(a: Instance, b: Instance): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

import type { Endpoint } from '../discovery/endpoint.ts';

/** Cycles through a service's endpoints; membership changes just change the modulus. */
export class RoundRobin {
  #next = 0;

  pick(endpoints: readonly Endpoint[]): Endpoint {
    const i = this.#next++ % endpoints.length;
    if (this.#next >= Number.MAX_SAFE_INTEGER) this.#next = 0;
    return endpoints[i];
  }
}

// Shadow traffic (Envoy's request_mirror_policies): a copy of a request goes to one endpoint of the
// mirror subset, its response discarded. It never delays or fails the caller: the copy is sent
// only for requests whose body is already in memory (or that have none), beside the real try, and
// past MAX_IN_FLIGHT copies per service further ones are dropped and counted.
import type { Counter } from 'prom-client';
import type { Endpoint } from '../discovery/endpoint.ts';
import type { Exchange } from '../client/exchange.ts';
import type { UpstreamPool } from '../client/endpoint-pools.ts';

const MAX_IN_FLIGHT = 64;
const MIRROR_TIMEOUT_MS = 10_000;
export const SHADOW_HEADER = 'x-meshgate-shadow';

class Discard {
  readonly #mirror: Mirror;
  readonly #subset: string;
  constructor(m: Mirror, subset: string) {
    this.#mirror = m;
    this.#subset = subset;
  }
  onConnect(): void {}
  onHeaders(): boolean {
    return true;
  }
  onData(): boolean {
    return true;
  }
  onComplete(): void {
    this.#mirror.settled(this.#subset, false);
  }
  onError(): void {
    this.#mirror.settled(this.#subset, true);
  }
}

export class Mirror {
  readonly service: string;
  #inFlight = 0;
  readonly #counter: Counter<'service' | 'subset' | 'result'>;

  constructor(service: string, counter: Counter<'service' | 'subset' | 'result'>) {
    this.service = service;
    this.#counter = counter;
  }

  /** Sends a copy of `ex` (before its first try) to one of `targets`. */
  send(ex: Exchange, subset: string, targets: readonly Endpoint[], pool: (ep: Endpoint) => UpstreamPool): void {
    if (targets.length === 0 || (ex.hasBody && ex.body === null) || ex.upgrade !== undefined) {
      this.#counter.inc({ service: this.service, subset, result: 'skipped' });
      return;
    }
    if (this.#inFlight >= MAX_IN_FLIGHT) {
      this.#counter.inc({ service: this.service, subset, result: 'dropped' });
      return;
    }
    const ep = targets[Math.floor(Math.random() * targets.length)];
    const headers = ex.headers.slice();
    for (let i = 0; i < headers.length; i += 2) if (headers[i].length === 4 && headers[i].toLowerCase() === 'host') headers[i + 1] = shadowHost(headers[i + 1]);
    headers.push(SHADOW_HEADER, '1');
    this.#inFlight++;
    this.#counter.inc({ service: this.service, subset, result: 'sent' });
    pool(ep).dispatch({ path: ex.path, method: ex.method, headers, body: ex.body, headersTimeout: MIRROR_TIMEOUT_MS, bodyTimeout: MIRROR_TIMEOUT_MS }, new Discard(this, subset));
  }

  settled(subset: string, failed: boolean): void {
    this.#inFlight--;
    if (failed) this.#counter.inc({ service: this.service, subset, result: 'failed' });
  }
}

/** catalog → catalog-shadow, catalog:8080 → catalog-shadow:8080 (as Envoy marks mirrored requests). */
function shadowHost(host: string): string {
  const colon = host.lastIndexOf(':');
  return colon > 0 && !host.endsWith(']') ? `${host.slice(0, colon)}-shadow${host.slice(colon)}` : `${host}-shadow`;
}

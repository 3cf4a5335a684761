// The sidecar's inbound side: peers' requests are handed to the local app over a keep-alive pool.
import type { Pool } from 'undici';
import type { Endpoint } from '../discovery/endpoint.ts';
import type { Exchange } from '../client/exchange.ts';
import { dispatchExchange } from '../client/mesh-client.ts';
import type { Router } from '../http/proxy-listener.ts';
import type { RequestSeries } from '../observe/request-metrics.ts';

export class InboundRouter implements Router {
  readonly #service: string;
  readonly #app: Endpoint;
  readonly #pool: Pool;
  readonly #series: RequestSeries;
  readonly #timeoutMs: number;

  constructor(service: string, app: Endpoint, pool: Pool, series: RequestSeries, timeoutMs: number) {
    this.#service = service;
    this.#app = app;
    this.#pool = pool;
    this.#series = series;
    this.#timeoutMs = timeoutMs;
  }

  route(ex: Exchange): void {
    ex.service = this.#service;
    ex.series = this.#series;
    ex.endpoint = this.#app;
    ex.timeoutMs = this.#timeoutMs;
    dispatchExchange(this.#pool, ex);
  }
}

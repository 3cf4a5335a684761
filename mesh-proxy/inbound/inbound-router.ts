// The sidecar's inbound side: peers' requests are handed to the local app over a keep-alive pool.
// The caller's remaining deadline bounds the app's time (an expired one is answered 504 without
// calling the app). No retries toward the local app: the caller's side owns retries.
import type { Pool } from 'undici';
import type { Endpoint } from '../discovery/endpoint.ts';
import { Attempt, dispatchAttempt, type AttemptOwner } from '../client/attempt.ts';
import { classifyTransportError } from '../client/errors.ts';
import type { Exchange } from '../client/exchange.ts';
import type { Router } from '../http/proxy-listener.ts';
import type { RequestSeries } from '../observe/request-metrics.ts';
import type { Verdict } from '../resilience/classify.ts';

export class InboundRouter implements Router, AttemptOwner {
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
    if (!ex.startDeadline(this.#timeoutMs)) return;
    ex.streamedBody = ex.hasBody;
    const now = performance.now();
    ex.stampDeadline(now);
    const a = new Attempt(ex, this.#app, this, now);
    ex.current = a;
    dispatchAttempt(this.#pool, a, Math.max(1, Math.ceil(ex.remainingMs(now))), this.#timeoutMs);
  }

  retryOnStatus(): boolean {
    return false;
  }

  settled(a: Attempt, _verdict: Verdict, err: (Error & { code?: string }) | undefined): void {
    if (a.ex.current === a) a.ex.current = undefined;
    if (err === undefined || a.ex.done) return;
    if (a.rejectedRequest) {
      a.ex.fail('BAD_REQUEST', `the request cannot be forwarded: ${err.message}`);
      return;
    }
    const e = classifyTransportError(err, this.#app.authority);
    a.ex.fail(e.code, e.message);
  }
}

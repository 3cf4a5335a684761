// The sidecar's inbound side: peers' requests are handed to the local app over a keep-alive pool.
// The caller's remaining deadline bounds the app's time (an expired one is answered 504 without
// calling the app). No retries toward the local app: the caller's side owns retries. With mTLS the
// caller's verified identity (read once per connection) is authorized here and handed to the app in
// x-meshgate-client-id.
import type { UpstreamPool } from '../client/endpoint-pools.ts';
import { GrpcKind } from '../http/grpc.ts';
import type { Counter } from 'prom-client';
import type { Endpoint } from '../discovery/endpoint.ts';
import type { buildConnector as Connector } from 'undici';
import { buildConnector } from '../client/undici-parts.ts';
import { Attempt, dispatchAttempt, type AttemptOwner } from '../client/attempt.ts';
import { Tunnel } from '../client/tunnel.ts';
import { classifyTransportError } from '../client/errors.ts';
import type { Exchange } from '../client/exchange.ts';
import type { Router } from '../http/proxy-listener.ts';
import { CLIENT_ID_HEADER } from '../http/forward-headers.ts';
import { peerIdentityOf } from '../identity/mtls-server.ts';
import type { Logger } from '../observe/log.ts';
import type { Authorizer } from './authorize.ts';
import type { RequestSeries } from '../observe/request-metrics.ts';
import type { Verdict } from '../resilience/classify.ts';
import type { ChainNext, PluginChain } from '../../plugins/chain.ts';

/** The app is local: a WebSocket tunnel's connection to it either opens at once or not at all. */
const APP_CONNECT_TIMEOUT_MS = 1000;
/** As the callers' default timeouts.streamIdle. */
const STREAM_IDLE_MS = 300_000;

export interface InboundAuthorization {
  authorizer: Authorizer;
  denied: Counter<'service'>;
  log: Logger;
}

export class InboundRouter implements Router, AttemptOwner, ChainNext {
  /** The inbound plugins (plugins.inbound), run after authorization; swapped on reload. */
  chain: PluginChain | undefined;
  /** An open WebSocket tunnel to the app idle this long is closed (inboundWebsocketIdleTimeout). */
  websocketIdleMs = 3_600_000;
  #appConnector: Connector.connector | undefined;
  readonly #service: string;
  readonly #app: Endpoint;
  readonly #pool: UpstreamPool;
  readonly #series: RequestSeries;
  readonly #timeoutMs: number;
  readonly #authz: InboundAuthorization | undefined;

  constructor(service: string, app: Endpoint, pool: UpstreamPool, series: RequestSeries, timeoutMs: number, authz?: InboundAuthorization) {
    this.#authz = authz;
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
    const caller = peerIdentityOf(ex.req.socket);
    if (this.#authz !== undefined) {
      const why = this.#authz.authorizer.deny(caller, ex.method, ex.path);
      if (why !== undefined) {
        this.#authz.denied.inc({ service: this.#service });
        this.#authz.log.warn({ dir: 'inbound', rid: ex.requestId, caller: caller ?? null, method: ex.method, path: ex.path }, 'request denied by inbound authorization');
        ex.fail('FORBIDDEN', why);
        return;
      }
    }
    if (caller !== undefined) ex.headers.push(CLIENT_ID_HEADER, caller);
    const chain = this.chain;
    if (chain !== undefined) {
      const q = ex.path.indexOf('?');
      chain.run(ex, { path: q < 0 ? ex.path : ex.path.slice(0, q), query: q < 0 ? '' : ex.path.slice(q), host: ex.host, identity: caller }, this);
      return;
    }
    this.proceed(ex);
  }

  proceed(ex: Exchange): void {
    if (!ex.startDeadline(this.#timeoutMs)) return;
    ex.streamedBody = ex.hasBody;
    const now = performance.now();
    ex.stampDeadline(now);
    if (ex.upgrade !== undefined) {
      // WebSocket: a connection of its own to the app, after authorization and the inbound plugins.
      this.#appConnector ??= buildConnector({ timeout: APP_CONNECT_TIMEOUT_MS });
      const t = new Tunnel(ex, this.#app, this, now, this.#appConnector, this.websocketIdleMs);
      ex.current = t;
      t.start();
      return;
    }
    const a = new Attempt(ex, this.#app, this, now);
    ex.current = a;
    // A streaming call (gRPC) may stay quiet longer than a request may take to start answering.
    dispatchAttempt(this.#pool, a, Math.max(1, Math.ceil(ex.remainingMs(now))), ex.grpc === GrpcKind.None ? this.#timeoutMs : STREAM_IDLE_MS);
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

// An HTTP/1.1 listener whose requests become Exchanges. The edge, the sidecar's outbound and its
// inbound side differ only in the Router that decides where an exchange goes; in-flight tracking,
// graceful drain, metrics and the access log live here once.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Exchange, type ExchangeOwner } from '../client/exchange.ts';
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Direction, RequestSeries } from '../observe/request-metrics.ts';
import { forwardRequestHeaders } from './forward-headers.ts';

export interface Router {
  /** Sets the exchange's service, route, path and series, then forwards it or fails it. */
  route(ex: Exchange): void;
}

export interface ProxyListenerOptions {
  direction: Direction;
  router: Router;
  log: Logger;
  metrics: Metrics;
  accessLog: boolean;
  /** The edge states x-forwarded-* and echoes x-request-id to clients. */
  edge: boolean;
}

export class ProxyListener implements ExchangeOwner {
  readonly server: http.Server;
  readonly #o: ProxyListenerOptions;
  readonly #unrouted: RequestSeries;
  #inflight = 0;
  #draining = false;

  constructor(opts: ProxyListenerOptions) {
    this.#o = opts;
    this.#unrouted = opts.metrics.requests.series(opts.direction, '', '');
    this.server = http.createServer({ keepAliveTimeout: 65_000, requireHostHeader: true }, (req, res) => this.#onRequest(req, res));
    // Node answers malformed requests (bad framing, smuggling attempts, oversized headers) with
    // 400/431 and closes; record them so they are visible.
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (err.code !== 'ECONNRESET') this.#o.log.debug({ dir: opts.direction, err: err.code ?? err.message }, 'rejected a malformed request');
      if (socket.writable && !socket.writableEnded) {
        const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
        socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      } else socket.destroy();
    });
  }

  get draining(): boolean {
    return this.#draining;
  }

  get inflight(): number {
    return this.#inflight;
  }

  async listen(address: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new Error(`cannot listen on ${address}:${port} for ${this.#o.direction} traffic: ${err.code ?? err.message}`));
      };
      this.server.once('error', onError);
      this.server.listen(port, address, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting, lets in-flight requests finish (bounded by drainMs), then closes everything. */
  async close(drainMs: number): Promise<void> {
    this.#draining = true;
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeIdleConnections();
    const deadline = Date.now() + drainMs;
    while (this.#inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.server.closeAllConnections();
    await closed;
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.#inflight++;
    const ex = new Exchange(req, res, this);
    const edge = this.#o.edge;
    forwardRequestHeaders(req.rawHeaders, edge ? (req.socket.remoteAddress ?? '') : null, 'http', ex);
    ex.echoRequestId = edge;
    if (ex.badRequest !== undefined) {
      ex.fail('BAD_REQUEST', ex.badRequest);
      return;
    }
    try {
      this.#o.router.route(ex);
    } catch (err) {
      this.#o.log.error({ err, rid: ex.requestId }, 'request handling failed');
      ex.fail('INTERNAL', 'internal error');
    }
  }

  finished(ex: Exchange): void {
    this.#inflight--;
    const ms = performance.now() - ex.startedAt;
    (ex.series ?? this.#unrouted).record(ex.statusCode, ms / 1000);
    if (ex.errorCode !== undefined) {
      this.#o.metrics.localReplies.inc({ direction: this.#o.direction, service: ex.service, code: ex.errorCode });
    }
    if (this.#o.accessLog) {
      this.#o.log.info(
        {
          dir: this.#o.direction,
          rid: ex.requestId,
          method: ex.req.method,
          path: ex.req.url,
          status: ex.statusCode,
          ms: Math.round(ms * 100) / 100,
          service: ex.service || undefined,
          route: ex.route || undefined,
          upstream: ex.endpoint?.authority,
          error: ex.errorCode,
          client: this.#o.edge ? ex.req.socket.remoteAddress : undefined,
        },
        'access',
      );
    }
  }
}

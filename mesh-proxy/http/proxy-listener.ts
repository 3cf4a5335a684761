// An HTTP/1.1 listener whose requests become Exchanges. The edge, the sidecar's outbound and its
// inbound side differ only in the Router that decides where an exchange goes; in-flight tracking,
// graceful drain, metrics and the access log live here once.
import type http from 'node:http';
import type { Http2SecureServer, Http2Server, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { Server as TcpServer, type AddressInfo, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Exchange, type ExchangeOwner } from '../client/exchange.ts';
import { SHUTDOWN_ERROR } from '../client/tunnel.ts';
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Direction, RequestSeries } from '../observe/request-metrics.ts';
import { websocketMetrics, type WebSocketMetrics } from '../observe/websocket-metrics.ts';
import { GrpcMetrics } from '../observe/grpc-metrics.ts';
import { GrpcKind } from './grpc.ts';
import { H2Request, H2Response, type DownstreamRequest, type DownstreamResponse } from './h2-downstream.ts';
import type { H1Request, H1Response } from './h1-downstream.ts';
import { H1Server } from './h1-server.ts';
import { forwardRequestHeaders } from './forward-headers.ts';
import { createPlainServers } from './plain-server.ts';
import { upgradeKind } from './upgrade.ts';

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
  /** Plain listeners also accept HTTP/2 with prior knowledge (default true). */
  h2c?: boolean;
}

/**
 * A server this listener serves: a plain TCP server (HTTP/1.1 and h2c, plain-server.ts), or an
 * HTTPS one whose HTTP/2 sessions come as 'stream' events and whose HTTP/1.1 connections (by ALPN)
 * are taken over by meshgate's HTTP/1.1 server.
 */
export type RequestServer = TcpServer | Http2SecureServer | Http2Server;

/** A stream's errors (a reset by the client) end in its 'close', which the exchange watches. */
function ignoreStreamError(): void {}

const SHUTDOWN = Object.assign(new Error('the proxy is shutting down'), { code: SHUTDOWN_ERROR });

export class ProxyListener implements ExchangeOwner {
  /** The first server passed to listen() (or created by it). */
  server: RequestServer;
  readonly #servers: RequestServer[] = [];
  /** HTTP/2 sessions: drained with GOAWAY (HTTP/1.1 connections are the H1Server's to drain). */
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #o: ProxyListenerOptions;
  readonly #unrouted: RequestSeries;
  readonly #onRequestBound = (req: http.IncomingMessage, res: http.ServerResponse) => this.#onRequest(req, res);
  readonly #onStreamBound = (stream: ServerHttp2Stream, headers: http.IncomingHttpHeaders, _flags: number, raw: string[]) => this.#onStream(stream, headers, raw);
  /** Every HTTP/1.1 connection of every server this listener serves. */
  readonly #h1: H1Server;
  /** WebSocket exchanges in flight (establishing or open): destroyed when a drain times out. */
  readonly #upgrades = new Set<Exchange>();
  readonly #ws: WebSocketMetrics;
  readonly #grpc: GrpcMetrics;
  #inflight = 0;
  #draining = false;
  #listened = false;

  constructor(opts: ProxyListenerOptions) {
    this.#o = opts;
    this.#unrouted = opts.metrics.requests.series(opts.direction, '', '');
    this.#ws = websocketMetrics(opts.metrics.registry);
    this.#grpc = new GrpcMetrics(opts.metrics.registry);
    this.#h1 = new H1Server({
      request: (req, res) => this.#handle(req, res, false),
      upgrade: (req, res, head) => this.#onUpgrade(req, res, head),
      // Counted with the other local replies (no service: the request never reached routing).
      rejected: (status, code) => {
        opts.metrics.localReplies.inc({ direction: opts.direction, service: '', code });
        opts.log.debug({ dir: opts.direction, status, code }, 'refused a request before routing');
      },
      failed: (err) => opts.log.error({ dir: opts.direction, err }, 'request handling failed'),
    });
    this.server = this.#plain();
  }

  /** A plain listener's server; its h2c twin (fed by the listener's sniffer) shares this listener's handlers. */
  #plain(): TcpServer {
    const { tcp, h2 } = createPlainServers(this.#o.h2c ?? true, this.#h1.accept);
    if (h2 !== undefined) this.#attach(h2);
    return tcp;
  }

  get draining(): boolean {
    return this.#draining;
  }

  get inflight(): number {
    return this.#inflight;
  }

  /**
   * Listens on a plain HTTP/1.1 server, or on `server` (an https or TLS server built by the caller
   * with the options it needs) whose requests then share this listener's router, drain and metrics.
   */
  async listen(address: string, port: number, server?: RequestServer): Promise<AddressInfo> {
    const srv = server ?? (this.#listened ? this.#plain() : this.server);
    if (!this.#listened) this.server = srv;
    this.#listened = true;
    this.#attach(srv);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new Error(`cannot listen on ${address}:${port} for ${this.#o.direction} traffic: ${err.code ?? err.message}`));
      };
      srv.once('error', onError);
      srv.listen(port, address, () => {
        srv.off('error', onError);
        resolve();
      });
    });
    return srv.address() as AddressInfo;
  }

  #attach(srv: RequestServer): void {
    this.#servers.push(srv);
    // An HTTPS server's HTTP/1.1 connections (by ALPN) go to meshgate's server instead of node:http.
    const nodeH1 = srv.listeners('secureConnection').find((f) => f.name === 'connectionListener') as ((socket: TLSSocket) => void) | undefined;
    if (nodeH1 !== undefined) {
      const accept = this.#h1.accept;
      srv.off('secureConnection', nodeH1);
      srv.on('secureConnection', function (this: RequestServer, socket: TLSSocket) {
        if (socket.alpnProtocol === false || socket.alpnProtocol === 'http/1.1') accept(socket);
        else nodeH1.call(this, socket);
      });
    } else if (srv.listenerCount('secureConnection') > 0) {
      throw new Error(`this Node.js (${process.version}) names its HTTP/2 server's connection handler differently: meshgate cannot take over HTTPS HTTP/1.1 connections`);
    }
    // An HTTP/2 server sets up Node's compatibility layer when a 'request' listener is added. Its
    // streams are taken on the stream API instead (h2-downstream.ts). Where a future Node names that
    // hook differently, the layer stays and its requests come as 'request' events.
    const setupCompat = srv.listeners('newListener').find((f) => f.name === 'setupCompat');
    if (setupCompat !== undefined) {
      srv.off('newListener', setupCompat as (...args: unknown[]) => void);
      srv.on('stream', this.#onStreamBound);
    } else if (Object.getPrototypeOf(srv) !== TcpServer.prototype) {
      // An HTTP/2 server (not the plain TCP one, whose HTTP/1.1 is ours) without that hook.
      srv.on('request', this.#onRequestBound);
    }
    srv.on('session', (session: ServerHttp2Session) => {
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      if (this.#draining) session.close();
    });
  }

  /** Stops accepting, lets in-flight requests finish (bounded by drainMs), then closes everything. */
  async close(drainMs: number): Promise<void> {
    this.#draining = true;
    // An h2c twin never listened: its close() reports that, and is done.
    const closed = this.#servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    this.#h1.drain();
    // GOAWAY: the client opens no new streams here; those in flight finish.
    for (const session of this.#sessions) session.close();
    const deadline = Date.now() + drainMs;
    while (this.#inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.#h1.closeAll();
    for (const session of this.#sessions) session.destroy();
    // Upgraded sockets are no longer the server's to close: tunnels still open go now.
    for (const ex of this.#upgrades) ex.upgrade!.socket.destroy(SHUTDOWN);
    await Promise.all(closed);
  }

  #onStream(stream: ServerHttp2Stream, headers: http.IncomingHttpHeaders, raw: string[]): void {
    stream.on('error', ignoreStreamError);
    const te = headers.te;
    this.#handle(new H2Request(stream, headers, raw), new H2Response(stream, typeof te === 'string' && te.includes('trailers')), !stream.endAfterHeaders);
  }

  /** HTTP/2 on the compatibility layer (only where the stream API could not be set up). */
  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.#handle(req, res, (req as unknown as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === false);
  }

  #handle(req: DownstreamRequest, res: DownstreamResponse, h2Body: boolean): void {
    this.#inflight++;
    const ex = new Exchange(req, res, this);
    const edge = this.#o.edge;
    const tls = (req.socket as { encrypted?: boolean }).encrypted === true;
    forwardRequestHeaders(req.rawHeaders, edge ? (req.socket.remoteAddress ?? '') : null, tls ? 'https' : 'http', ex);
    ex.echoRequestId = edge;
    // An HTTP/2 request has a body unless its HEADERS frame ended the stream (no Content-Length needed).
    if (h2Body && !ex.hasBody) ex.hasBody = true;
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

  /**
   * An HTTP/1.1 Upgrade. Refusals take the ordinary local-reply path (JSON errors, plugin replies,
   * metrics, access log) and close the connection. A WebSocket handshake is marked and routed; the
   * router's mesh client then tunnels it instead of forwarding it (client/tunnel.ts).
   */
  #onUpgrade(req: H1Request, res: H1Response, head: Buffer): void {
    this.#inflight++;
    const ex = new Exchange(req, res, this);
    forwardRequestHeaders(req.rawHeaders, this.#o.edge ? (req.socket.remoteAddress ?? '') : null, (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http', ex);
    ex.echoRequestId = this.#o.edge;
    if (ex.badRequest !== undefined) {
      ex.fail('BAD_REQUEST', ex.badRequest);
      return;
    }
    if (upgradeKind(req) === 'websocket') {
      this.#upgrades.add(ex);
      ex.upgrade = { socket: req.socket as Socket, head, protocol: 'websocket' };
      if (ex.method !== 'GET' || ex.hasBody) {
        ex.fail('BAD_REQUEST', 'a WebSocket handshake is a GET without a body (RFC 6455 §4.1)');
        return;
      }
      // forwardRequestHeaders dropped them as hop-by-hop: this hop re-states the upgrade.
      ex.headers.push('connection', 'Upgrade', 'upgrade', 'websocket');
    } else if (ex.hasBody) {
      // The parser stops at an upgrade's head, so its body cannot be forwarded.
      ex.fail('BAD_REQUEST', `Upgrade: ${String(req.headers.upgrade)} is not supported on a request with a body`);
      return;
    }
    try {
      this.#o.router.route(ex);
    } catch (err) {
      this.#o.log.error({ err, rid: ex.requestId }, 'upgrade handling failed');
      ex.fail('INTERNAL', 'internal error');
    }
  }

  tunnelOpened(ex: Exchange): void {
    this.#ws.upgrades.inc({ direction: this.#o.direction, service: ex.service, result: 'switched' });
    this.#ws.open.inc({ direction: this.#o.direction, service: ex.service });
  }

  finished(ex: Exchange): void {
    this.#inflight--;
    const ms = performance.now() - ex.startedAt;
    // A tunnel's request metrics time its handshake; its lifetime is in the access log.
    (ex.series ?? this.#unrouted).record(ex.statusCode, (ex.switchedAt > 0 ? ex.switchedAt - ex.startedAt : ms) / 1000);
    if (ex.upgrade !== undefined) this.#upgradeEnded(ex);
    if (ex.grpc !== GrpcKind.None) this.#grpc.record(this.#o.direction, ex.service, ex.req.url ?? '', ex.grpcStatus, ex.statusCode, ms / 1000);
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
          upgrade: ex.upgrade?.protocol,
          upgradeMs: ex.switchedAt > 0 ? Math.round((ex.switchedAt - ex.startedAt) * 100) / 100 : undefined,
          tunnel: ex.upgrade?.end,
          grpcStatus: ex.grpcStatus >= 0 ? ex.grpcStatus : undefined,
        },
        'access',
      );
    }
  }

  #upgradeEnded(ex: Exchange): void {
    this.#upgrades.delete(ex);
    const direction = this.#o.direction;
    if (ex.switchedAt > 0) this.#ws.open.dec({ direction, service: ex.service });
    else this.#ws.upgrades.inc({ direction, service: ex.service, result: ex.errorCode !== undefined ? 'local' : ex.statusCode === 499 ? 'abandoned' : 'rejected' });
  }
}

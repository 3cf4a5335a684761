// HTTP/1.1 keep-alive connections to one endpoint, behind the dispatch/handler interface undici's
// Pool offers (Attempt, health probes and mirrors dispatch on it unchanged). It replaces undici's
// Pool on the proxy path: measured on one core, a node:http forwarder carried ~30% more requests
// per second through this client than through undici's (loadtest/RESULTS.md, 2026-12-05), whose
// wasm parser, Buffer-per-header heads and per-request bookkeeping a proxy pays for and never uses.
// Connections are made by an undici-style connector (plain TCP, or mTLS checking the peer's
// identity: mtls-connector.ts), so connect timeouts and TLS checks are the same as before.
// Idle connections are reused last-in first-out (the warmest socket), and closed after the pool's
// idle time or 1 s before the server's own `keep-alive: timeout` would.
import type { Socket } from 'node:net';
import type { buildConnector as Connector } from 'undici';
import { H1Connection, type ConnectionOwner } from './h1-connection.ts';
import { H1Request, type H1DispatchOptions, type H1Handler } from './h1-request.ts';
import { H1_CLOSED } from './h1-wire.ts';
import { TransportError } from './transport-error.ts';

export { type H1DispatchOptions, type H1Handler };

export interface H1PoolOptions {
  host: string;
  port: number;
  /** https: the connector makes TLS (mesh mTLS) sockets. */
  protocol: 'http:' | 'https:';
  maxConnections: number;
  /** An idle connection is closed after this long. */
  idleMs: number;
  connect: Connector.connector;
}

export class H1Pool implements ConnectionOwner {
  readonly hostHeader: string;
  readonly #o: H1PoolOptions;
  readonly #connectOpts: Connector.Options;
  readonly #idle: H1Connection[] = [];
  readonly #queue: H1Request[] = [];
  readonly #dequeue = (r: H1Request): void => {
    const i = this.#queue.indexOf(r);
    if (i >= 0) this.#queue.splice(i, 1);
  };
  /** Open connections plus those being connected. */
  #size = 0;
  #connecting = 0;
  #closing = false;
  #closed: Promise<void> | undefined;
  #onEmpty: (() => void) | undefined;

  constructor(o: H1PoolOptions) {
    this.#o = o;
    const host = o.host.includes(':') ? `[${o.host}]` : o.host;
    this.hostHeader = `${host}:${o.port}`;
    this.#connectOpts = { hostname: o.host, host: this.hostHeader, protocol: o.protocol, port: String(o.port), servername: null } as unknown as Connector.Options;
  }

  /** undici Dispatcher's signature: the handler hears everything; the return value is unused. */
  dispatch(opts: H1DispatchOptions, handler: H1Handler): boolean {
    const req = new H1Request(opts, handler, this.#dequeue);
    handler.onConnect(req.abort);
    if (req.finished) return true;
    if (this.#closing) {
      req.fail(new TransportError(H1_CLOSED, 'the connection pool is closed'));
      return true;
    }
    const c = this.#idle.pop();
    if (c !== undefined) c.send(req);
    else {
      this.#queue.push(req);
      if (this.#connecting < this.#queue.length && this.#size < this.#o.maxConnections) this.#connect();
    }
    return true;
  }

  /** Graceful: requests in flight and queued finish; then every connection closes. */
  close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#closing = true;
    this.#closed = new Promise((resolve) => {
      this.#onEmpty = resolve;
    });
    for (const c of this.#idle.splice(0)) c.socket.destroy();
    this.#checkEmpty();
    return this.#closed;
  }

  #connect(): void {
    this.#size++;
    this.#connecting++;
    this.#o.connect(this.#connectOpts, (err, socket) => {
      this.#connecting--;
      if (err !== null) {
        this.#size--;
        // Nothing was sent. With no connection left to serve them, the waiting requests fail as
        // this connect failed (safe to retry elsewhere); otherwise they wait for the others.
        if (this.#size === 0) for (const r of this.#queue.splice(0)) r.fail(err);
        this.#checkEmpty();
        return;
      }
      const c = new H1Connection(socket as Socket, this, this.#o.idleMs);
      this.released(c, true);
    });
  }

  released(c: H1Connection, reusable: boolean): void {
    if (!reusable) return; // its 'close' follows
    const next = this.#queue.shift();
    if (next !== undefined) c.send(next);
    else if (this.#closing) c.socket.destroy();
    else this.#idle.push(c);
  }

  closed(c: H1Connection): void {
    this.#size--;
    const i = this.#idle.lastIndexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
    // Requests still waiting get a connection in its place.
    if (this.#connecting < this.#queue.length && this.#size < this.#o.maxConnections) this.#connect();
    this.#checkEmpty();
  }

  #checkEmpty(): void {
    if (this.#size === 0 && this.#onEmpty !== undefined) {
      const done = this.#onEmpty;
      this.#onEmpty = undefined;
      done();
    }
  }

  /** What the pool holds (tests and the admin view). */
  get stats(): { connections: number; idle: number; queued: number } {
    return { connections: this.#size, idle: this.#idle.length, queued: this.#queue.length };
  }
}

// meshgate's HTTP/1.1 server. node:http builds an IncomingMessage and a ServerResponse per request
// (each a stream with its own state machine, its headers validated and copied one setHeader() at a
// time) and reads every socket through them; a proxy needs the head as a list, the body as a
// stream and one write for a small response. The connections here parse with the same llhttp
// binding node:http uses (h1-server-connection.ts) and hand the proxy H1Request/H1Response pairs
// (h1-downstream.ts). Measured in loadtest/RESULTS.md (2026-12-06, second part).
//
// What node:http does that is kept: keep-alive with a `Keep-Alive: timeout` hint, pipelining in
// order, 100-continue, HTTP/1.0 clients, Host required on HTTP/1.1, 400/431 for malformed or
// oversized heads, a headers timeout (slowloris), a request timeout, a client's half-close as its
// going away, Upgrade handed over with the bytes read past the head.
import type { Socket } from 'node:net';
import type { H1Request, H1Response } from './h1-downstream.ts';
import { H1ServerConnection } from './h1-server-connection.ts';

export interface H1Handlers {
  request(req: H1Request, res: H1Response): void;
  /** An Upgrade request: `head` holds the bytes that came after its head (the new protocol's). */
  upgrade(req: H1Request, res: H1Response, head: Buffer): void;
  /** The server refused a request itself (malformed, oversized, timed out). */
  rejected(status: number, code: string): void;
  /** A handler threw: the connection is cut. */
  failed(err: Error): void;
}

export interface H1ServerOptions {
  /** An idle keep-alive connection closes after this long (announced to clients, in whole seconds). */
  keepAliveTimeoutMs: number;
  /** A request head must arrive within this long of its first byte (node:http's default: 60 s). */
  headersTimeoutMs: number;
  /** A whole request, body included, must arrive within this long (node:http's default: 300 s). */
  requestTimeoutMs: number;
}

export const H1_SERVER_DEFAULTS: H1ServerOptions = { keepAliveTimeoutMs: 65_000, headersTimeoutMs: 60_000, requestTimeoutMs: 300_000 };

/** How often timeouts are checked: they are tens of seconds long, so a second is precise enough. */
const SWEEP_MS = 1000;

function sweep(server: H1Server): void {
  server.clock = Date.now();
  for (const conn of server.connections) conn.sweep(server.clock);
}

export class H1Server {
  readonly handlers: H1Handlers;
  readonly connections = new Set<H1ServerConnection>();
  readonly keepAliveTimeoutMs: number;
  readonly keepAliveSeconds: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  draining = false;
  /** Date.now() as of the last sweep: requests stamp their start with it instead of reading the clock. */
  clock = Date.now();
  #sweep: NodeJS.Timeout | undefined;

  constructor(handlers: H1Handlers, options: H1ServerOptions = H1_SERVER_DEFAULTS) {
    this.handlers = handlers;
    this.keepAliveTimeoutMs = options.keepAliveTimeoutMs;
    this.keepAliveSeconds = Math.floor(options.keepAliveTimeoutMs / 1000);
    this.headersTimeoutMs = options.headersTimeoutMs;
    this.requestTimeoutMs = options.requestTimeoutMs;
  }

  /** A server's 'connection' (or an HTTPS server's HTTP/1.1 'secureConnection') listener. */
  readonly accept = (socket: Socket): void => {
    if (this.#sweep === undefined) {
      this.clock = Date.now();
      this.#sweep = setInterval(sweep, SWEEP_MS, this);
      this.#sweep.unref();
    }
    // A client that left during the TLS handshake's last step may be gone already ('close' emitted).
    if (this.draining || socket.destroyed) {
      socket.destroy();
      return;
    }
    this.connections.add(new H1ServerConnection(this, socket));
  };

  /** Idle connections close now; busy ones after the response in progress (which says so). */
  drain(): void {
    this.draining = true;
    for (const conn of this.connections) if (conn.idle) conn.end();
  }

  /** Every connection closes now (a drain's time ran out). */
  closeAll(): void {
    for (const conn of this.connections) conn.socket.destroy();
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }
}

// An HTTP/1.1 Upgrade (WebSocket, RFC 6455 §4) through one hop. Establishing it is a try like any
// other (an Attempt whose transport is a socket of its own rather than a pooled connection): it
// connects with the endpoint's connector (TCP, or mTLS with the same identity checks as the pools),
// sends the request head through node:http's client parser and reports one verdict to its owner,
// which balances, breaks, ejects and retries exactly as for requests. On 101 the response head goes
// to the client and both sockets are piped (backpressure through pipe(), half-closes propagated);
// any other status is relayed as a normal response and the connection closes. A tunnel is long-
// lived, so it may own bound handlers; the request path itself allocates none.
import http from 'node:http';
import type { Socket } from 'node:net';
import type { H1Response } from '../http/h1-downstream.ts';
import type { Duplex } from 'node:stream';
import type { buildConnector } from 'undici';
import type { Endpoint } from '../discovery/endpoint.ts';
import { forwardResponseHeaders } from '../http/forward-headers.ts';
import { classifyStatus, type Verdict } from '../resilience/classify.ts';
import { Attempt, type AttemptOwner } from './attempt.ts';
import type { Exchange } from './exchange.ts';

export type Connector = buildConnector.connector;

/** After one side of an open tunnel has closed, the other gets this long to flush and close. */
const LINGER_MS = 2000;
const STATUS_LINE = 'HTTP/1.1 101 Switching Protocols\r\n';
/** Header fields a plugin may have set are checked before they go on the wire raw. */
const UNSAFE_FIELD = /[\r\n\0]/;

export const BAD_UPGRADE_ERROR = 'ERR_MESH_BAD_UPGRADE';

class TunnelError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** The listener destroys a client's socket with this at the end of its drain. */
export const SHUTDOWN_ERROR = 'ERR_MESH_SHUTDOWN';


export class Tunnel extends Attempt {
  readonly #connect: Connector;
  readonly #idleMs: number;
  #upstream: Socket | undefined;
  #request: http.ClientRequest | undefined;
  #response: http.IncomingMessage | undefined;
  #verdict: Verdict = 'success';
  #reported = false;
  #open = false;
  #closedSockets = 0;
  #linger: NodeJS.Timeout | undefined;

  constructor(ex: Exchange, endpoint: Endpoint, owner: AttemptOwner, startedAt: number, connect: Connector, idleMs: number) {
    super(ex, endpoint, owner, startedAt);
    this.#connect = connect;
    this.#idleMs = idleMs;
  }

  start(): void {
    const ep = this.endpoint;
    this.#connect(
      { hostname: ep.instance.address, host: ep.authority, protocol: ep.instance.identity === undefined ? 'http:' : 'https:', port: String(ep.instance.port), localAddress: null },
      this.#onConnect,
    );
  }

  /** The exchange ended before the tunnel opened (client gone, deadline): drop the upstream side. */
  override cancel(reason: Error): void {
    super.cancel(reason); // keeps the reason: a caller's cancel is not held against the endpoint
    if (this.#open) return;
    this.#request?.destroy();
    this.#upstream?.destroy();
    this.#report('timeout', reason);
  }

  #destroy(why: string): void {
    const up = this.ex.upgrade!;
    up.end ??= why;
    this.#upstream?.destroy();
    up.socket.destroy();
  }

  #report(verdict: Verdict, err: (Error & { code?: string }) | undefined): void {
    if (this.#reported) return;
    this.#reported = true;
    if (verdict === 'connect-failure') this.sent = false;
    this.owner.settled(this, verdict, err);
  }

  // Whatever the connector reports is a failure before any byte of the request was sent: refused,
  // timed out, a failed TLS handshake or a server identity that is not the registered one.
  readonly #onConnect = (err: Error | null, socket: Socket | null): void => {
    if (err !== null || socket === null) {
      this.#report('connect-failure', err ?? new TunnelError('ECONNREFUSED', 'no socket'));
      return;
    }
    if (this.#reported || this.ex.done) {
      socket.destroy();
      return;
    }
    this.#upstream = socket;
    const ex = this.ex;
    let req: http.ClientRequest;
    try {
      // node:http writes the head (a flat header list, as received) and parses the answer: a 101
      // arrives as 'upgrade', anything else as 'response' with its body framing handled.
      req = http.request({ createConnection: () => socket, method: ex.method, path: ex.path, headers: ex.headers, setHost: false });
    } catch (e) {
      socket.destroy();
      this.rejectedRequest = true;
      this.#report('reset', e as Error);
      return;
    }
    this.#request = req;
    req.on('upgrade', this.#onUpgrade);
    req.on('response', this.#onResponse);
    req.on('error', this.#onRequestError);
    req.end();
  };

  readonly #onRequestError = (err: Error & { code?: string }): void => {
    if (this.#open) return;
    this.#upstream?.destroy();
    // An answer that never came, or one node:http could not parse: the upstream may have seen the upgrade.
    this.#report('reset', err);
  };

  readonly #onResponse = (res: http.IncomingMessage): void => {
    const ex = this.ex;
    if (ex.done) {
      this.#upstream?.destroy();
      return;
    }
    this.#response = res;
    this.#verdict = classifyStatus(res.statusCode ?? 502);
    ex.commit(res.statusCode ?? 502, res.statusMessage ?? '', res.rawHeaders, this.endpoint);
    res.on('data', this.#onData);
    res.on('end', this.#onEnd);
    res.on('error', this.#onRequestError);
  };

  readonly #onData = (chunk: Buffer): void => {
    if (!this.ex.write(chunk, this.#resume)) this.#response?.pause();
  };

  readonly #resume = (): void => {
    this.#response?.resume();
  };

  readonly #onEnd = (): void => {
    this.ex.end();
    this.#upstream?.destroy(); // not reused: the connection was opened for this upgrade
    this.#report(this.#verdict, undefined);
  };

  readonly #onUpgrade = (res: http.IncomingMessage, upstream: Duplex, head: Buffer): void => {
    const ex = this.ex;
    const up = ex.upgrade!;
    if (ex.done) {
      upstream.destroy();
      return;
    }
    const protocol = res.headers.upgrade;
    if (typeof protocol !== 'string' || protocol.toLowerCase() !== up.protocol) {
      upstream.destroy();
      this.#report('reset', new TunnelError(BAD_UPGRADE_ERROR, `upstream ${this.endpoint.authority} switched to ${JSON.stringify(protocol ?? null)} instead of ${up.protocol}`));
      return;
    }
    const headers = forwardResponseHeaders(res.rawHeaders, ex.echoRequestId);
    if (ex.echoRequestId) headers.push('x-request-id', ex.requestId);
    if (ex.hooks !== undefined) ex.hooks.onResponse(ex, 101, headers, false);
    headers.push('connection', 'Upgrade', 'upgrade', protocol);
    let text = STATUS_LINE;
    for (let i = 0; i < headers.length; i += 2) {
      if (!UNSAFE_FIELD.test(headers[i]) && !UNSAFE_FIELD.test(headers[i + 1])) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    }
    text += '\r\n';
    const client = up.socket as Socket;
    // From here the sockets are the tunnel's: the response and its connection let go of the client's.
    (ex.res as unknown as H1Response).detachSocket();
    ex.switched(this.endpoint);
    this.#open = true;
    this.#upstream = upstream as Socket;
    this.#report('success', undefined);
    client.write(text);
    if (head.length > 0) client.write(head);
    if (up.head.length > 0) upstream.write(up.head);
    this.#wire(client, upstream as Socket);
    ex.owner.tunnelOpened?.(ex);
  };

  #wire(client: Socket, upstream: Socket): void {
    client.on('error', this.#onSocketError);
    upstream.on('error', this.#onSocketError);
    client.on('close', this.#onSocketClose);
    upstream.on('close', this.#onSocketClose);
    // Any byte crossing the tunnel is read or written on the client's socket: one timer sees both ways.
    client.setTimeout(this.#idleMs);
    client.on('timeout', this.#onIdle);
    // pipe(): backpressure both ways, and a FIN from either side ends the other's writable side.
    client.pipe(upstream);
    upstream.pipe(client);
    // Either may have closed while the 101 was being relayed.
    if (client.closed) this.#onSocketClose();
    if (upstream.closed) this.#onSocketClose();
  }

  readonly #onSocketError = (err: Error & { code?: string }): void => {
    this.#destroy(err.code === SHUTDOWN_ERROR ? 'shutdown' : 'error');
  };

  readonly #onIdle = (): void => {
    this.#destroy('idle');
  };

  readonly #onSocketClose = (): void => {
    if (++this.#closedSockets === 1) {
      // One side is gone: the other may still flush what it holds (a close frame), then must go too.
      this.ex.upgrade!.end ??= 'closed';
      const client = this.ex.upgrade!.socket;
      const upstream = this.#upstream!;
      if (!client.destroyed) client.end();
      if (!upstream.destroyed) upstream.end();
      this.#linger = setTimeout(this.#onLinger, LINGER_MS);
      return;
    }
    if (this.#closedSockets === 2) {
      clearTimeout(this.#linger);
      (this.ex.upgrade!.socket as Socket).setTimeout(0);
      this.ex.tunnelClosed();
    }
  };

  readonly #onLinger = (): void => {
    this.#destroy('closed');
  };
}

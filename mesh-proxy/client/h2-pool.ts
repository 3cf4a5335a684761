// HTTP/2 toward one endpoint (h2 over TLS or mTLS, or h2c): a few sessions, each multiplexing up to
// the peer's SETTINGS_MAX_CONCURRENT_STREAMS, behind the same dispatch/handler interface undici's
// Pool offers, so Attempt and the rest of the client do not care which protocol carries a try.
// undici's own HTTP/2 client serialises non-idempotent requests and streamed bodies per connection
// (every gRPC call is a POST with a streamed body): a connection per call, which is what this
// module exists to avoid. It also relays response trailers (grpc-status) and sends RST_STREAM
// CANCEL when a try is cancelled, so the upstream sees the caller's cancellation.
import http2, { type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import type { Duplex } from 'node:stream';
import { attachStream, H2Request, H2_NOT_NEGOTIATED, H2_POOL_CLOSED, NGHTTP2_CANCEL, type H2DispatchOptions, type H2Handler, type RequestPool, type TaggedStream } from './h2-request.ts';
import { TransportError } from './transport-error.ts';

export { H2_NOT_NEGOTIATED, H2_POOL_CLOSED, H2_REFUSED, type H2DispatchOptions, type H2Handler } from './h2-request.ts';

/** Streams per session when the peer sets no limit (Node's default is 2³²−1). */
const DEFAULT_MAX_STREAMS = 100;
/** Flow-control windows: a 4 MB gRPC message should not wait on 64 KiB window updates. */
const STREAM_WINDOW = 1 << 20;
const SESSION_WINDOW = 8 << 20;

export interface H2PoolOptions {
  /** http: h2c with prior knowledge; https: TLS, `connect` makes the socket. */
  scheme: 'http' | 'https';
  host: string;
  port: number;
  maxSessions: number;
  connectTimeoutMs: number;
  /** A session with no stream open for this long is closed. */
  idleMs: number;
  /** Makes a TLS socket (ALPN h2) per session; called once per connection, so rotations apply. */
  connect?: () => Duplex;
}

class PooledSession {
  readonly session: ClientHttp2Session;
  active = 0;
  connected = false;
  closing = false;
  maxStreams = DEFAULT_MAX_STREAMS;
  idleTimer: NodeJS.Timeout | undefined;

  constructor(session: ClientHttp2Session) {
    this.session = session;
  }

  get available(): boolean {
    return this.connected && !this.closing && this.active < this.maxStreams;
  }
}

export class H2Pool implements RequestPool {
  readonly #o: H2PoolOptions;
  readonly #origin: string;
  readonly #sessions: PooledSession[] = [];
  readonly #queue: H2Request[] = [];
  #closed = false;

  constructor(o: H2PoolOptions) {
    this.#o = o;
    const host = o.host.includes(':') ? `[${o.host}]` : o.host;
    this.#origin = `${o.scheme}://${host}:${o.port}`;
  }

  /** undici Dispatcher's signature: the handler hears everything; the return value is unused. */
  dispatch(opts: H2DispatchOptions, handler: H2Handler): boolean {
    const req = new H2Request(this, opts, handler);
    handler.onConnect(req.abort);
    if (req.finished) return true;
    if (this.#closed) {
      req.fail(new TransportError(H2_POOL_CLOSED, 'the connection pool is closed'), NGHTTP2_CANCEL);
      return true;
    }
    const s = this.#pickSession();
    if (s !== undefined) this.#start(s, req);
    else {
      this.#queue.push(req);
      this.#openIfNeeded();
    }
    return true;
  }

  dequeue(req: H2Request): void {
    const i = this.#queue.indexOf(req);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  /** Graceful: open streams finish; queued requests fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const err = new TransportError(H2_POOL_CLOSED, 'the connection pool is closed');
    for (const req of this.#queue.splice(0)) req.fail(err, NGHTTP2_CANCEL);
    await Promise.all(
      this.#sessions.splice(0).map(
        (s) =>
          new Promise<void>((resolve) => {
            clearTimeout(s.idleTimer);
            if (s.session.closed || s.session.destroyed) resolve();
            else s.session.close(resolve);
          }),
      ),
    );
  }

  #pickSession(): PooledSession | undefined {
    // The least-loaded session that can take a stream: spreads streams once more sessions are open.
    let best: PooledSession | undefined;
    for (const s of this.#sessions) if (s.available && (best === undefined || s.active < best.active)) best = s;
    return best;
  }

  /** One more session when every one is full, and none is still connecting (it may have room). */
  #openIfNeeded(): void {
    if (this.#sessions.length >= this.#o.maxSessions) return;
    for (const s of this.#sessions) if (!s.connected && !s.closing) return;
    this.#open();
  }

  #open(): void {
    const o = this.#o;
    const session = http2.connect(this.#origin, {
      ...(o.connect !== undefined ? { createConnection: o.connect } : {}),
      settings: { enablePush: false, initialWindowSize: STREAM_WINDOW },
      // Request headers are not re-indexed per stream beyond this (a bound on our memory, not theirs).
      maxSessionMemory: 64,
    });
    const s = new PooledSession(session);
    this.#sessions.push(s);
    const connectTimer = setTimeout(() => {
      session.destroy(new TransportError('UND_ERR_CONNECT_TIMEOUT', `connecting to ${o.host}:${o.port} timed out after ${o.connectTimeoutMs} ms`));
    }, o.connectTimeoutMs);
    session.once('connect', () => {
      clearTimeout(connectTimer);
      const socket = session.socket as { alpnProtocol?: string | false } | undefined;
      if (o.scheme === 'https' && socket?.alpnProtocol !== 'h2') {
        session.destroy(new TransportError(H2_NOT_NEGOTIATED, `upstream ${o.host}:${o.port} did not negotiate HTTP/2 by ALPN (got ${String(socket?.alpnProtocol ?? 'none')})`));
        return;
      }
      s.connected = true;
      session.setLocalWindowSize(SESSION_WINDOW);
      this.#drain();
    });
    session.on('remoteSettings', (settings) => {
      s.maxStreams = Math.min(settings.maxConcurrentStreams ?? DEFAULT_MAX_STREAMS, 1000) || 1;
      this.#drain();
    });
    session.on('goaway', () => {
      s.closing = true;
      this.#forget(s);
    });
    session.on('error', (err: Error & { code?: string }) => {
      clearTimeout(connectTimer);
      // Before the connection is up nothing was sent: every request waiting for it fails as a
      // connect failure (safe to retry elsewhere), unless another session can take it.
      if (!s.connected) this.#failQueued(s, err);
    });
    session.once('close', () => {
      clearTimeout(connectTimer);
      clearTimeout(s.idleTimer);
      s.closing = true;
      this.#forget(s);
      if (!s.connected) this.#failQueued(s, new TransportError('ECONNRESET', `connection to ${o.host}:${o.port} closed before HTTP/2 was set up`));
      else this.#drain();
    });
  }

  #failQueued(s: PooledSession, err: Error): void {
    this.#forget(s);
    // Requests beyond what the remaining sessions can start wait for them; the rest fail now.
    if (this.#sessions.length > 0) return;
    for (const req of this.#queue.splice(0)) req.fail(err, NGHTTP2_CANCEL);
  }

  #forget(s: PooledSession): void {
    const i = this.#sessions.indexOf(s);
    if (i >= 0) this.#sessions.splice(i, 1);
  }

  #drain(): void {
    while (this.#queue.length > 0) {
      const s = this.#pickSession();
      if (s === undefined) {
        this.#openIfNeeded();
        return;
      }
      this.#start(s, this.#queue.shift()!);
    }
  }

  #start(s: PooledSession, req: H2Request): void {
    const o = req.opts;
    const headers: OutgoingHttpHeaders = { ':method': o.method, ':path': o.path, ':scheme': this.#o.scheme };
    const list = o.headers;
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i];
      const value = list[i + 1];
      if (name === 'host') headers[':authority'] = value;
      else if (CONNECTION_SPECIFIC.has(name) || (name === 'te' && value !== 'trailers')) continue;
      else {
        const prev = headers[name];
        if (prev === undefined) headers[name] = value;
        else if (name === 'cookie') headers[name] = `${prev as string}; ${value}`;
        else headers[name] = Array.isArray(prev) ? [...prev, value] : [prev as string, value];
      }
    }
    const body = o.body;
    let stream: TaggedStream;
    try {
      stream = s.session.request(headers, { endStream: body === null }) as TaggedStream;
    } catch (err) {
      // Node refuses some header values (ERR_HTTP2_INVALID_HEADER_VALUE…): the request's fault.
      req.fail(Object.assign(err as Error, { code: 'UND_ERR_INVALID_ARG' }), NGHTTP2_CANCEL);
      return;
    }
    s.active++;
    clearTimeout(s.idleTimer);
    req.session = s;
    attachStream(req, stream);
  }

  /** A stream closed: its session has room again, or goes idle. */
  streamClosed(req: H2Request): void {
    const s = req.session as PooledSession;
    s.active--;
    if (s.active === 0 && !s.closing) {
      s.idleTimer = setTimeout(closeIdle, this.#o.idleMs, s, this);
      s.idleTimer.unref();
    }
    this.#drain();
  }

  retire(s: PooledSession): void {
    if (s.active > 0 || s.closing) return;
    s.closing = true;
    this.#forget(s);
    s.session.close();
  }
}

function closeIdle(s: PooledSession, pool: H2Pool): void {
  pool.retire(s);
}

/** RFC 9113 §8.2.2: connection-specific fields are malformed in HTTP/2 (Node refuses them). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

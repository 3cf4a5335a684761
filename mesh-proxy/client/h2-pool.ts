// HTTP/2 toward one endpoint (h2 over TLS or mTLS, or h2c): a few sessions, each multiplexing up to
// the peer's SETTINGS_MAX_CONCURRENT_STREAMS, behind the same dispatch/handler interface undici's
// Pool offers, so Attempt and the rest of the client do not care which protocol carries a try.
// undici's own HTTP/2 client serialises non-idempotent requests and streamed bodies per connection
// (every gRPC call is a POST with a streamed body): a connection per call, which is what this
// module exists to avoid. It also relays response trailers (grpc-status) and sends RST_STREAM
// CANCEL when a try is cancelled, so the upstream sees the caller's cancellation.
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Duplex, Readable } from 'node:stream';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;
const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;
/** Streams per session when the peer sets no limit (Node's default is 2³²−1). */
const DEFAULT_MAX_STREAMS = 100;
/** Flow-control windows: a 4 MB gRPC message should not wait on 64 KiB window updates. */
const STREAM_WINDOW = 1 << 20;
const SESSION_WINDOW = 8 << 20;

/** Codes for failures this module detects itself; classify.ts maps them. */
export const H2_REFUSED = 'ERR_MESH_H2_REFUSED_STREAM';
export const H2_NOT_NEGOTIATED = 'ERR_MESH_H2_NOT_NEGOTIATED';
export const H2_POOL_CLOSED = 'ERR_MESH_H2_POOL_CLOSED';

export class H2Error extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** The undici dispatch handler subset Attempt implements; onComplete gets the response trailers. */
export interface H2Handler {
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string, endStream: boolean): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: IncomingHttpHeaders | null): void;
  onError(err: Error): void;
}

export interface H2DispatchOptions {
  path: string;
  method: string;
  /** Flat [name, value, …] list, lower-case names, as the proxy builds them (host included). */
  headers: string[];
  body: Buffer | Readable | null;
  headersTimeout: number;
  bodyTimeout: number;
}

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

const kRequest = Symbol('meshgate.h2request');
type TaggedStream = ClientHttp2Stream & { [kRequest]?: H2Request };

/** One request on the pool: queued, then a stream. */
class H2Request {
  readonly opts: H2DispatchOptions;
  readonly handler: H2Handler;
  readonly pool: H2Pool;
  stream: TaggedStream | undefined;
  session: PooledSession | undefined;
  responded = false;
  finished = false;
  trailers: IncomingHttpHeaders | null = null;
  error: (Error & { code?: string }) | undefined;
  readonly abort: (err?: Error) => void;
  readonly resume: () => void;

  constructor(pool: H2Pool, opts: H2DispatchOptions, handler: H2Handler) {
    this.pool = pool;
    this.opts = opts;
    this.handler = handler;
    this.abort = (err) => this.fail(err ?? new H2Error('UND_ERR_ABORTED', 'request aborted'), NGHTTP2_CANCEL);
    this.resume = () => this.stream?.resume();
  }

  /** Ends the request with an error (once) and resets its stream. */
  fail(err: Error, rstCode: number): void {
    if (this.finished) return;
    this.finished = true;
    const stream = this.stream;
    if (stream !== undefined && !stream.closed && !stream.destroyed) {
      stream.removeListener('data', onStreamData);
      stream.close(rstCode);
    } else if (stream === undefined) this.pool.dequeue(this);
    const body = this.opts.body;
    if (body !== null && !Buffer.isBuffer(body) && stream !== undefined) body.unpipe(stream);
    this.handler.onError(err);
  }
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

export class H2Pool {
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
      req.fail(new H2Error(H2_POOL_CLOSED, 'the connection pool is closed'), NGHTTP2_CANCEL);
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
    const err = new H2Error(H2_POOL_CLOSED, 'the connection pool is closed');
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
      session.destroy(new H2Error('UND_ERR_CONNECT_TIMEOUT', `connecting to ${o.host}:${o.port} timed out after ${o.connectTimeoutMs} ms`));
    }, o.connectTimeoutMs);
    session.once('connect', () => {
      clearTimeout(connectTimer);
      const socket = session.socket as { alpnProtocol?: string | false } | undefined;
      if (o.scheme === 'https' && socket?.alpnProtocol !== 'h2') {
        session.destroy(new H2Error(H2_NOT_NEGOTIATED, `upstream ${o.host}:${o.port} did not negotiate HTTP/2 by ALPN (got ${String(socket?.alpnProtocol ?? 'none')})`));
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
      if (!s.connected) this.#failQueued(s, new H2Error('ECONNRESET', `connection to ${o.host}:${o.port} closed before HTTP/2 was set up`));
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
    req.stream = stream;
    req.session = s;
    stream[kRequest] = req;
    stream.setTimeout(o.headersTimeout, onStreamTimeout);
    stream.on('response', onStreamResponse);
    stream.on('trailers', onStreamTrailers);
    stream.on('data', onStreamData);
    stream.on('end', onStreamEnd);
    stream.on('error', onStreamError);
    stream.on('close', onStreamClose);
    if (body === null) return;
    if (Buffer.isBuffer(body)) stream.end(body);
    else {
      body.on('error', onBodyError.bind(req));
      body.pipe(stream);
    }
  }

  /** A stream closed: its session has room again, or goes idle. */
  streamClosed(req: H2Request): void {
    const s = req.session!;
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

// Stream listeners: registered once per stream with `this` bound to it (no per-request closures).

function onStreamResponse(this: TaggedStream, headers: IncomingHttpHeaders, flags: number): void {
  const req = this[kRequest]!;
  if (req.finished) return;
  req.responded = true;
  this.setTimeout(req.opts.bodyTimeout, onStreamTimeout);
  const raw: Buffer[] = [];
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const one of v) raw.push(Buffer.from(name, 'latin1'), Buffer.from(one, 'latin1'));
    else raw.push(Buffer.from(name, 'latin1'), Buffer.from(String(v), 'latin1'));
  }
  // A HEADERS frame that ends the stream is a gRPC trailers-only reply: relayed as one too.
  if (req.handler.onHeaders(Number(headers[':status']), raw, req.resume, '', (flags & END_STREAM) !== 0) === false) this.pause();
}

function onStreamTrailers(this: TaggedStream, trailers: IncomingHttpHeaders): void {
  const req = this[kRequest]!;
  req.trailers = trailers;
}

function onStreamData(this: TaggedStream, chunk: Buffer): void {
  const req = this[kRequest]!;
  if (req.finished) return;
  if (req.handler.onData(chunk) === false) this.pause();
}

function onStreamEnd(this: TaggedStream): void {
  const req = this[kRequest]!;
  if (req.finished || !req.responded) return;
  req.finished = true;
  req.handler.onComplete(req.trailers);
}

function onStreamError(this: TaggedStream, err: Error & { code?: string }): void {
  const req = this[kRequest]!;
  req.error ??= err;
}

function onStreamClose(this: TaggedStream): void {
  const req = this[kRequest]!;
  req.pool.streamClosed(req);
  if (req.finished) return;
  if (!req.responded && (this.rstCode === NGHTTP2_REFUSED_STREAM || req.error?.code === 'ERR_HTTP2_GOAWAY_SESSION')) {
    // The peer did not process the stream (RFC 9113 §8.7): as safe to retry as a refused connection.
    req.fail(new H2Error(H2_REFUSED, `upstream refused the stream (${req.error?.code ?? `RST_STREAM ${this.rstCode}`})`), NGHTTP2_CANCEL);
    return;
  }
  if (req.error !== undefined && req.error.code !== 'ERR_HTTP2_STREAM_ERROR' && !req.responded && !isConnectionLevel(req.error)) {
    req.fail(req.error, NGHTTP2_CANCEL);
    return;
  }
  const why = req.responded ? 'during the response' : 'before responding';
  req.fail(new H2Error('ECONNRESET', `upstream reset the HTTP/2 stream ${why} (code ${this.rstCode ?? 0}${req.error ? `, ${req.error.code ?? req.error.message}` : ''})`), NGHTTP2_CANCEL);
}

function isConnectionLevel(err: Error & { code?: string }): boolean {
  return err.code === 'ERR_HTTP2_SESSION_ERROR' || err.code === 'ECONNRESET';
}

function onStreamTimeout(this: TaggedStream): void {
  const req = this[kRequest]!;
  req.fail(
    req.responded
      ? new H2Error('UND_ERR_BODY_TIMEOUT', `no response data for ${req.opts.bodyTimeout} ms`)
      : new H2Error('UND_ERR_HEADERS_TIMEOUT', `no response headers within ${req.opts.headersTimeout} ms`),
    NGHTTP2_CANCEL,
  );
}

function onBodyError(this: H2Request, err: Error): void {
  // The caller's body failed (it went away, or a limit cut it): the exchange already knows.
  this.fail(Object.assign(new Error(`request body failed: ${err.message}`), { code: 'UND_ERR_ABORTED' }), NGHTTP2_CANCEL);
}

/** Statuses this module reports that nothing reached the upstream (classify.ts). */
export function isH2ConnectFailure(code: string | undefined): boolean {
  return code === H2_REFUSED || code === H2_NOT_NEGOTIATED;
}

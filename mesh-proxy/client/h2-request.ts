// One request on an HTTP/2 session (h2-pool.ts): queued until a session has room, then a stream
// whose events are handled by module-level listeners bound to it (no per-event closures), reported
// to an undici-style handler. Cancelling it resets the stream with CANCEL, so the upstream sees it.
import http2, { type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { Readable } from 'node:stream';
import type { H1DispatchOptions } from './h1-request.ts';
import { TransportError } from './transport-error.ts';

export const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;
const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;

/** Codes for failures this module detects itself; classify.ts maps them. */
export const H2_REFUSED = 'ERR_MESH_H2_REFUSED_STREAM';
export const H2_NOT_NEGOTIATED = 'ERR_MESH_H2_NOT_NEGOTIATED';
export const H2_POOL_CLOSED = 'ERR_MESH_H2_POOL_CLOSED';

/** The undici dispatch handler subset Attempt implements; onComplete gets the response trailers. */
export interface H2Handler {
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void, statusText: string, endStream: boolean): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: IncomingHttpHeaders | null): void;
  onError(err: Error): void;
}

/** A request as either pool takes it (h1-request.ts defines the shape once). */
export type H2DispatchOptions = H1DispatchOptions;

/** What a request needs of its pool. */
export interface RequestPool {
  dequeue(req: H2Request): void;
  streamClosed(req: H2Request): void;
}

const kRequest = Symbol('meshgate.h2request');
export type TaggedStream = ClientHttp2Stream & { [kRequest]?: H2Request };

/** One request on the pool: queued, then a stream. */
export class H2Request {
  readonly opts: H2DispatchOptions;
  readonly handler: H2Handler;
  readonly pool: RequestPool;
  stream: TaggedStream | undefined;
  /** The pool's session object this request's stream runs on. */
  session: object | undefined;
  responded = false;
  finished = false;
  trailers: IncomingHttpHeaders | null = null;
  error: (Error & { code?: string }) | undefined;
  readonly abort: (err?: Error) => void;
  readonly resume: () => void;

  constructor(pool: RequestPool, opts: H2DispatchOptions, handler: H2Handler) {
    this.pool = pool;
    this.opts = opts;
    this.handler = handler;
    this.abort = (err) => this.fail(err ?? new TransportError('UND_ERR_ABORTED', 'request aborted'), NGHTTP2_CANCEL);
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

/** Wires a started stream to its request. */
export function attachStream(req: H2Request, stream: TaggedStream): void {
  const o = req.opts;
  req.stream = stream;
  stream[kRequest] = req;
  stream.setTimeout(o.headersTimeout, onStreamTimeout);
  stream.on('response', onStreamResponse);
  stream.on('trailers', onStreamTrailers);
  stream.on('data', onStreamData);
  stream.on('end', onStreamEnd);
  stream.on('error', onStreamError);
  stream.on('close', onStreamClose);
  const body = o.body;
  if (body === null) return;
  if (Buffer.isBuffer(body)) stream.end(body);
  else {
    body.on('error', onBodyError.bind(req));
    (body as Readable).pipe(stream);
  }
}

// Stream listeners: registered once per stream with `this` bound to it (no per-request closures).

function onStreamResponse(this: TaggedStream, headers: IncomingHttpHeaders, flags: number): void {
  const req = this[kRequest]!;
  if (req.finished) return;
  req.responded = true;
  this.setTimeout(req.opts.bodyTimeout, onStreamTimeout);
  const raw: string[] = [];
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const one of v) raw.push(name, one);
    else raw.push(name, String(v));
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
    req.fail(new TransportError(H2_REFUSED, `upstream refused the stream (${req.error?.code ?? `RST_STREAM ${this.rstCode}`})`), NGHTTP2_CANCEL);
    return;
  }
  if (req.error !== undefined && req.error.code !== 'ERR_HTTP2_STREAM_ERROR' && !req.responded && !isConnectionLevel(req.error)) {
    req.fail(req.error, NGHTTP2_CANCEL);
    return;
  }
  const why = req.responded ? 'during the response' : 'before responding';
  req.fail(new TransportError('ECONNRESET', `upstream reset the HTTP/2 stream ${why} (code ${this.rstCode ?? 0}${req.error ? `, ${req.error.code ?? req.error.message}` : ''})`), NGHTTP2_CANCEL);
}

function isConnectionLevel(err: Error & { code?: string }): boolean {
  return err.code === 'ERR_HTTP2_SESSION_ERROR' || err.code === 'ECONNRESET';
}

function onStreamTimeout(this: TaggedStream): void {
  const req = this[kRequest]!;
  req.fail(
    req.responded
      ? new TransportError('UND_ERR_BODY_TIMEOUT', `no response data for ${req.opts.bodyTimeout} ms`)
      : new TransportError('UND_ERR_HEADERS_TIMEOUT', `no response headers within ${req.opts.headersTimeout} ms`),
    NGHTTP2_CANCEL,
  );
}

function onBodyError(this: H2Request, err: Error): void {
  // The caller's body failed (it went away, or a limit cut it): the exchange already knows.
  this.fail(Object.assign(new Error(`request body failed: ${err.message}`), { code: 'UND_ERR_ABORTED' }), NGHTTP2_CANCEL);
}

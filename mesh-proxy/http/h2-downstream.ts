// HTTP/2 requests on Node's core `stream` API instead of its compatibility layer. The layer builds a
// request and a response object per stream (each a stream with its own state), validates and
// copies every header through setHeader(), and always ends a response with a frame of its own;
// measured with h2load, a forwarder on the stream API carried ~20% more than one on the layer. These
// two classes are the part of IncomingMessage and ServerResponse the proxy uses, over one stream.
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { hopByHop } from './forward-headers.ts';
import { addHeader } from './header-lists.ts';

/** What an exchange reads of its request, from node:http or from an HTTP/2 stream. */
export interface DownstreamRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly socket: Socket;
  readonly httpVersionMajor: number;
}

/** The server's own answer to a request it refused (h1-refusals.ts's Refusal is one). */
export interface ServerRefusal {
  readonly status: number;
  readonly code: string;
}

/** What an exchange writes of its response, to node:http or to an HTTP/2 stream. */
export interface DownstreamResponse {
  readonly headersSent: boolean;
  /**
   * Set when the server refused the request before the exchange could answer (a body cut short by
   * bad framing): what the client got, for the exchange's record.
   */
  readonly refusedWith?: ServerRefusal | undefined;
  shouldKeepAlive: boolean;
  writeHead(status: number, headers: OutgoingHttpHeaders | string[]): unknown;
  writeHead(status: number, statusText: string, headers: OutgoingHttpHeaders | string[]): unknown;
  write(chunk: Buffer): boolean;
  end(body?: string | Buffer): unknown;
  addTrailers(trailers: Record<string, string | string[]>): void;
  destroy(): unknown;
  on(event: 'close', listener: (this: never) => void): unknown;
  once(event: 'drain', listener: () => void): unknown;
}

export class H2Request implements DownstreamRequest {
  readonly stream: ServerHttp2Stream;
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly socket: Socket;
  readonly httpVersionMajor = 2;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]) {
    this.stream = stream;
    this.headers = headers;
    this.rawHeaders = rawHeaders;
    this.method = (headers[':method'] as string | undefined) ?? 'GET';
    this.url = (headers[':path'] as string | undefined) ?? '/';
    this.socket = stream.session!.socket as Socket;
  }

  #body: H2Body | undefined;

  /** The request body, read from the stream (made on first use: most requests have none). */
  body(): Readable {
    return (this.#body ??= new H2Body(this.stream));
  }
}

const kBody = Symbol('meshgate.h2body');
type BodySource = ServerHttp2Stream & { [kBody]?: H2Body };

function onBodyData(this: BodySource, chunk: Buffer): void {
  if (!this[kBody]!.push(chunk)) this.pause();
}

function onBodyEnd(this: BodySource): void {
  this[kBody]!.push(null);
}

/**
 * The stream's readable side as a Readable of its own. The stream cannot be handed out itself: a
 * consumer that destroys its body when done (undici does, after sending it) would reset the stream,
 * and with it the response still to come.
 */
class H2Body extends Readable {
  readonly #stream: BodySource;

  constructor(stream: ServerHttp2Stream) {
    super();
    this.#stream = stream as BodySource;
    this.#stream[kBody] = this;
    stream.on('data', onBodyData);
    // 'on', not 'once': the event comes once anyway, and once() wraps the listener in a closure.
    stream.on('end', onBodyEnd);
  }

  override _read(): void {
    this.#stream.resume();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // The response side lives on: stop reading (flow control then holds the client back).
    this.#stream.off('data', onBodyData);
    this.#stream.pause();
    callback(err);
  }
}

const kResponse = Symbol('meshgate.h2response');
type TaggedStream = ServerHttp2Stream & { [kResponse]?: H2Response };

// Registered with `this` bound to the stream by EventEmitter: no per-request closure.
function onStreamClose(this: TaggedStream): void {
  const res = this[kResponse];
  if (res?.onClose !== undefined) res.onClose.call(res as never);
}

function onWantTrailers(this: TaggedStream): void {
  const res = this[kResponse];
  // No trailers came: Node ends the stream with an empty DATA frame.
  if (!this.destroyed) this.sendTrailers(res?.trailers ?? {});
}

export class H2Response implements DownstreamResponse {
  readonly stream: ServerHttp2Stream;
  /**
   * The response may end with trailers: the client sent `te: trailers` (every gRPC client does), or
   * the upstream speaks HTTP/2 (whose responses may carry trailers unannounced). Otherwise the
   * response ends with its last DATA frame, not with an empty frame of its own.
   */
  trailersWanted: boolean;
  trailers: Record<string, string | string[]> | undefined;
  onClose: ((this: never) => void) | undefined;
  // HTTP/2 has no keep-alive to turn off: the listener's drain sends GOAWAY instead.
  shouldKeepAlive = true;

  constructor(stream: ServerHttp2Stream, trailersWanted: boolean) {
    this.stream = stream;
    this.trailersWanted = trailersWanted;
    (stream as TaggedStream)[kResponse] = this;
    stream.on('close', onStreamClose);
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  writeHead(status: number, a: string | OutgoingHttpHeaders | string[], b?: OutgoingHttpHeaders | string[]): this {
    // HTTP/2 has no reason phrase.
    const headers = typeof a === 'string' ? b! : a;
    if (this.stream.destroyed || this.stream.headersSent) return this;
    this.stream.respond(toH2Headers(status, headers), this.trailersWanted ? { waitForTrailers: true } : undefined);
    if (this.trailersWanted) this.stream.on('wantTrailers', onWantTrailers);
    return this;
  }

  /**
   * Sends a proxied response's headers; true when they also ended the stream. `endStream`: the
   * upstream's reply was only headers (a gRPC trailers-only reply, whose client reads the status
   * only from a HEADERS frame that ends the stream). `fromH2`: the upstream speaks HTTP/2, so
   * trailers may follow unannounced.
   */
  start(status: number, headers: string[], endStream: boolean, fromH2: boolean): boolean {
    if (endStream) {
      this.respondAndEnd(status, headers);
      return true;
    }
    if (fromH2) this.trailersWanted = true;
    this.writeHead(status, headers);
    return false;
  }

  /** A response that is only headers: one HEADERS frame that ends the stream (a gRPC trailers-only reply). */
  respondAndEnd(status: number, headers: OutgoingHttpHeaders | string[]): void {
    if (!this.stream.destroyed && !this.stream.headersSent) this.stream.respond(toH2Headers(status, headers), { endStream: true });
  }

  write(chunk: Buffer): boolean {
    return this.stream.destroyed ? true : this.stream.write(chunk);
  }

  end(body?: string | Buffer): this {
    if (this.stream.destroyed) return this;
    if (!this.stream.headersSent) this.writeHead(200, []);
    if (body === undefined) this.stream.end();
    else this.stream.end(body);
    return this;
  }

  addTrailers(trailers: Record<string, string | string[]>): void {
    this.trailers = trailers;
  }

  destroy(): this {
    this.stream.destroy();
    return this;
  }

  on(_event: 'close', listener: (this: never) => void): this {
    this.onClose = listener;
    return this;
  }

  once(event: 'drain', listener: () => void): this {
    this.stream.once(event, listener);
    return this;
  }
}

/**
 * Response headers as node:http2 takes them. A flat list is a proxied response's, already without
 * hop-by-hop fields (forwardResponseHeaders); an object is a local reply's, whose extra headers (a
 * plugin's) may name one, which HTTP/2 forbids.
 */
function toH2Headers(status: number, headers: OutgoingHttpHeaders | string[]): OutgoingHttpHeaders {
  const out: Record<string, string | string[] | number> = { ':status': status };
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) addHeader(out, headers[i].toLowerCase(), headers[i + 1]);
    return out;
  }
  for (const name in headers) {
    const v = headers[name];
    if (v !== undefined && !hopByHop(name)) out[name] = v;
  }
  return out;
}

/**
 * Starts a proxied response on Node's compatibility layer (HTTP/2 where the stream API could not be
 * set up); true when the headers ended the stream. The layer always sends the end of a response as
 * a frame of its own, so a trailers-only reply goes out on its stream directly.
 */
export function compatStart(res: ServerResponse, status: number, headers: string[], endStream: boolean): boolean {
  const stream = (res as ServerResponse & { stream?: ServerHttp2Stream }).stream;
  if (endStream && stream !== undefined) {
    stream.respond(toH2Headers(status, headers), { endStream: true });
    return true;
  }
  res.writeHead(status, headers);
  return false;
}

// HTTP/1.1 requests as meshgate's own server (h1-server.ts) hands them over: the part of
// IncomingMessage and ServerResponse the proxy uses, over one connection. A response's head is one
// latin1 string written with its first body bytes (corked until the tick ends, as node:http does),
// so a small proxied response leaves in one write.
import { STATUS_CODES, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { DownstreamRequest, DownstreamResponse, ServerRefusal } from './h2-downstream.ts';

/** What a request and its response need of the connection they arrived on (h1-server.ts). */
export interface H1ConnectionSide {
  readonly socket: Socket;
  /** Starts reading the socket again after a body's consumer caught up. */
  resumeReading(): void;
  /** The response ended: the connection serves the next request or closes. */
  responseDone(res: H1Response): void;
  /** The socket was handed to a tunnel: the connection lets go of it. */
  detach(): void;
  /** A request's seconds of keep-alive to announce (0: none). */
  readonly keepAliveSeconds: number;
  readonly draining: boolean;
}

// Fields of which node:http keeps only the first (its `matchKnownFields`): a second one is noise.
const FIRST_WINS = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after',
  'server', 'user-agent',
]);

export class H1Request implements DownstreamRequest {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly conn: H1ConnectionSide;
  /** The whole message (head and body) has been read. */
  complete = false;
  /** The response ended before the body was read: what is left of it is read and dropped. */
  dumping = false;
  /** Its response has ended. */
  answered = false;
  /** The client sent `Expect: 100-continue` and waits for the interim response before the body. */
  expectsContinue = false;
  #headers: IncomingHttpHeaders | undefined;
  #body: H1Body | undefined;

  constructor(conn: H1ConnectionSide, method: string, url: string, rawHeaders: string[], major: number, minor: number) {
    this.conn = conn;
    this.method = method;
    this.url = url;
    this.rawHeaders = rawHeaders;
    this.httpVersionMajor = major;
    this.httpVersionMinor = minor;
  }

  get socket(): Socket {
    return this.conn.socket;
  }

  /** Headers by lower-case name, built on first use (the proxy path reads the raw list). */
  get headers(): IncomingHttpHeaders {
    if (this.#headers !== undefined) return this.#headers;
    // A plain object, as node:http's (a "__proto__" field holds a string, which sets no prototype).
    const out: Record<string, string | string[]> = {};
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toLowerCase();
      const value = raw[i + 1];
      const prev = out[name];
      if (prev === undefined) out[name] = name === 'set-cookie' ? [value] : value;
      else if (Array.isArray(prev)) prev.push(value);
      else if (name === 'cookie') out[name] = `${prev}; ${value}`;
      else if (!FIRST_WINS.has(name)) out[name] = `${prev}, ${value}`;
    }
    return (this.#headers = out);
  }

  /** Why the body cannot be read to its end (the client left, or its framing broke). */
  #error: Error | undefined;

  /** The request body (made on first use, or by the first body bytes to arrive). */
  body(): Readable {
    if (this.#body === undefined) {
      this.#body = new H1Body(this);
      if (this.complete) this.#body.push(null);
      else if (this.#error !== undefined) this.#body.destroy(this.#error);
    }
    return this.#body;
  }

  /** Body bytes from the parser; false asks the connection to stop reading until the consumer catches up. */
  received(chunk: Buffer): boolean {
    if (this.dumping) return true;
    return this.body().push(chunk);
  }

  /** The message ended. */
  ended(): void {
    this.complete = true;
    if (this.#body !== undefined && !this.dumping) this.#body.push(null);
  }

  /**
   * The connection closed, or its bytes stopped making sense, before the body was complete: the
   * body fails (now, or when it is asked for), and the connection is the caller's to handle.
   */
  aborted(err: Error): void {
    if (this.complete) return;
    this.#error = err;
    this.dumping = true;
    if (this.#body !== undefined && !this.#body.destroyed) this.#body.destroy(err);
  }

  /** The response is done while the body is still coming: the rest is dropped, not buffered. */
  dump(): void {
    this.dumping = true;
    if (this.#body !== undefined && !this.#body.destroyed) this.#body.destroy();
  }
}

/** A request body, fed by the parser. */
class H1Body extends Readable {
  readonly #req: H1Request;

  constructor(req: H1Request) {
    super();
    this.#req = req;
  }

  override _read(): void {
    this.#req.conn.resumeReading();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // As node:http does: a consumer that gives up on a body still arriving gives up on the connection
    // (its remaining bytes cannot be skipped reliably without reading them all).
    const req = this.#req;
    if (!req.complete && !req.dumping) {
      req.dumping = true;
      req.conn.socket.destroy();
    }
    // As node:http's IncomingMessage: the error is an event only for a consumer listening for it
    // (one that is not would take the process down with an unhandled 'error').
    callback(this.listenerCount('error') > 0 ? err : null);
  }
}

/**
 * A field that could split the response is dropped, never written: a name that is not a token, a
 * value with a control character or one above \xff (written as latin1, \u010d\u010a would go out
 * as CR LF). The same rules as node:http's and the upstream client's (h1-wire.ts).
 */
const BAD_NAME = /[^!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const BAD_REASON = /[^\t\x20-\x7e\x80-\xff]/;
const CLOSE_OPTION = /(?:^|,)\s*close\s*(?:,|$)/i;
const CHUNKED_LAST = /(?:^|,)\s*chunked\s*$/i;
const KEEP_ALIVE = 'connection: keep-alive\r\n';
/** Bodies up to this size are copied behind their head rather than written beside it. */
const MERGE_LIMIT = 16 * 1024;
const CLOSE = 'connection: close\r\n';

let dateSecond = 0;
let dateField = '';
/** The Date field, formatted once a second. */
export function dateHeader(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateField = `date: ${new Date(now).toUTCString()}\r\n`;
  }
  return dateField;
}

function uncork(socket: Socket): void {
  socket.uncork();
}

// Bits of what a head says about itself, found while it is written.
const HAS_LENGTH = 1;
const HAS_TE = 2;
const HAS_CLOSE = 4;
const HAS_DATE = 8;
const HAS_CHUNKED = 16;

export class H1Response implements DownstreamResponse {
  readonly req: H1Request;
  /** Cleared to close the connection after this response. */
  shouldKeepAlive: boolean;
  onClose: ((this: never) => void) | undefined;
  refusedWith: ServerRefusal | undefined = undefined;
  /** The head, written with the first body bytes. */
  #head = '';
  #headersSent = false;
  #written = false;
  #chunked = false;
  /** HEAD, 1xx, 204, 304: a head only. */
  #noBody = false;
  #finished = false;
  #trailers: Record<string, string | string[]> | undefined;
  #drain: (() => void) | undefined;

  constructor(req: H1Request, keepAlive: boolean) {
    this.req = req;
    this.shouldKeepAlive = keepAlive;
  }

  get headersSent(): boolean {
    return this.#headersSent;
  }

  get finished(): boolean {
    return this.#finished;
  }

  writeHead(status: number, a?: string | OutgoingHttpHeaders | string[], b?: OutgoingHttpHeaders | string[]): this {
    if (this.#headersSent || this.#finished) return this;
    const reason = typeof a === 'string' ? a : STATUS_CODES[status] ?? 'Unknown';
    const headers = typeof a === 'string' ? b : a;
    let head = `HTTP/1.1 ${status} ${BAD_REASON.test(reason) ? 'Unknown' : reason}\r\n`;
    let seen = 0;
    if (Array.isArray(headers)) {
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i];
        const value = headers[i + 1];
        if (BAD_NAME.test(name) || BAD_VALUE.test(value)) continue;
        seen |= fieldBits(name, value);
        head += `${name}: ${value}\r\n`;
      }
    } else if (headers !== undefined) {
      for (const name in headers) {
        const v = headers[name];
        if (v === undefined || BAD_NAME.test(name)) continue;
        if (Array.isArray(v)) {
          for (const one of v) {
            if (BAD_VALUE.test(one)) continue;
            seen |= fieldBits(name, one);
            head += `${name}: ${one}\r\n`;
          }
        } else {
          const value = String(v);
          if (BAD_VALUE.test(value)) continue;
          seen |= fieldBits(name, value);
          head += `${name}: ${value}\r\n`;
        }
      }
    }
    const req = this.req;
    const h11 = req.httpVersionMinor >= 1 || req.httpVersionMajor > 1;
    this.#noBody = req.method === 'HEAD' || status < 200 || status === 204 || status === 304;
    if (this.req.conn.draining || (seen & HAS_CLOSE) !== 0) this.shouldKeepAlive = false;
    if ((seen & (HAS_LENGTH | HAS_TE)) === 0 && !this.#noBody) {
      // No length: chunked for HTTP/1.1 clients, the end of the connection for HTTP/1.0 ones.
      if (h11) {
        head += 'transfer-encoding: chunked\r\n';
        this.#chunked = true;
      } else this.shouldKeepAlive = false;
    } else if ((seen & HAS_CHUNKED) !== 0 && !this.#noBody) this.#chunked = true;
    if ((seen & HAS_DATE) === 0) head += dateHeader();
    if (this.shouldKeepAlive) {
      // As node:http does: the client's pool learns how long an idle connection stays open here.
      const ka = this.req.conn.keepAliveSeconds;
      head += KEEP_ALIVE;
      if (ka > 0) head += `keep-alive: timeout=${ka}\r\n`;
    } else if ((seen & HAS_CLOSE) === 0) head += CLOSE;
    this.#head = `${head}\r\n`;
    this.#headersSent = true;
    return this;
  }

  #cork(socket: Socket): void {
    if (!socket.writableCorked) {
      socket.cork();
      process.nextTick(uncork, socket);
    }
  }

  /** Puts the head on the wire, if it is still waiting; the socket stays corked to the tick's end. */
  #flushHead(socket: Socket): void {
    this.#cork(socket);
    if (!this.#written) {
      this.#written = true;
      socket.write(this.#head, 'latin1');
      this.#head = '';
    }
  }

  write(chunk: Buffer | string): boolean {
    if (this.#finished) return true;
    if (!this.#headersSent) this.writeHead(200);
    const socket = this.req.conn.socket;
    if (socket.destroyed) return true;
    if (!this.#written && !this.#chunked && !this.#noBody && typeof chunk !== 'string' && chunk.length <= MERGE_LIMIT) {
      // A small body leaves with its head in one buffer: one write(), no cork, no writev.
      const head = this.#head;
      const out = Buffer.allocUnsafe(head.length + chunk.length);
      out.write(head, 0, 'latin1');
      chunk.copy(out, head.length);
      this.#written = true;
      this.#head = '';
      return socket.write(out);
    }
    this.#flushHead(socket);
    if (this.#noBody || chunk.length === 0) return true;
    if (!this.#chunked) return socket.write(chunk);
    socket.write(`${Buffer.byteLength(chunk).toString(16)}\r\n`, 'latin1');
    socket.write(chunk);
    return socket.write('\r\n', 'latin1');
  }

  end(body?: string | Buffer): this {
    if (this.#finished) return this;
    if (!this.#headersSent) this.writeHead(200);
    const socket = this.req.conn.socket;
    if (!socket.destroyed) {
      if (body !== undefined && body.length > 0) this.write(body);
      else if (!this.#written) this.#flushHead(socket);
      if (this.#chunked) socket.write(this.#lastChunk(), 'latin1');
    }
    this.#forgetDrain();
    this.#finished = true;
    this.req.conn.responseDone(this);
    return this;
  }

  #lastChunk(): string {
    const t = this.#trailers;
    if (t === undefined) return '0\r\n\r\n';
    let text = '0\r\n';
    for (const name in t) {
      const v = t[name];
      for (const one of Array.isArray(v) ? v : [v]) if (!BAD_NAME.test(name) && !BAD_VALUE.test(one)) text += `${name}: ${one}\r\n`;
    }
    return `${text}\r\n`;
  }

  /** Trailers go out only on a chunked response (HTTP/1.1 has nowhere else to put them), as node:http does. */
  addTrailers(trailers: Record<string, string | string[]>): void {
    this.#trailers = trailers;
  }

  destroy(): this {
    this.req.conn.socket.destroy();
    return this;
  }

  /** The socket belongs to a tunnel from now on: the response writes nothing more and the connection lets go. */
  detachSocket(): void {
    this.#finished = true;
    this.req.conn.detach();
  }

  on(_event: 'close', listener: (this: never) => void): this {
    this.onClose = listener;
    return this;
  }

  /** The socket is shared with the responses after this one: a waiting listener goes with the response. */
  once(_event: 'drain', listener: () => void): this {
    this.#forgetDrain();
    this.#drain = listener;
    this.req.conn.socket.once('drain', listener);
    return this;
  }

  #forgetDrain(): void {
    if (this.#drain === undefined) return;
    this.req.conn.socket.off('drain', this.#drain);
    this.#drain = undefined;
  }

  /** The connection closed with this response unfinished (`refusedWith`: the server answered in its place). */
  closed(refusedWith?: ServerRefusal): void {
    if (this.#finished) return;
    this.#finished = true;
    this.refusedWith = refusedWith;
    this.#forgetDrain();
    this.onClose?.call(this as never);
  }
}

/** What one field tells the framing: its length, transfer coding, connection option or date. */
function fieldBits(name: string, value: string): number {
  switch (name.length) {
    case 4:
      return name.toLowerCase() === 'date' ? HAS_DATE : 0;
    case 10:
      return name.toLowerCase() === 'connection' && CLOSE_OPTION.test(value) ? HAS_CLOSE : 0;
    case 14:
      return name.toLowerCase() === 'content-length' ? HAS_LENGTH : 0;
    case 17:
      if (name.toLowerCase() !== 'transfer-encoding') return 0;
      return CHUNKED_LAST.test(value) ? HAS_TE | HAS_CHUNKED : HAS_TE;
    default:
      return 0;
  }
}

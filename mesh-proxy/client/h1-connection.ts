// One HTTP/1.1 connection of an H1Pool: one request at a time (no pipelining), its head written in
// one write (head and a buffered body corked into one writev), its response parsed by Node's llhttp
// binding and reported to an undici-style handler (the interface Attempt implements). Parser and
// socket listeners are registered once per connection, with `this` bound to it: nothing is
// allocated per request beyond the head string, the request record and one timer.
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { kConn, onBodyData, onBodyEnd, onBodyError, PARSER_EVENTS, onSocketClose, onSocketData, onSocketDrain, onSocketEnd, onSocketError, onSocketIdle, onTimer, type TaggedParser, type TaggedSocket } from './h1-events.ts';
import type { H1Request } from './h1-request.ts';
import {
  expectsBody,
  H1_ABORTED,
  H1_BODY_TIMEOUT,
  H1_HEADERS_TIMEOUT,
  H1_LENGTH_MISMATCH,
  H1_SOCKET,
  HTTPParser,
  createParser,
  keepAliveHint,
  requestHead,
} from './h1-wire.ts';
import { TransportError } from './transport-error.ts';

/** What a connection needs of its pool. */
export interface ConnectionOwner {
  readonly hostHeader: string;
  /** The connection finished a request; `reusable` when it may carry the next. */
  released(c: H1Connection, reusable: boolean): void;
  closed(c: H1Connection): void;
}

const EMPTY: string[] = [];
/** undici's keepAliveTimeoutThreshold and keepAliveMaxTimeout. */
const HINT_MARGIN_MS = 1000;
const MAX_HINTED_IDLE_MS = 600_000;

export class H1Connection {
  readonly socket: TaggedSocket;
  readonly #parser: TaggedParser;
  readonly #owner: ConnectionOwner;
  /** The request on the wire, null while idle. */
  req: H1Request | null = null;
  /** The final (non-1xx) response head arrived. */
  #responded = false;
  #keepAlive = true;
  #headers: string[] = [];
  #trailers: string[] | null = null;
  /** The response completed during this parser run: released after it (never inside llhttp). */
  #completed = false;
  /** Bytes of a further message arrived with no request for them: the connection is not reusable. */
  #stray = false;
  /** A streamed request body still being written. */
  #body: Readable | null = null;
  #chunked = false;
  #bodyLeft = -1;
  #timer: NodeJS.Timeout | undefined;
  #timerIsBody = false;
  #idleMs: number;
  /** The pool's idle time, for responses that announce none. */
  readonly #defaultIdleMs: number;
  #idleExpired = false;
  closed = false;
  readonly resume: () => void;

  constructor(socket: Socket, owner: ConnectionOwner, idleMs: number) {
    this.socket = socket as TaggedSocket;
    this.socket[kConn] = this;
    this.#owner = owner;
    this.#idleMs = idleMs;
    this.#defaultIdleMs = idleMs;
    const p = createParser(HTTPParser.RESPONSE, PARSER_EVENTS) as TaggedParser;
    p[kConn] = this;
    this.#parser = p;
    this.resume = () => this.#resumed();
    socket.setNoDelay(true);
    socket.setTimeout(idleMs);
    // Referenced only while a request is on it: an idle pool never keeps a process alive.
    socket.unref();
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    socket.on('timeout', onSocketIdle);
    socket.on('drain', onSocketDrain);
  }

  /** Puts `req` on the wire. */
  send(req: H1Request): void {
    const o = req.opts;
    const head = requestHead(o.method, o.path, o.headers, this.#owner.hostHeader);
    if (head instanceof TransportError) {
      this.#refuse(req, head);
      return;
    }
    this.req = req;
    req.conn = this;
    this.#responded = false;
    this.#trailers = null;
    this.#stray = false;
    this.socket.ref();
    const body = o.body;
    let text = head.text;
    if (body === null || Buffer.isBuffer(body)) {
      const length = body === null ? 0 : body.length;
      if (head.contentLength >= 0 && head.contentLength !== length) {
        this.#refuse(req, new TransportError(H1_LENGTH_MISMATCH, `content-length ${head.contentLength} but the body has ${length} bytes`));
        return;
      }
      if (head.contentLength < 0 && (length > 0 || expectsBody(o.method))) text += `content-length: ${length}\r\n`;
      if (length === 0) this.socket.write(`${text}\r\n`, 'latin1');
      else {
        this.socket.cork();
        this.socket.write(`${text}\r\n`, 'latin1');
        this.socket.write(body as Buffer);
        this.socket.uncork();
      }
    } else {
      this.#chunked = head.contentLength < 0;
      this.#bodyLeft = head.contentLength;
      if (this.#chunked) text += 'transfer-encoding: chunked\r\n';
      this.socket.write(`${text}\r\n`, 'latin1');
      this.#body = body;
      body.on('data', onBodyData);
      body.on('end', onBodyEnd);
      body.on('error', onBodyError);
      (body as Readable & { [kConn]?: H1Connection })[kConn] = this;
      // A body someone paused before would otherwise never flow.
      if (body.isPaused()) body.resume();
    }
    if (o.headersTimeout > 0) this.#arm(o.headersTimeout, false);
  }

  /**
   * A request refused before a byte of it was written: the connection goes back to the pool as it
   * was (req.fail would not find it the request's, and leave it neither idle nor busy).
   */
  #refuse(req: H1Request, err: TransportError): void {
    this.req = null;
    req.conn = undefined;
    req.finished = true;
    this.socket.unref();
    this.#owner.released(this, true);
    req.handler.onError(err);
  }

  /** The request failed mid-exchange: the connection may hold the rest of its response, so it goes. */
  abandon(req: H1Request): void {
    if (this.req !== req) return;
    this.req = null;
    this.#detachBody();
    this.#disarm();
    this.socket.destroy();
  }

  #arm(ms: number, body: boolean): void {
    clearTimeout(this.#timer);
    this.#timerIsBody = body;
    this.#timer = setTimeout(onTimer, ms, this);
  }

  #disarm(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  timedOut(): void {
    const req = this.req;
    if (req === null) return;
    const o = req.opts;
    req.fail(
      this.#timerIsBody
        ? new TransportError(H1_BODY_TIMEOUT, `no response data for ${o.bodyTimeout} ms`)
        : new TransportError(H1_HEADERS_TIMEOUT, `no response headers within ${o.headersTimeout} ms`),
    );
  }

  // --- parser events (called inside execute) ---

  messageBegin(): void {
    if (this.req === null || this.#completed) this.#stray = true;
  }

  headerChunk(list: string[]): void {
    // Node's parser hands over heads of more than 32 fields, and every trailer, in chunks.
    if (this.#responded) {
      if (this.#trailers === null) this.#trailers = list;
      else for (const x of list) this.#trailers.push(x);
    } else for (const x of list) this.#headers.push(x);
  }

  headersComplete(raw: string[] | undefined, status: number, statusText: string, keepAlive: boolean): number {
    if (raw === undefined) {
      raw = this.#headers;
      this.#headers = [];
    }
    const req = this.req;
    if (req === null || this.#stray) return 1;
    // 1xx: informational, not relayed over HTTP/1.1; the final response follows on the wire.
    if (status < 200) {
      if (status === 101) {
        req.fail(new TransportError(H1_SOCKET, 'upstream switched protocols on a request that did not ask to'));
        return 1;
      }
      return 1;
    }
    this.#responded = true;
    this.#keepAlive = keepAlive;
    this.#disarm();
    const hint = keepAliveHint(raw);
    this.#setIdle(hint >= 0 ? hint * 1000 - HINT_MARGIN_MS : this.#defaultIdleMs);
    if (req.handler.onHeaders(status, raw, this.resume, statusText) === false) this.socket.pause();
    // A response to HEAD has no body whatever its framing says.
    return req.opts.method === 'HEAD' ? 1 : 0;
  }

  // Each response sets the idle time, as undici does: `Keep-Alive: timeout=N` less 1 s (closing
  // before the server does), at most 10 min, else the pool's `keepAlive`. Sidecars announce 65 s.
  #setIdle(ms: number): void {
    if (ms <= 0) {
      this.#keepAlive = false;
      return;
    }
    const idle = Math.min(ms, MAX_HINTED_IDLE_MS);
    if (idle !== this.#idleMs) {
      this.#idleMs = idle;
      this.socket.setTimeout(idle);
    }
  }

  bodyChunk(chunk: Buffer): void {
    const req = this.req;
    if (req === null || !this.#responded || req.finished) return;
    if (req.handler.onData(chunk) === false) this.socket.pause();
  }

  messageComplete(): void {
    const req = this.req;
    if (req === null || !this.#responded || req.finished) return;
    this.req = null;
    req.finished = true;
    this.#disarm();
    this.#completed = true;
    const trailers = this.#trailers ?? EMPTY;
    this.#trailers = null;
    req.handler.onComplete(trailers);
  }

  // --- socket events ---

  data(chunk: Buffer): void {
    let r: number | Error;
    try {
      r = this.#parser.execute(chunk);
    } catch (err) {
      // A handler threw inside a parser callback: that request fails, the connection goes.
      this.req?.fail(err as Error);
      this.socket.destroy();
      return;
    }
    if (r instanceof Error) {
      const code = (r as Error & { code?: string }).code ?? 'HPE_INVALID';
      this.req?.fail(new TransportError(code, `invalid response from upstream (${code}: ${r.message})`));
      this.socket.destroy();
      return;
    }
    if (this.#completed) this.#release();
    else if (this.req !== null) {
      // The body timeout bounds the upstream's silence, not the client's: off while paused for it.
      if (this.#responded && this.req.opts.bodyTimeout > 0) {
        if (this.socket.isPaused()) this.#disarm();
        else this.#armBody(this.req.opts.bodyTimeout);
      }
    } else if (!this.closed) this.socket.destroy(); // bytes nobody asked for
  }

  #armBody(ms: number): void {
    if (this.#timer !== undefined && this.#timerIsBody) this.#timer.refresh();
    else this.#arm(ms, true);
  }

  #resumed(): void {
    this.socket.resume();
    const req = this.req;
    if (req !== null && this.#responded && req.opts.bodyTimeout > 0) this.#armBody(req.opts.bodyTimeout);
  }

  #release(): void {
    this.#completed = false;
    // A request body still streaming (the upstream answered early) leaves the connection mid-message.
    const reusable = this.#keepAlive && !this.#stray && this.#body === null && !this.closed;
    if (!reusable) {
      this.#detachBody();
      this.socket.destroy();
    } else {
      this.socket.unref();
      // The last chunk may have paused the socket for a client that will never drain again (its
      // response ended): the next request starts with the connection flowing.
      if (this.socket.isPaused()) this.socket.resume();
      if (this.#idleExpired) {
        // The idle timer fired during a slow response: armed again for the idle time starting now.
        this.#idleExpired = false;
        this.socket.setTimeout(this.#idleMs);
      }
    }
    this.#owner.released(this, reusable);
  }

  end(): void {
    // A response delimited by the connection's end completes now; any other is cut short.
    if (this.req !== null && this.#responded) {
      const r = this.#parser.finish();
      if (r instanceof Error) this.req?.fail(new TransportError(H1_SOCKET, 'upstream closed the connection mid-response'));
      else if (this.#completed) {
        this.#keepAlive = false;
        this.#release();
      }
    }
    this.socket.destroy();
  }

  error(err: Error & { code?: string }): void {
    this.req?.fail(err.code !== undefined ? err : new TransportError(H1_SOCKET, err.message));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#disarm();
    this.#detachBody();
    const req = this.req;
    if (req !== null) {
      req.fail(new TransportError(H1_SOCKET, this.#responded ? 'upstream closed the connection mid-response' : 'upstream closed the connection before responding'));
    }
    this.#parser.close();
    this.#owner.closed(this);
  }

  idle(): void {
    if (this.req === null) this.socket.destroy();
    else this.#idleExpired = true; // a slow response, not an idle connection: re-armed at its end
  }

  drain(): void {
    const b = this.#body;
    if (b !== null && b.isPaused()) b.resume();
  }

  // --- request body (streamed) ---

  bodyData(data: Buffer | string): void {
    if (this.req === null) return;
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    let ok: boolean;
    if (this.#chunked) {
      this.socket.cork();
      this.socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      this.socket.write(chunk);
      ok = this.socket.write('\r\n', 'latin1');
      this.socket.uncork();
    } else {
      this.#bodyLeft -= chunk.length;
      if (this.#bodyLeft < 0) {
        this.req.fail(new TransportError(H1_LENGTH_MISMATCH, 'the request body is longer than its content-length'));
        return;
      }
      ok = this.socket.write(chunk);
    }
    if (!ok) this.#body!.pause();
  }

  bodyEnd(): void {
    const req = this.req;
    this.#detachBody();
    if (req === null) return;
    if (this.#chunked) this.socket.write('0\r\n\r\n', 'latin1');
    else if (this.#bodyLeft > 0) req.fail(new TransportError(H1_LENGTH_MISMATCH, 'the request body ended before its content-length'));
  }

  bodyError(err: Error): void {
    // The caller's body failed (it went away, or a limit cut it): the exchange already knows.
    this.req?.fail(new TransportError(H1_ABORTED, `request body failed: ${err.message}`));
  }

  #detachBody(): void {
    const b = this.#body;
    if (b === null) return;
    this.#body = null;
    b.removeListener('data', onBodyData);
    b.removeListener('end', onBodyEnd);
    b.removeListener('error', onBodyError);
  }
}

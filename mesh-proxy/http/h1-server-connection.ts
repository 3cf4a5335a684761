// One client connection of meshgate's HTTP/1.1 server (h1-server.ts): llhttp reads requests off the
// socket; each becomes an H1Request/H1Response pair, handed to the listener one at a time in the
// order they arrived (pipelined requests wait their turn: RFC 9112 §9.3.2). Its listeners are in
// h1-server-events.ts.
import type { Socket } from 'node:net';
import { createParser, HTTP_METHODS, HTTPParser } from '../client/h1-wire.ts';
import { H1Request, H1Response, type H1ConnectionSide } from './h1-downstream.ts';
import { checkHead, parseErrorRefusal, refusalText, type Refusal } from './h1-refusals.ts';
import type { H1Server } from './h1-server.ts';
import { discard, kConn, onSocketClose, onSocketData, onSocketEnd, onSocketError, SERVER_PARSER_EVENTS, type TaggedParser, type TaggedSocket } from './h1-server-events.ts';

/**
 * Requests read ahead of their turn (pipelined) at which the connection stops reading more bytes
 * (what one read already holds is still parsed).
 */
const MAX_QUEUED = 16;
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

const ABORTED = Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
/** How long a client has to close its side after ours closed (nginx's lingering_timeout is 5 s). */
const LINGER_MS = 5_000;
/** The sweep's clock lags by up to its period: timeouts wait this much longer, never less. */
const SWEEP_MARGIN_MS = 1_000;


export class H1ServerConnection implements H1ConnectionSide {
  readonly socket: TaggedSocket;
  readonly server: H1Server;
  readonly #parser: TaggedParser;
  /** The request whose message is being read (its head is in; its body may still be arriving). */
  #reading: H1Request | null = null;
  /** The response being served. */
  #active: H1Response | null = null;
  /** Requests read behind the active one, waiting their turn. */
  readonly #queue: H1Response[] = [];
  /** An upgrade request, answered once those before it are (nothing is parsed after it). */
  #upgrading: H1Response | null = null;
  /** The new protocol's first bytes, read with the upgrade's head. */
  #upgradeHead: Buffer | null = null;
  #headerChunk: string[] = [];
  #url = '';
  /** The server's clock when the current head began (0: no head arriving). */
  headStartedAt = 0;
  /** The server's clock when the current request began (0: none being read). */
  requestStartedAt = 0;
  /** The server's clock since when the connection has had nothing to do (0: busy). */
  idleSince: number;
  /** This side has sent (or queued) its FIN. */
  closing = false;
  /** The server's clock when the sweep first saw the FIN sent (0: not yet); the client gets a while to close. */
  lingerSince = 0;
  /** #next() is on the stack: a response that ends synchronously leaves the next dispatch to its loop. */
  #advancing = false;
  #advanceAgain = false;
  /**
   * No request after the last one read is answered (it asked to close, upgraded, or could not be
   * parsed): the connection ends once those before have been answered, in order.
   */
  #lastRead = false;
  /** A refusal owed to the last request read, sent in its turn. */
  #refusal: Refusal | undefined;
  #detached = false;
  #closed = false;
  /** llhttp found an error: nothing more is parsed. */
  #broken = false;

  constructor(server: H1Server, socket: Socket) {
    this.server = server;
    this.socket = socket as TaggedSocket;
    this.socket[kConn] = this;
    this.idleSince = server.clock;
    const p = createParser(HTTPParser.REQUEST, SERVER_PARSER_EVENTS) as TaggedParser;
    p[kConn] = this;
    this.#parser = p;
    socket.setNoDelay(true);
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
  }

  get keepAliveSeconds(): number {
    return this.server.keepAliveSeconds;
  }

  get draining(): boolean {
    return this.server.draining;
  }

  /** Nothing in flight and nothing half-read: the connection may close without losing a request. */
  get idle(): boolean {
    return this.#active === null && this.#queue.length === 0 && this.headStartedAt === 0 && this.#reading === null;
  }

  // --- parser events (inside execute) ---

  messageBegin(): void {
    this.headStartedAt = this.requestStartedAt = this.server.clock;
    this.idleSince = 0;
  }

  headerChunk(list: string[], url: string): void {
    // A chunked body's trailers come this way too, once the head is done (headStartedAt cleared):
    // they are dropped, never mistaken for the next request's head. A proxy does not forward them.
    if (this.headStartedAt === 0) return;
    // Node's parser hands over heads of more than 32 fields (and long URLs) in pieces.
    for (const x of list) this.#headerChunk.push(x);
    this.#url += url;
  }

  headersComplete(major: number, minor: number, raw: string[] | undefined, method: number, url: string | undefined, upgrade: boolean, keepAlive: boolean): void {
    this.headStartedAt = 0;
    if (raw === undefined) {
      raw = this.#headerChunk;
      this.#headerChunk = [];
    }
    if (url === undefined) {
      url = this.#url;
      this.#url = '';
    }
    const req = new H1Request(this, HTTP_METHODS[method] ?? '', url, raw, major, minor);
    this.#reading = req;
    if (this.#lastRead) {
      // Sent after "Connection: close" or a refusal: never answered, its body dropped.
      req.dump();
      return;
    }
    const problem = checkHead(req);
    if (problem !== undefined) {
      req.dump();
      this.#refuse(problem);
      return;
    }
    if (!keepAlive) this.#lastRead = true;
    const res = new H1Response(req, keepAlive && !upgrade);
    if (upgrade) {
      // The rest of the connection is the new protocol's: nothing more is parsed (see data()).
      this.#lastRead = true;
      this.#upgrading = res;
      return;
    }
    if (this.#active !== null) {
      this.#queue.push(res);
      if (this.#queue.length >= MAX_QUEUED) this.socket.pause();
      return;
    }
    this.#dispatch(res);
  }

  bodyChunk(chunk: Buffer): void {
    const req = this.#reading;
    if (req !== null && !req.received(chunk)) this.socket.pause();
  }

  messageComplete(): void {
    const req = this.#reading;
    this.#reading = null;
    this.requestStartedAt = 0;
    if (req === null) return;
    req.ended();
    // Its response ended before its body did: the connection was waiting for the rest to go by.
    if (req.answered && this.#active === null) this.#next();
  }

  // --- the request's side ---

  #dispatch(res: H1Response): void {
    this.#active = res;
    this.idleSince = 0;
    const req = res.req;
    // RFC 9110 §10.1.1: the client waits for this before sending the body (node:http sends it unasked too).
    if (req.expectsContinue) this.socket.write(CONTINUE, 'latin1');
    try {
      this.server.handlers.request(req, res);
    } catch (err) {
      this.server.handlers.failed(err as Error);
      this.socket.destroy();
    }
  }

  resumeReading(): void {
    if (!this.#closed && !this.#detached && this.#upgrading === null && this.#queue.length < MAX_QUEUED) this.socket.resume();
  }

  responseDone(res: H1Response): void {
    if (res !== this.#active) return;
    this.#active = null;
    const req = res.req;
    req.answered = true;
    if (!req.complete) {
      // What is left of the body is read and dropped (a consumer may have paused the socket for it).
      req.dump();
      this.resumeReading();
    }
    if (!res.shouldKeepAlive || this.server.draining || this.#broken) {
      // The response said "close" (or had no length), the server drains, or the bytes after it
      // made no sense: requests read behind it go unanswered (a client retries what a closed
      // connection left unanswered).
      this.#queue.length = 0;
      this.#upgrading = null;
      this.#refusal = undefined;
      this.end();
      return;
    }
    // Otherwise the next request waits for this one's body to go by (messageComplete).
    if (req.complete) this.#next();
  }

  /** The socket is a tunnel's now (an upgrade the upstream accepted). */
  detach(): void {
    this.#active = null;
    this.#detached = true;
    this.#release();
  }

  /** Serves what comes next: a queued request, a refusal, the upgrade, or the connection's end or idleness. */
  #next(): void {
    // A response that ends synchronously (a local reply) calls back into here: looping instead of
    // recursing keeps the stack flat however many pipelined requests are answered at once.
    if (this.#advancing) {
      this.#advanceAgain = true;
      return;
    }
    this.#advancing = true;
    try {
      do {
        this.#advanceAgain = false;
        this.#advance();
      } while (this.#advanceAgain);
    } finally {
      this.#advancing = false;
    }
  }

  #advance(): void {
    const res = this.#queue.shift();
    if (res !== undefined) {
      this.resumeReading();
      this.#dispatch(res);
    } else if (this.#refusal !== undefined) {
      const r = this.#refusal;
      this.#refusal = undefined;
      this.reject(r.status, r.code, r.message);
    } else if (this.#upgrading !== null) {
      if (this.#upgradeHead !== null) this.#upgrade();
    } else if (this.#lastRead) this.end();
    else if (this.headStartedAt === 0) this.idleSince = this.server.clock;
  }

  /**
   * Sends this side's FIN, reading on: closing on unread bytes would make the kernel reset the
   * connection, and the client could lose the response. The sweep bounds how long the client then
   * has to close its side (nginx's lingering close).
   */
  end(): void {
    this.#lastRead = true;
    this.closing = true;
    this.idleSince = 0;
    this.socket.end();
    // A socket paused for backpressure (or an upgrade's head) would never see the client's FIN.
    if (this.#upgrading !== null) this.socket.on('data', discard);
    this.socket.resume();
  }

  /** Refuses the last request read: now, or once those before it are answered. */
  #refuse(r: Refusal): void {
    this.#lastRead = true;
    if (this.#active === null) this.reject(r.status, r.code, r.message);
    else this.#refusal = r;
  }

  #upgrade(): void {
    const res = this.#upgrading!;
    const head = this.#upgradeHead!;
    this.#active = res;
    this.idleSince = 0;
    try {
      this.server.handlers.upgrade(res.req, res, head);
    } catch (err) {
      this.server.handlers.failed(err as Error);
      this.socket.destroy();
    }
  }

  // --- socket events ---

  data(chunk: Buffer): void {
    // After an upgrade the bytes are the new protocol's; after a parse error, llhttp reads no more.
    if (this.#upgrading !== null || this.#broken) return;
    let r: number | Error;
    try {
      r = this.#parser.execute(chunk);
    } catch (err) {
      this.server.handlers.failed(err as Error);
      this.socket.destroy();
      return;
    }
    if (r instanceof Error) {
      this.#parseError((r as Error & { code?: string }).code ?? 'HPE_INVALID');
      return;
    }
    if (this.#upgrading !== null) {
      // llhttp stopped at the upgrade's head: what follows belongs to the new protocol.
      this.#upgradeHead = chunk.subarray(r);
      this.socket.off('data', onSocketData);
      this.socket.pause();
      if (this.#active === null) this.#upgrade();
    }
  }

  #parseError(code: string): void {
    this.#broken = true;
    this.#lastRead = true;
    this.headStartedAt = this.requestStartedAt = 0;
    const req = this.#reading;
    this.#reading = null;
    const refusal = parseErrorRefusal(code, req !== null);
    if (req === null || req.answered || req.dumping) {
      // A head that makes no sense (or is too large) is refused in its turn; bytes after a request
      // already answered (or never to be) end the connection once those before are answered.
      if (req === null) this.#refuse(refusal);
      else if (this.#active === null) this.#next();
      return;
    }
    // A body cut short by bad framing: its request is refused in its turn (it may be queued) and
    // its body fails for whoever reads it; if its response has started, the connection is cut.
    req.aborted(Object.assign(new Error(refusal.message), { code }));
    if (this.#active?.req === req) {
      if (this.#active.headersSent) this.socket.destroy();
      else {
        const res = this.#active;
        this.#active = null;
        res.closed(refusal);
        this.reject(refusal.status, refusal.code, refusal.message);
      }
      return;
    }
    // Queued behind the active one: it and anything after it are dropped; the refusal answers it.
    const i = this.#queue.findIndex((r) => r.req === req);
    if (i >= 0) this.#queue.length = i;
    this.#refusal = refusal;
  }

  ended(): void {
    // A client that half-closes with a request in flight has gone, as node:http and Envoy treat it.
    if (this.idle) this.socket.end();
    else this.socket.destroy();
  }

  closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reading?.aborted(ABORTED);
    const active = this.#active;
    this.#active = null;
    this.#queue.length = 0;
    active?.closed();
    this.#release();
  }

  #release(): void {
    const s = this.socket;
    s.off('data', onSocketData);
    s.off('end', onSocketEnd);
    s.off('close', onSocketClose);
    // A tunnel keeps an 'error' listener of its own; a closed socket needs none.
    if (this.#closed) s.off('error', onSocketError);
    s[kConn] = undefined;
    this.server.connections.delete(this);
    this.#parser.close();
  }

  /**
   * Answers a request the server refuses on its own (malformed, oversized, timed out) with a JSON
   * error, and closes. Only when no response is in progress; otherwise the connection is cut.
   */
  reject(status: number, code: string, message: string): void {
    this.#lastRead = true;
    this.server.handlers.rejected(status, code);
    // Already closing: what it sent stands (destroying would discard it); the sweep bounds the rest.
    if (this.socket.writableEnded) return;
    if (this.#active !== null || !this.socket.writable) {
      this.socket.destroy();
      return;
    }
    this.socket.write(refusalText(status, code, message));
    this.end();
  }

  /** The server's sweep: a head or a request that took too long, or a keep-alive connection idle too long. */
  sweep(now: number): void {
    const s = this.server;
    // Idle time is counted from a clock up to a sweep old: the margin keeps the close after the
    // announced timeout, which clients' pools rely on (they stop reusing a connection 1 s before it).
    if (this.idleSince > 0 && now - this.idleSince >= s.keepAliveTimeoutMs + SWEEP_MARGIN_MS) this.socket.destroy();
    else if (this.closing && this.socket.writableFinished) {
      // The response and the FIN are out: the client has LINGER_MS to close its side.
      if (this.lingerSince === 0) this.lingerSince = now;
      else if (now - this.lingerSince >= LINGER_MS) this.socket.destroy();
    }
    else if (this.headStartedAt > 0 && now - this.headStartedAt >= s.headersTimeoutMs) this.#timedOut('the request head');
    else if (this.requestStartedAt > 0 && now - this.requestStartedAt >= s.requestTimeoutMs) this.#timedOut('the request');
  }

  #timedOut(what: string): void {
    this.headStartedAt = this.requestStartedAt = 0;
    // A response in progress, or one already sent for the request being read: no second answer.
    if (this.#active !== null || this.#reading?.answered === true) this.socket.destroy();
    else this.reject(408, 'REQUEST_TIMEOUT', `${what} did not arrive in time`);
  }
}

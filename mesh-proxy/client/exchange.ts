// One proxied request/response. The object is also the undici dispatch handler, so a request costs
// one allocation here and no closures. It uses undici's native handler interface (onConnect /
// onHeaders / onData / onComplete / onError): the controller-style one that undici 7 also offers is
// adapted onto this and parses every response's headers into an object, which a proxy never needs.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Endpoint } from '../discovery/endpoint.ts';
import type { RequestSeries } from '../observe/request-metrics.ts';
import { forwardResponseHeaders, type ForwardedRequest } from '../http/forward-headers.ts';
import { sendError } from '../http/error-reply.ts';
import { classifyTransportError, ERROR_KINDS, MeshError, type MeshErrorCode } from './errors.ts';

/** The listener that owns an exchange hears about its end (metrics, access log, drain). */
export interface ExchangeOwner {
  readonly draining: boolean;
  finished(ex: Exchange): void;
}

const kExchange = Symbol('meshgate.exchange');
type TrackedResponse = ServerResponse & { [kExchange]?: Exchange };

// Registered on every response with `this` bound to it by EventEmitter: no per-request closure.
function onResponseClose(this: TrackedResponse): void {
  const ex = this[kExchange];
  if (ex !== undefined && !ex.done) ex.clientGone();
}

export class Exchange implements ForwardedRequest {
  readonly req: IncomingMessage;
  readonly res: TrackedResponse;
  readonly owner: ExchangeOwner;
  readonly startedAt: number;
  /** Upstream request: filled by forwardRequestHeaders() and the router. */
  headers: string[] = [];
  requestId = '';
  hasBody = false;
  host = '';
  path: string;
  service = '';
  route = '';
  series: RequestSeries | undefined;
  timeoutMs = 0;
  /** Echo x-request-id on the response (the edge does, for clients to quote). */
  echoRequestId = false;
  /** Outcome. */
  endpoint: Endpoint | undefined;
  statusCode = 0;
  errorCode: MeshErrorCode | undefined;
  done = false;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;

  constructor(req: IncomingMessage, res: ServerResponse, owner: ExchangeOwner) {
    this.req = req;
    this.res = res as TrackedResponse;
    this.owner = owner;
    this.startedAt = performance.now();
    this.path = req.url ?? '/';
    this.res[kExchange] = this;
    res.on('close', onResponseClose);
  }

  /** Ends the exchange with a local reply (no upstream response). */
  fail(code: MeshErrorCode, message: string): void {
    if (this.done) return;
    this.errorCode = code;
    this.statusCode = this.res.headersSent ? this.statusCode : ERROR_KINDS[code].status;
    sendError(this.res, code, message, this.requestId, this.owner.draining);
    this.#finish();
  }

  clientGone(): void {
    if (this.#abort !== undefined) this.#abort(new Error('client closed the connection'));
    if (!this.done) {
      this.statusCode = 499; // nginx's "client closed request": kept apart from upstream errors
      this.#finish();
    }
  }

  // --- undici handler ---------------------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    if (this.done) {
      abort(new Error('client closed the connection'));
      return;
    }
    this.#abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx informational: not relayed over HTTP/1.1
    if (this.done) return false;
    this.statusCode = statusCode;
    this.#resume = resume;
    const headers = forwardResponseHeaders(rawHeaders);
    if (this.echoRequestId) headers.push('x-request-id', this.requestId);
    if (this.owner.draining) headers.push('connection', 'close');
    this.res.writeHead(statusCode, statusText, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.done) return false;
    const ok = this.res.write(chunk);
    if (!ok && this.#resume !== undefined) this.res.once('drain', this.#resume);
    return ok;
  }

  onComplete(): void {
    if (this.done) return;
    this.res.end();
    this.#finish();
  }

  onError(err: Error): void {
    if (this.done) return;
    const authority = this.endpoint?.authority ?? 'unknown';
    const e = err instanceof MeshError ? err : classifyTransportError(err, authority);
    this.fail(e.code, e.message);
  }

  #finish(): void {
    this.done = true;
    this.#abort = undefined;
    this.owner.finished(this);
  }
}

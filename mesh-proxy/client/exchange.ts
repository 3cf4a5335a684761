// One proxied request/response as the client (downstream) sees it: its headers, deadline, body,
// and the response once one is committed. Tries toward upstreams are Attempts (attempt.ts); the
// exchange only learns of the one whose response it relays. A request costs one Exchange, one
// Attempt per try, and no closures.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Endpoint } from '../discovery/endpoint.ts';
import type { RequestSeries } from '../observe/request-metrics.ts';
import { forwardResponseHeaders, type ForwardedRequest } from '../http/forward-headers.ts';
import { formatGrpcTimeout } from '../http/deadline.ts';
import { sendError, sendGrpcError, sendLocalReply } from '../http/error-reply.ts';
import { GrpcKind, grpcStatusForHttp } from '../http/grpc.ts';
import { trailerObject, valueOf } from '../http/header-lists.ts';
import { compatStart, H2Request, H2Response, type DownstreamRequest, type DownstreamResponse } from '../http/h2-downstream.ts';
import { H1Request } from '../http/h1-downstream.ts';
import { ERROR_KINDS, type MeshErrorCode } from './errors.ts';
import { CALLER_DEADLINE_MESSAGE, CLIENT_GONE_MESSAGE } from './attempt.ts';
import type { CompiledSplit } from '../traffic/split-picker.ts';
import type { Cancellable, ExchangeHolder, ExchangeHooks, ExchangeOwner, FailoverRescuer, GrpcWebTranslation, UpgradeRequest } from './exchange-hooks.ts';

export type { Cancellable, ExchangeHolder, ExchangeHooks, ExchangeOwner, FailoverRescuer, GrpcWebTranslation, UpgradeRequest } from './exchange-hooks.ts';

type Trailers = string[] | Record<string, string | string[] | undefined> | null | undefined;

const kExchange = Symbol('meshgate.exchange');
type TrackedResponse = DownstreamResponse & { [kExchange]?: Exchange };

// Registered on every response with `this` bound to it by EventEmitter: no per-request closure.
function onResponseClose(this: TrackedResponse): void {
  const ex = this[kExchange];
  if (ex !== undefined && !ex.done) ex.clientGone();
}

function onDeadline(ex: Exchange): void {
  ex.deadlineReached();
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const CLIENT_GONE = new Error(CLIENT_GONE_MESSAGE);
const DEADLINE = new Error('deadline reached');
const CALLER_DEADLINE = new Error(CALLER_DEADLINE_MESSAGE);

export class Exchange implements ForwardedRequest {
  readonly req: DownstreamRequest;
  readonly res: TrackedResponse;
  readonly owner: ExchangeOwner;
  readonly startedAt: number;
  readonly method: string;
  readonly idempotent: boolean;
  /** The client speaks HTTP/2: no connection headers, no status text. */
  readonly h2: boolean;
  // Upstream request: filled by forwardRequestHeaders() and the router.
  headers: string[] = [];
  requestId = '';
  hasBody = false;
  badRequest: string | undefined;
  contentLength = -1;
  host = '';
  callerTimeoutMs = -1;
  timeoutSlot = -1;
  grpcTimeoutSlot = -1;
  grpc: GrpcKind = GrpcKind.None;
  contentTypeSlot = -1;
  /** The call's gRPC status as it ended (trailers, a trailers-only reply, or a local error); -1: none seen. */
  grpcStatus = -1;
  /** The service's traffic split, when it has one, and the subset it chose for this exchange. */
  split: CompiledSplit | undefined;
  subset = '';
  /** Set while this datacenter serves the exchange and another could take it over on failure. */
  failover: FailoverRescuer | undefined;
  /** A sidecar's 5xx was dropped so that another datacenter may serve the exchange (concrete-service). */
  rescueAfterDiscard = false;
  /** Arrived from another datacenter's edge: served here, never sent on. */
  fromPeerDc = false;
  /** The route carries gRPC only (route `grpc: true`): others are refused, gRPC-Web is translated. */
  grpcRoute = false;
  /** A gRPC-Web call translated here: the response is re-framed for the browser (gateway/grpc-web). */
  grpcWeb: GrpcWebTranslation | undefined;
  path: string;
  service = '';
  route = '';
  series: RequestSeries | undefined;
  /** The route's total timeout (0: the service's). */
  timeoutMs = 0;
  /** The route's per-try timeout (0: the service's). */
  perTryTimeoutMs = 0;
  allowNonIdempotent = false;
  echoRequestId = false;
  /** performance.now() by which the response must have started; 0 before the router sets it. */
  deadlineAt = 0;
  /** The deadline came from the caller's header rather than this hop's own timeout. */
  deadlineFromCaller = false;
  /** A buffered body that can be replayed on a retry; null when there is none or it is streamed. */
  body: Buffer | null = null;
  streamedBody = false;
  // Outcome
  endpoint: Endpoint | undefined;
  statusCode = 0;
  /** The code of a local reply: a mesh error or a plugin's (RATE_LIMITED, a custom one …). */
  errorCode: string | undefined;
  /** The policy layer's hooks (the route's plugin chain), when it has any. */
  hooks: ExchangeHooks | undefined;
  /** A body limit a plugin set (-1: none); streamed bodies are counted against it (body-limit.ts). */
  bodyLimit = -1;
  tries = 0;
  committed = false;
  done = false;
  holder: ExchangeHolder | undefined;
  /** Its place in the service's concurrency limit. */
  slot: 'none' | 'queued' | 'active' | 'draining' = 'none';
  current: Cancellable | undefined;
  /** The endpoint of the latest try (a retry prefers another). */
  lastEndpoint: Endpoint | undefined;
  /** Set by the listener when the request upgrades to a WebSocket: tunnelled rather than forwarded. */
  upgrade: UpgradeRequest | undefined;
  /** The route's idle timeout for an open tunnel (0: the service's). */
  websocketIdleMs = 0;
  /** performance.now() when the upstream switched protocols (0: it has not). */
  switchedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The response went out as one HEADERS frame that ended the stream (a trailers-only reply). */
  #endedWithHeaders = false;
  /** The upstream's HEADERS frame ended its response (a gRPC trailers-only reply). */
  #trailersOnly = false;

  constructor(req: DownstreamRequest, res: DownstreamResponse, owner: ExchangeOwner) {
    this.req = req;
    this.res = res as TrackedResponse;
    this.owner = owner;
    this.startedAt = performance.now();
    this.method = req.method ?? 'GET';
    this.idempotent = IDEMPOTENT.has(this.method);
    this.h2 = req.httpVersionMajor === 2;
    this.path = req.url ?? '/';
    this.res[kExchange] = this;
    res.on('close', onResponseClose);
  }

  /**
   * Fixes the deadline: the sooner of this hop's timeout and the caller's remaining deadline.
   * Returns false, having answered 504 DEADLINE_EXCEEDED, when the caller's deadline has passed.
   */
  startDeadline(timeoutMs: number): boolean {
    let ms = timeoutMs;
    if (this.callerTimeoutMs >= 0 && this.callerTimeoutMs <= ms) {
      ms = this.callerTimeoutMs;
      this.deadlineFromCaller = true;
    }
    if (ms <= 0) {
      this.fail('DEADLINE_EXCEEDED', 'the request arrived with its deadline already passed');
      return false;
    }
    this.deadlineAt = this.startedAt + ms;
    this.#timer = setTimeout(onDeadline, Math.max(1, this.deadlineAt - performance.now()), this);
    return true;
  }

  /** Milliseconds left before the deadline (Infinity when none is set). */
  remainingMs(now = performance.now()): number {
    return this.deadlineAt === 0 ? Infinity : this.deadlineAt - now;
  }

  /** Writes the remaining deadline into the upstream headers before a try. */
  stampDeadline(now: number): void {
    const left = Math.max(0, Math.floor(this.remainingMs(now)));
    if (this.timeoutSlot >= 0) this.headers[this.timeoutSlot] = String(left);
    if (this.grpcTimeoutSlot >= 0) this.headers[this.grpcTimeoutSlot] = formatGrpcTimeout(left);
  }

  /** ConcurrencyLimit's Waiter: the queued exchange may go. */
  granted(): void {
    this.holder?.admitted(this);
  }

  /** The request body as a stream (on HTTP/2's compatibility layer, the request itself). */
  get requestStream(): Readable {
    const req = this.req;
    return req instanceof H1Request || req instanceof H2Request ? req.body() : (req as unknown as Readable);
  }

  get retriableBody(): boolean {
    return !this.streamedBody;
  }

  mayRetryAfterSend(): boolean {
    // An upgrade is retried only when nothing reached the upstream (a connect failure).
    return this.upgrade === undefined && (this.idempotent || this.allowNonIdempotent);
  }

  /** The chosen try's response starts: headers go to the client; the deadline now only bounds idleness. */
  commit(statusCode: number, statusText: string, rawHeaders: readonly string[], endpoint: Endpoint | undefined, endStream = false): void {
    this.committed = true;
    this.statusCode = statusCode;
    if (endpoint) this.endpoint = endpoint;
    clearTimeout(this.#timer);
    const headers = forwardResponseHeaders(rawHeaders, this.echoRequestId);
    if (this.echoRequestId) headers.push('x-request-id', this.requestId);
    if (this.hooks !== undefined) this.hooks.onResponse(this, statusCode, headers, false);
    this.#trailersOnly = endStream;
    if (this.grpc !== GrpcKind.None) {
      // A trailers-only reply carries its status in the headers.
      const status = valueOf(headers, 'grpc-status');
      if (status !== undefined) this.grpcStatus = Number(status);
      this.grpcWeb?.responseHeaders(headers);
    }
    if (this.res instanceof H2Response) {
      // An HTTP/2 upstream sends no reason phrase.
      this.#endedWithHeaders = this.res.start(statusCode, headers, endStream, statusText === '');
      return;
    }
    if (this.h2) {
      this.#endedWithHeaders = compatStart(this.res as unknown as ServerResponse, statusCode, headers, endStream);
      return;
    }
    if (this.owner.draining) headers.push('connection', 'close');
    // An HTTP/2 upstream sends no reason phrase: Node's standard one then.
    if (statusText === '') this.res.writeHead(statusCode, headers);
    else this.res.writeHead(statusCode, statusText, headers);
  }

  /** Relays a body chunk; false asks the upstream to pause until `resume` is called on 'drain'. */
  write(chunk: Buffer, resume: () => void): boolean {
    const ok = this.res.write(this.grpcWeb === undefined ? chunk : this.grpcWeb.data(chunk));
    if (!ok) this.res.once('drain', resume);
    return ok;
  }

  /** The response is complete; `trailers` (gRPC's status among them) follow the body. */
  end(trailers?: Trailers): void {
    if (this.done) return;
    if (this.#endedWithHeaders) {
      this.#finish();
      return;
    }
    const t = trailers === undefined || trailers === null ? undefined : trailerObject(trailers);
    if (this.grpc !== GrpcKind.None && t !== undefined) {
      const status = t['grpc-status'];
      if (typeof status === 'string') this.grpcStatus = Number(status);
    }
    // gRPC-Web: the trailers become the body's last frame (a trailers-only reply's status is in its headers).
    if (this.grpcWeb !== undefined) {
      if (!this.#trailersOnly) this.res.write(this.grpcWeb.end(t ?? {}));
    }
    else if (t !== undefined) this.res.addTrailers(t as Record<string, string>);
    this.res.end();
    this.#finish();
  }

  /** Ends the exchange with a local reply (or a cut connection if the response already started). */
  fail(code: MeshErrorCode, message: string): void {
    if (this.done) return;
    if (this.failover !== undefined && !this.committed) {
      const f = this.failover;
      this.failover = undefined;
      if (f.rescue(this, code)) return;
    }
    this.errorCode = code;
    const status = ERROR_KINDS[code].status;
    if (!this.committed) this.statusCode = status;
    let extra: string[] | undefined;
    if (this.hooks !== undefined && !this.committed) this.hooks.onResponse(this, status, (extra = []), true);
    if (this.grpc !== GrpcKind.None) this.#grpcError(ERROR_KINDS[code].grpcStatus, code, message, extra);
    else sendError(this.res, status, code, message, this.requestId, this.owner.draining && !this.h2, extra);
    this.#finish();
  }

  /**
   * A gRPC caller gets errors as gRPC statuses (HTTP 200, grpc-status, grpc-message) in a
   * trailers-only reply, never an HTTP error body its client cannot read.
   */
  #grpcError(grpcStatus: number, code: string, message: string, extra: readonly string[] | undefined): void {
    if (!this.committed) {
      this.statusCode = 200;
      this.grpcStatus = grpcStatus;
    }
    const contentType = this.grpcWeb?.responseContentType ?? (this.grpc === GrpcKind.Grpc ? 'application/grpc' : this.grpc === GrpcKind.WebText ? 'application/grpc-web-text+proto' : 'application/grpc-web+proto');
    sendGrpcError(this.res, this.h2, contentType, grpcStatus, code, message, this.requestId, extra);
  }

  /**
   * Ends the exchange with a reply of the policy layer's own (a plugin's 401, 429 or preflight).
   * Without `body` and with a `code`, the body is meshgate's JSON error.
   */
  reply(status: number, code: string | undefined, message: string | undefined, headers: Readonly<Record<string, string>> | undefined, body: string | Buffer | undefined): void {
    if (this.done) return;
    this.errorCode = code;
    this.statusCode = status;
    const extra: string[] = [];
    if (headers !== undefined) for (const name in headers) extra.push(name, headers[name]);
    if (this.hooks !== undefined) this.hooks.onResponse(this, status, extra, true);
    if (this.grpc !== GrpcKind.None && status >= 400) {
      const kind = code !== undefined && Object.hasOwn(ERROR_KINDS, code) ? ERROR_KINDS[code as MeshErrorCode] : undefined;
      this.#grpcError(kind?.grpcStatus ?? grpcStatusForHttp(status), code ?? `HTTP_${status}`, message ?? (typeof body === 'string' && body.length > 0 ? body : `HTTP ${status}`), extra);
      this.#finish();
      return;
    }
    const close = this.owner.draining && !this.h2;
    if (body === undefined && code !== undefined) sendError(this.res, status, code, message ?? code, this.requestId, close, extra);
    else sendLocalReply(this.res, status, code, body ?? '', undefined, this.requestId, close, extra);
    this.#finish();
  }

  /** Refuses a request body longer than `bytes` while it streams (413 PAYLOAD_TOO_LARGE). */
  limitBody(bytes: number): void {
    this.bodyLimit = bytes;
  }

  bodyTooLarge(): void {
    const current = this.current;
    // The rest of the body is not read: the connection closes after the 413 (as nginx does).
    this.res.shouldKeepAlive = false;
    this.fail('PAYLOAD_TOO_LARGE', `the request body is larger than ${this.bodyLimit} bytes`);
    // The caller's doing: not held against the endpoint.
    current?.cancel(CLIENT_GONE);
  }

  /**
   * Another datacenter takes the exchange over after this one failed it: the try, the concurrency
   * slot and the deadline timer are given up; the deadline itself (from startedAt) still holds.
   */
  resetForRescue(): void {
    clearTimeout(this.#timer);
    const inFlight = this.current !== undefined;
    const current = this.current;
    this.current = undefined;
    this.holder?.released(this, inFlight);
    this.holder = undefined;
    this.slot = 'none';
    this.tries = 0;
    this.lastEndpoint = undefined;
    this.endpoint = undefined;
    this.deadlineFromCaller = false;
    current?.cancel(CLIENT_GONE);
  }

  /** The request body proved malformed while streaming (a gRPC-Web frame, bad base64): 400 / INVALID_ARGUMENT. */
  badBody(message: string): void {
    if (this.done) return;
    const current = this.current;
    this.res.shouldKeepAlive = false;
    this.fail('BAD_REQUEST', message);
    current?.cancel(CLIENT_GONE);
  }

  // Both end the exchange before cancelling its try: undici reports the abort synchronously, and
  // the try's owner must see an exchange that is already over, not a transport failure to handle.
  clientGone(): void {
    if (this.done) return;
    const current = this.current;
    const refused = this.res.refusedWith;
    if (refused !== undefined) {
      // The server answered it (a malformed body): recorded as what the client got.
      this.statusCode = refused.status;
      this.errorCode = refused.code;
    } else if (!this.committed) this.statusCode = 499; // nginx's "client closed request", kept apart from upstream errors
    if (this.grpc !== GrpcKind.None && this.grpcStatus < 0) this.grpcStatus = 1; // CANCELLED
    this.#finish();
    current?.cancel(CLIENT_GONE);
  }

  deadlineReached(): void {
    if (this.done || this.committed) return;
    const current = this.current;
    if (this.deadlineFromCaller) this.fail('DEADLINE_EXCEEDED', "the caller's deadline passed before the upstream answered");
    else this.fail('UPSTREAM_TIMEOUT', `no response from ${this.service || 'the upstream'} within the timeout`);
    // A deadline the caller chose says nothing about the endpoint; this hop's own timeout does.
    current?.cancel(this.deadlineFromCaller ? CALLER_DEADLINE : DEADLINE);
  }

  /**
   * The upstream answered 101 and the tunnel opens: the response is committed, the deadline no
   * longer applies, and the concurrency slot is given back (an open WebSocket does not hold one).
   */
  switched(endpoint: Endpoint): void {
    this.committed = true;
    this.statusCode = 101;
    this.endpoint = endpoint;
    this.switchedAt = performance.now();
    clearTimeout(this.#timer);
    this.holder?.released(this, false);
    this.holder = undefined;
  }

  /** The tunnel closed: the exchange ends (metrics, access log) with nothing more to write. */
  tunnelClosed(): void {
    if (!this.done) this.#finish();
  }

  #finish(): void {
    this.done = true;
    clearTimeout(this.#timer);
    const inFlight = this.current !== undefined;
    this.current = undefined;
    this.holder?.released(this, inFlight);
    this.owner.finished(this);
    if (this.hooks !== undefined) this.hooks.onFinished(this);
  }
}


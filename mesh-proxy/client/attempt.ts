// One try of an exchange against one endpoint: undici's dispatch handler. It uses undici's native
// handler interface (onConnect / onHeaders / onData / onComplete / onError); the controller-style
// interface undici 7 also offers is adapted onto this one and parses every response's headers into
// an object, which a proxy never needs. The attempt classifies what happened and reports it to its
// owner, which decides between relaying, retrying and failing.
import { streamedBody } from './body-limit.ts';
import type { UpstreamDispatch, UpstreamPool } from './endpoint-pools.ts';
import type { Endpoint } from '../discovery/endpoint.ts';
import { classifyErrorCode, classifyGrpcStatus, classifyStatus, type Verdict } from '../resilience/classify.ts';
import { GrpcKind } from '../http/grpc.ts';
import type { Cancellable, Exchange } from './exchange.ts';
import { ERROR_HEADER } from '../http/error-reply.ts';

export const CLIENT_GONE_MESSAGE = 'client closed the connection';
export const CALLER_DEADLINE_MESSAGE = "the caller's deadline passed";
const DISCARD = new Error('response discarded for a retry');
/** A 5xx body up to this size is drained (keeping the connection); a larger or unsized one is cut. */
const MAX_DRAIN_BYTES = 65536;
/** undici refuses some requests before anything is sent (e.g. a duplicate Host header): the request's fault. */
const REQUEST_REJECTED = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);

export interface AttemptOwner {
  /** A response with a failing status arrived: true to discard it and retry instead of relaying it. */
  retryOnStatus(a: Attempt, status: number, rawHeaders: readonly string[]): boolean;
  /** The try ended: response relayed, response discarded for a retry, or transport failure. */
  settled(a: Attempt, verdict: Verdict, err: (Error & { code?: string }) | undefined): void;
}

export class Attempt implements Cancellable {
  readonly ex: Exchange;
  readonly endpoint: Endpoint;
  readonly owner: AttemptOwner;
  readonly startedAt: number;
  /** The response is being dropped because the owner chose to retry. */
  discarding = false;
  /** Set when the response had a Retry-After header worth honouring. */
  retryAfter: string | undefined;
  /** Bytes may have reached the upstream (false only for connect failures). */
  sent = true;
  /** This try is a retry: it holds one of the service's retry slots until it settles. */
  isRetry = false;
  slotReleased = false;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #verdict: Verdict = 'success';
  #settled = false;
  #cancelled: Error | undefined;

  constructor(ex: Exchange, endpoint: Endpoint, owner: AttemptOwner, startedAt: number) {
    this.ex = ex;
    this.endpoint = endpoint;
    this.owner = owner;
    this.startedAt = startedAt;
  }

  cancel(reason: Error): void {
    this.#cancelled = reason;
    if (this.#abort !== undefined) this.#abort(reason);
  }

  /**
   * The caller ended it (went away, or its own propagated deadline passed): the outcome says
   * nothing about the endpoint, so breakers and outlier detection must not count it.
   */
  get cancelledByCaller(): boolean {
    const m = this.#cancelled?.message;
    return this.#propagatedDeadline || m === CLIENT_GONE_MESSAGE || m === CALLER_DEADLINE_MESSAGE;
  }

  #propagatedDeadline = false;

  /** undici rejected the request itself before sending it: a bad request, not an endpoint failure. */
  rejectedRequest = false;

  onConnect(abort: (err?: Error) => void): void {
    if (this.#cancelled !== undefined) {
      abort(this.#cancelled);
      return;
    }
    this.#abort = abort;
  }

  /** `endStream` (HTTP/2 only): the HEADERS frame ended the response (a gRPC trailers-only reply). */
  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void, statusText: string, endStream = false): boolean {
    if (statusCode < 200) return true; // 1xx informational: not relayed over HTTP/1.1
    if (this.ex.done) return this.#stop();
    this.#verdict = classifyStatus(statusCode);
    // A downstream meshgate hop ran out of the deadline this caller gave: not the endpoint's fault.
    if (statusCode === 504 && headerOf(rawHeaders, ERROR_HEADER) === 'DEADLINE_EXCEEDED') this.#propagatedDeadline = true;
    if (this.#verdict !== 'success' && this.owner.retryOnStatus(this, statusCode, rawHeaders)) {
      this.discarding = true;
      // A small error body is drained so the connection stays reusable; a large or unsized one
      // would hold the retry back, so the connection is cut instead.
      const length = Number(headerOf(rawHeaders, 'content-length') ?? NaN);
      if (!(length <= MAX_DRAIN_BYTES)) this.#abort?.(DISCARD);
      return true;
    }
    this.#resume = resume;
    this.ex.commit(statusCode, statusText, rawHeaders, this.endpoint, endStream);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.discarding) return true;
    if (this.ex.done) return this.#stop();
    return this.ex.write(chunk, this.#resume!);
  }

  /** The exchange ended under this try: abort it (returning false alone would pause the connection for good). */
  #stop(): false {
    this.#abort?.(new Error(CLIENT_GONE_MESSAGE));
    return false;
  }

  /** `trailers`: the raw list (HTTP/1.1 chunked trailers) or the HTTP/2 trailers object. */
  onComplete(trailers?: string[] | Record<string, string | string[] | undefined> | null): void {
    const ex = this.ex;
    if (!this.discarding) ex.end(trailers);
    // A gRPC failure arrives as a status in the trailers (or a trailers-only reply) under HTTP 200.
    const verdict = this.#verdict === 'success' && ex.grpc !== GrpcKind.None ? classifyGrpcStatus(ex.grpcStatus) : this.#verdict;
    this.#settle(verdict, undefined);
  }

  onError(err: Error & { code?: string }): void {
    if (err === DISCARD) {
      this.#settle(this.#verdict, undefined); // the 5xx already classified; the retry follows
      return;
    }
    if (err.code !== undefined && REQUEST_REJECTED.has(err.code)) this.rejectedRequest = true;
    this.#settle(this.#cancelled !== undefined && this.#cancelled === err ? 'timeout' : classifyErrorCode(err.code), err);
  }

  #settle(verdict: Verdict, err: (Error & { code?: string }) | undefined): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#abort = undefined;
    if (verdict === 'connect-failure') this.sent = false;
    this.owner.settled(this, verdict, err);
  }
}

/** A header's value from a raw list (retry path only, so a linear scan is fine). */
export function headerOf(raw: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === lowerName.length && raw[i].toLowerCase() === lowerName) return raw[i + 1];
  }
  return undefined;
}

/** Hands an attempt to a connection pool with its per-try timeouts. */
export function dispatchAttempt(pool: UpstreamPool, a: Attempt, headersTimeoutMs: number, bodyTimeoutMs: number): void {
  const ex = a.ex;
  const opts: UpstreamDispatch = {
    path: ex.path,
    method: ex.method,
    headers: ex.headers,
    body: ex.body ?? (ex.streamedBody ? streamedBody(ex) : null),
    headersTimeout: headersTimeoutMs,
    bodyTimeout: bodyTimeoutMs,
  };
  // Requests the pool refuses (e.g. characters it will not put on the wire) come back through
  // onError with UND_ERR_INVALID_ARG, never as a throw.
  pool.dispatch(opts, a);
}

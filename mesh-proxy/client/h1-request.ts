// One HTTP/1.1 request as an H1Pool holds it (queued, then on a connection), and the undici-style
// handler interface it reports to (the one Attempt, health probes and mirrors implement).
import type { Readable } from 'node:stream';
import type { H1Connection } from './h1-connection.ts';
import { H1_ABORTED } from './h1-wire.ts';
import { TransportError } from './transport-error.ts';

/** The undici dispatch handler subset Attempt implements; onComplete gets the chunked trailers. */
export interface H1Handler {
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void, statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: string[] | null): void;
  onError(err: Error): void;
}

export interface H1DispatchOptions {
  path: string;
  method: string;
  /** Flat [name, value, …] list as the proxy builds it. */
  headers: string[];
  body: Buffer | Readable | null;
  headersTimeout: number;
  bodyTimeout: number;
}

/** One request: queued in the pool, then on a connection. */
export class H1Request {
  readonly opts: H1DispatchOptions;
  readonly handler: H1Handler;
  readonly abort: (err?: Error) => void;
  conn: H1Connection | undefined;
  finished = false;
  #dequeue: (r: H1Request) => void;

  constructor(opts: H1DispatchOptions, handler: H1Handler, dequeue: (r: H1Request) => void) {
    this.opts = opts;
    this.handler = handler;
    this.#dequeue = dequeue;
    this.abort = (err) => this.fail(err ?? new TransportError(H1_ABORTED, 'request aborted'));
    // A streamed body may fail while queued or after it was sent (a limit cuts it, its client goes):
    // the exchange hears of it on its own; here it must never be an unhandled 'error'.
    const body = opts.body;
    if (body !== null && !Buffer.isBuffer(body)) body.on('error', ignoreError);
  }

  /** Ends the request with an error (once). Its connection cannot be trusted mid-message: it is closed. */
  fail(err: Error): void {
    if (this.finished) return;
    this.finished = true;
    const c = this.conn;
    if (c !== undefined) c.abandon(this);
    else this.#dequeue(this);
    this.handler.onError(err);
  }
}

function ignoreError(): void {}

// A streamed request body counted against a limit a plugin set (request-size-limit): the upstream
// reads it through this transform, which ends the exchange with 413 once the limit is passed. It
// sits in the pipe rather than listening to the request's 'data' events, which would start the
// flow before the upstream reads and lose the first chunks.
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Exchange } from './exchange.ts';

export class BodyLimit extends Transform {
  readonly #ex: Exchange;
  #seen = 0;

  constructor(ex: Exchange) {
    super();
    this.#ex = ex;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#ex.bodyLimit) {
      this.#ex.bodyTooLarge();
      done(new Error('request body over its limit'));
      return;
    }
    done(null, chunk);
  }
}

/** The body to hand upstream: the request itself, or through its limit and a gRPC-Web translation. */
export function streamedBody(ex: Exchange): Readable {
  let body: Readable = ex.requestStream;
  if (ex.bodyLimit >= 0) body = body.pipe(new BodyLimit(ex));
  if (ex.grpcWeb !== undefined) body = ex.grpcWeb.requestBody(ex, body);
  return body;
}

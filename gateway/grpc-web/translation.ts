// gRPC-Web at the edge (Envoy's grpc_web filter): a browser's application/grpc-web(-text) call is
// sent upstream as gRPC over HTTP/2, and the answer re-framed for the browser, with the trailers
// as the last message of the body. Text mode is base64 both ways. The request body is checked
// frame by frame on its way through; malformed input ends the call with INVALID_ARGUMENT.
import type { Readable } from 'node:stream';
import type { Exchange, GrpcWebTranslation } from '../../mesh-proxy/client/exchange.ts';
import { GrpcKind } from '../../mesh-proxy/http/grpc.ts';
import { downstreamContentType, upstreamContentType, type GrpcWebMode } from './content-type.ts';
import { Base64RequestDecoder } from './text-decoder.ts';
import { FrameChecker } from './frame-checker.ts';
import { GrpcWebResponseEncoder } from './response-encoder.ts';

/** The largest request message accepted (grpc-js's and grpc-go's default receive limit). */
export const MAX_REQUEST_MESSAGE_BYTES = 4 * 1024 * 1024;

class Translation implements GrpcWebTranslation {
  readonly mode: GrpcWebMode;
  readonly responseContentType: string;
  readonly #encoder: GrpcWebResponseEncoder;

  constructor(mode: GrpcWebMode) {
    this.mode = mode;
    this.responseContentType = downstreamContentType(undefined, mode);
    this.#encoder = new GrpcWebResponseEncoder(mode);
  }

  responseHeaders(headers: string[]): void {
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      const name = headers[i].toLowerCase();
      if (name === 'content-type') headers[i + 1] = downstreamContentType(headers[i + 1], this.mode);
      // The body is re-framed (and in text mode re-encoded): the upstream's length no longer holds.
      else if (name === 'content-length') headers.splice(i, 2);
    }
  }

  data(chunk: Buffer): Buffer {
    return this.#encoder.data(chunk);
  }

  end(trailers: Record<string, string | string[] | undefined>): Buffer {
    return this.#encoder.end(trailers);
  }

  requestBody(ex: Exchange, source: Readable): Readable {
    return grpcWebRequestBody(ex, source);
  }
}

/** Rewrites a gRPC-Web exchange's request for the upstream and sets up the response's translation. */
export function translateGrpcWeb(ex: Exchange): void {
  const mode: GrpcWebMode = ex.grpc === GrpcKind.WebText ? 'text' : 'binary';
  const headers = ex.headers;
  if (ex.contentTypeSlot >= 0) headers[ex.contentTypeSlot] = upstreamContentType(headers[ex.contentTypeSlot]);
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    const name = headers[i].toLowerCase();
    // Decoded text is shorter than sent; binary bodies pass through checked, but length-free.
    if (name === 'content-length') headers.splice(i, 2);
  }
  headers.push('te', 'trailers');
  // The slot moved if anything before it was removed: find it again for error replies.
  ex.contentTypeSlot = -1;
  ex.contentLength = -1;
  // Streamed (never buffered for a replay): a translated body is read exactly once.
  ex.streamedBody = true;
  ex.grpcWeb = new Translation(mode);
}

/** The request body as the upstream reads it: base64-decoded (text mode) and frame-checked. */
function grpcWebRequestBody(ex: Exchange, source: Readable): Readable {
  const mode = ex.grpc === GrpcKind.WebText ? 'text' : 'binary';
  const checker = new FrameChecker(MAX_REQUEST_MESSAGE_BYTES);
  checker.on('error', (err: Error & { code?: string }) => ex.badBody(`malformed gRPC-Web request: ${err.message}`));
  if (mode === 'text') {
    const decoder = new Base64RequestDecoder();
    decoder.on('error', (err: Error & { code?: string }) => ex.badBody(`malformed gRPC-Web-Text request: ${err.message}`));
    source.pipe(decoder).pipe(checker);
  } else source.pipe(checker);
  return checker;
}

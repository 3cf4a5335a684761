// What layers outside the mesh client plug into an exchange: the edge's datacenter failover and
// its gRPC-Web translation (gateway/). The exchange calls them; it knows neither.
import type { Readable } from 'node:stream';
import type { Exchange } from './exchange.ts';
import type { MeshErrorCode } from './errors.ts';

/** The edge's datacenter failover: asked before a local failure is answered (gateway/datacenters). */
export interface FailoverRescuer {
  /** True when the exchange was handed to another datacenter instead. */
  rescue(ex: Exchange, code: MeshErrorCode): boolean;
}

/** The response half of a gRPC-Web translation (gateway/grpc-web/translation.ts). */
export interface GrpcWebTranslation {
  /** Rewrites the upstream's headers (content-type) for the browser, in place. */
  responseHeaders(headers: string[]): void;
  data(chunk: Buffer): Buffer;
  /** The last bytes: the trailers as a gRPC-Web trailer frame. */
  end(trailers: Record<string, string | string[] | undefined>): Buffer;
  readonly responseContentType: string;
  /** The request body as the upstream should read it (decoded, checked). */
  requestBody(ex: Exchange, source: Readable): Readable;
}

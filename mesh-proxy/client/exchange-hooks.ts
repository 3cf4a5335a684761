// The parties around an exchange, as interfaces: the listener that owns it, whoever holds a slot
// for it, the policy layer's hooks, the try in flight, and what layers outside the mesh client
// plug in (the edge's datacenter failover and gRPC-Web translation, gateway/). The exchange calls
// them; it knows none of their implementations.
import type { Duplex, Readable } from 'node:stream';
import type { Exchange } from './exchange.ts';
import type { MeshErrorCode } from './errors.ts';

/** The listener that owns an exchange hears about its end (metrics, access log, drain). */
export interface ExchangeOwner {
  readonly draining: boolean;
  finished(ex: Exchange): void;
  /** An upgrade's tunnel opened (the upstream answered 101); `finished` follows when it closes. */
  tunnelOpened?(ex: Exchange): void;
}

/** An HTTP/1.1 Upgrade (WebSocket) request: the client's socket and the bytes read past its head. */
export interface UpgradeRequest {
  readonly socket: Duplex;
  readonly head: Buffer;
  /** The Upgrade token relayed upstream (only `websocket` is tunnelled). */
  readonly protocol: string;
  /** Why the open tunnel ended (closed, idle, error, shutdown), for the access log. */
  end?: string;
}

/** Whoever holds resources for an exchange (a concurrency slot) is told when it ends. */
export interface ExchangeHolder {
  /** A queued exchange got its concurrency slot. */
  admitted(ex: Exchange): void;
  /** The exchange ended; `tryInFlight`: a try may still sit in a connection pool's queue. */
  released(ex: Exchange, tryInFlight: boolean): void;
}

/**
 * What a policy layer above the mesh client (the plugin chain) hooks into an exchange: the
 * response's headers before they go out, and the end. The mesh client knows no plugin.
 */
export interface ExchangeHooks {
  /** `headers` is a flat [name, value, …] list the hook may change in place. */
  onResponse(ex: Exchange, status: number, headers: string[], local: boolean): void;
  onFinished(ex: Exchange): void;
}

/** The try in flight, as far as the exchange needs to cancel it. */
export interface Cancellable {
  cancel(reason: Error): void;
}

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

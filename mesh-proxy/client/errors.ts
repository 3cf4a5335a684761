// Every error meshgate originates has a stable code, an HTTP status and a gRPC status
// (linkerd2-proxy errors/respond.rs). Callers branch on `code`, never on message text.
export type MeshErrorCode =
  | 'NO_ROUTE'
  | 'NO_ENDPOINTS'
  | 'UPSTREAM_UNAVAILABLE'
  | 'UPSTREAM_TIMEOUT'
  | 'DEADLINE_EXCEEDED'
  | 'OVERLOADED'
  | 'BAD_REQUEST'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'PAYLOAD_TOO_LARGE'
  | 'UPGRADE_NOT_ALLOWED'
  | 'NOT_GRPC'
  | 'LOOP_DETECTED'
  | 'INTERNAL';

interface Kind {
  readonly status: number;
  /** gRPC status code carried in trailers for gRPC callers. */
  readonly grpcStatus: number;
}

export const ERROR_KINDS: Readonly<Record<MeshErrorCode, Kind>> = Object.freeze({
  NO_ROUTE: { status: 404, grpcStatus: 12 /* UNIMPLEMENTED */ },
  NO_ENDPOINTS: { status: 503, grpcStatus: 14 /* UNAVAILABLE */ },
  UPSTREAM_UNAVAILABLE: { status: 502, grpcStatus: 14 /* UNAVAILABLE */ },
  UPSTREAM_TIMEOUT: { status: 504, grpcStatus: 4 /* DEADLINE_EXCEEDED */ },
  DEADLINE_EXCEEDED: { status: 504, grpcStatus: 4 /* DEADLINE_EXCEEDED */ },
  OVERLOADED: { status: 503, grpcStatus: 8 /* RESOURCE_EXHAUSTED */ },
  BAD_REQUEST: { status: 400, grpcStatus: 3 /* INVALID_ARGUMENT */ },
  UNAUTHENTICATED: { status: 401, grpcStatus: 16 /* UNAUTHENTICATED */ },
  FORBIDDEN: { status: 403, grpcStatus: 7 /* PERMISSION_DENIED */ },
  RATE_LIMITED: { status: 429, grpcStatus: 8 /* RESOURCE_EXHAUSTED */ },
  PAYLOAD_TOO_LARGE: { status: 413, grpcStatus: 8 /* RESOURCE_EXHAUSTED */ },
  // A WebSocket upgrade to a route without `websocket: true` (Envoy answers 403 when no upgrade_config allows it).
  UPGRADE_NOT_ALLOWED: { status: 403, grpcStatus: 7 /* PERMISSION_DENIED */ },
  // A request that is not gRPC (POST with content-type application/grpc or grpc-web) on a `grpc: true` route.
  NOT_GRPC: { status: 415, grpcStatus: 12 /* UNIMPLEMENTED */ },
  // A request forwarded between datacenters came back to one it had passed through.
  LOOP_DETECTED: { status: 508, grpcStatus: 10 /* ABORTED */ },
  INTERNAL: { status: 500, grpcStatus: 13 /* INTERNAL */ },
});

export class MeshError extends Error {
  readonly code: MeshErrorCode;
  readonly status: number;

  constructor(code: MeshErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MeshError';
    this.code = code;
    this.status = ERROR_KINDS[code].status;
  }
}

/** Classifies a transport error from undici into the mesh's vocabulary. */
export function classifyTransportError(err: Error & { code?: string }, authority: string): MeshError {
  switch (err.code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new MeshError('UPSTREAM_TIMEOUT', `upstream ${authority} did not answer in time`, { cause: err });
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new MeshError('UPSTREAM_UNAVAILABLE', `connecting to upstream ${authority} timed out`, { cause: err });
    case 'ECONNREFUSED':
      return new MeshError('UPSTREAM_UNAVAILABLE', `upstream ${authority} refused the connection`, { cause: err });
    case 'ERR_MESH_PEER_IDENTITY':
    case 'ERR_MESH_TLS_REQUIRED':
      // The message names the expected and the presented identity.
      return new MeshError('UPSTREAM_UNAVAILABLE', err.message, { cause: err });
    case 'CERT_HAS_EXPIRED':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return new MeshError('UPSTREAM_UNAVAILABLE', `upstream ${authority} failed mTLS verification (${err.code})`, { cause: err });
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return new MeshError('UPSTREAM_UNAVAILABLE', `upstream ${authority} reset the connection`, { cause: err });
    default:
      return new MeshError('UPSTREAM_UNAVAILABLE', `upstream ${authority} failed (${err.code ?? err.message})`, { cause: err });
  }
}

// Responses are classified once, where they end; breakers, outlier detection and retries all consume
// the one verdict (linkerd2-proxy `http-classify`, Envoy's outlier "gateway failure" taxonomy).

export type Verdict = 'success' | 'connect-failure' | 'reset' | 'timeout' | 'status-5xx';

/** Every 5xx is a failure, 501/505 included: a peer that answers them is not one to lean on. */
export function classifyStatus(status: number): Verdict {
  return status >= 500 ? 'status-5xx' : 'success';
}

/**
 * A gRPC call's status (HTTP 200 either way): UNKNOWN, INTERNAL, UNAVAILABLE and DATA_LOSS say the
 * server failed, as a 5xx does (Envoy's outlier detection maps them to 500/503 too). Not counted:
 * DEADLINE_EXCEEDED (the caller's deadline travels in grpc-timeout: its budget, not the endpoint's
 * fault), UNIMPLEMENTED (a method this server lacks is the caller's version skew; ejecting for it
 * would take out healthy servers) and the statuses that reject the request itself.
 */
export function classifyGrpcStatus(status: number): Verdict {
  return status === 2 || status === 13 || status === 14 || status === 15 ? 'status-5xx' : 'success';
}

/**
 * Maps undici/Node error codes. A connect failure means no byte reached the upstream (always safe to
 * retry elsewhere); anything unknown is treated as a reset, the conservative choice: the request may
 * have been seen.
 */
export function classifyErrorCode(code: string | undefined): Verdict {
  switch (code) {
    case 'ECONNREFUSED':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    // The client refused the server during the handshake (its identity or chain): nothing was sent.
    case 'ERR_MESH_PEER_IDENTITY':
    case 'ERR_MESH_TLS_REQUIRED':
    case 'CERT_HAS_EXPIRED':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    // HTTP/2: the peer refused the stream (REFUSED_STREAM, or beyond a GOAWAY's last stream id),
    // or ALPN did not agree on h2: not processed (RFC 9113 §8.7).
    case 'ERR_MESH_H2_REFUSED_STREAM':
    case 'ERR_MESH_H2_NOT_NEGOTIATED':
      return 'connect-failure';
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'timeout';
    default:
      // ECONNRESET, UND_ERR_SOCKET, EPIPE, UND_ERR_CLOSED and everything unrecognised.
      return 'reset';
  }
}

export function isFailure(v: Verdict): boolean {
  return v !== 'success';
}

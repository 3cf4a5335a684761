// The sidecar's inbound listener as an mTLS server: a client certificate is required and must chain
// to the mesh root (TLS ≥ 1.2). The verified caller identity is read once per connection, when the
// handshake completes, and kept on the socket; requests read it from there. Rotation swaps the
// server's context with setSecureContext(): new handshakes get the new certificate, open
// connections carry on.
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../observe/log.ts';
import { identityInSan } from './spiffe.ts';
import type { HandshakeFailure, WorkloadIdentity } from './workload-identity.ts';
import { H2_SERVER_SETTINGS } from '../http/plain-server.ts';

const kPeerIdentity = Symbol('meshgate.peerIdentity');
type IdentifiedSocket = Socket & { [kPeerIdentity]?: string };

/** The verified SPIFFE identity of the peer on this connection; undefined on plaintext ones. */
export function peerIdentityOf(socket: Socket): string | undefined {
  return (socket as IdentifiedSocket)[kPeerIdentity];
}

function onSecureConnection(socket: TLSSocket): void {
  // rejectUnauthorized: only verified peers get here.
  (socket as IdentifiedSocket)[kPeerIdentity] = identityInSan(socket.getPeerCertificate().subjectaltname);
}

/** Maps a refused handshake to a bounded reason; Node keeps the verification result on the socket. */
export function handshakeFailureReason(err: NodeJS.ErrnoException, socket: TLSSocket | undefined): HandshakeFailure {
  switch (socket?.authorizationError ?? err.code) {
    case 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE':
    case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
      return 'no-certificate';
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return 'expired';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
    // An issuer with our root's name but not its key: another CA posing as ours.
    case 'CERT_SIGNATURE_FAILURE':
      return 'unknown-ca';
    case 'CERT_REJECTED':
    case 'CERT_UNTRUSTED':
    case 'INVALID_PURPOSE':
    case 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE':
    case 'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR':
      return 'bad-certificate';
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_HTTP_REQUEST':
    case 'ERR_SSL_NO_SHARED_CIPHER':
    case 'ERR_SSL_UNKNOWN_PROTOCOL':
      return 'protocol';
    default:
      return 'other';
  }
}

/**
 * HTTP/1.1 and HTTP/2 by ALPN: callers reach an HTTP/2 (gRPC) service's sidecar over h2, the others
 * over HTTP/1.1 as before.
 */
export function createMtlsServer(identity: WorkloadIdentity, log: Logger): http2.Http2SecureServer {
  const server = http2.createSecureServer({
    ...identity.serverContextOptions(),
    requestCert: true,
    rejectUnauthorized: true,
    allowHTTP1: true,
    ALPNProtocols: ['h2', 'http/1.1'],
    noDelay: true,
    settings: H2_SERVER_SETTINGS,
  } as http2.SecureServerOptions);
  server.prependListener('secureConnection', onSecureConnection);
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    const reason = handshakeFailureReason(err, socket);
    // A peer that connected and left without a handshake (a port probe) is not worth a line or a count.
    if (reason === 'other' && err.code === 'ECONNRESET' && !socket?.authorizationError) return;
    identity.recordHandshakeFailure('inbound', reason);
    log.warn({ dir: 'inbound', reason, detail: socket?.authorizationError ?? err.code ?? err.message, client: socket?.remoteAddress }, 'refused an mTLS handshake');
  });
  identity.onRotate(() => server.setSecureContext(identity.serverContextOptions()));
  return server;
}

// Outbound mTLS, one connector per endpoint (undici's `connect` option): TLS presenting this proxy's
// current certificate, trusting only the mesh root, and accepting the server only if its SPIFFE
// identity is exactly the one the endpoint registered, in our trust domain, for the service being
// called (so a tampered registry entry cannot send `catalog` traffic to a `billing` instance). The
// checks run once per connection, never per request. After a rotation the next connection is made
// with the new certificate (undici's connector is rebuilt, its TLS session cache with it); pooled
// connections finish on the old one.
import type { buildConnector as Connector } from 'undici';
import { buildConnector } from '../client/undici-parts.ts';
import net from 'node:net';
import tls, { type PeerCertificate } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Endpoint } from '../discovery/endpoint.ts';
import type { Logger } from '../observe/log.ts';
import { identityInSan, parseSpiffeId } from './spiffe.ts';
import { handshakeFailureReason } from './mtls-server.ts';
import type { WorkloadIdentity } from './workload-identity.ts';
import { TransportError } from '../client/transport-error.ts';

export const PEER_IDENTITY_ERROR = 'ERR_MESH_PEER_IDENTITY';
export const TLS_REQUIRED_ERROR = 'ERR_MESH_TLS_REQUIRED';

/** Why an endpoint's registered identity is unacceptable before any connection, or undefined. */
export function registeredIdentityProblem(ep: Endpoint, trustDomain: string): string | undefined {
  const id = ep.instance.identity!;
  const parts = parseSpiffeId(id);
  if (parts === undefined) return `endpoint ${ep.authority} of "${ep.instance.service}" registered ${JSON.stringify(id)}, not a spiffe://<trust-domain>/ns/<ns>/sa/<service> identity`;
  if (parts.trustDomain !== trustDomain) return `endpoint ${ep.authority} of "${ep.instance.service}" registered identity ${id} from trust domain ${parts.trustDomain}, expected ${trustDomain}`;
  if (parts.service !== ep.instance.service) return `endpoint ${ep.authority} of "${ep.instance.service}" registered identity ${id}, which belongs to service "${parts.service}"`;
  return undefined;
}

export class PeerConnectors {
  readonly #identity: WorkloadIdentity;
  readonly #log: Logger;

  constructor(identity: WorkloadIdentity, log: Logger) {
    this.#identity = identity;
    this.#log = log;
  }

  #refusal(ep: Endpoint): TransportError | undefined {
    const problem = registeredIdentityProblem(ep, this.#identity.trustDomain);
    if (problem === undefined) return undefined;
    this.#log.warn({ service: ep.instance.service, instance: ep.instance.id, registered: ep.instance.identity }, 'refusing to connect to an endpoint with an unacceptable identity');
    return new TransportError(PEER_IDENTITY_ERROR, problem);
  }

  #recordFailure(ep: Endpoint, e: NodeJS.ErrnoException): void {
    if (e.code === 'ECONNREFUSED' || e.code === 'UND_ERR_CONNECT_TIMEOUT' || e.code === 'ECONNRESET') return;
    const reason = e.code === PEER_IDENTITY_ERROR ? 'identity-mismatch' : handshakeFailureReason(e, undefined);
    this.#identity.recordHandshakeFailure('outbound', reason);
    this.#log.warn({ dir: 'outbound', service: ep.instance.service, instance: ep.instance.id, reason, err: e.message }, 'mTLS connection to an upstream refused');
  }

  /** The `connect` function of one endpoint's pool. */
  forEndpoint(ep: Endpoint, timeoutMs: number): Connector.connector {
    const identity = this.#identity;
    const refused = this.#refusal(ep);
    if (refused !== undefined) return (_opts, callback) => callback(refused, null);
    const checkServerIdentity = serverIdentityCheck(ep);
    let generation = -1;
    let inner: Connector.connector | undefined;
    return (opts, callback) => {
      if (generation !== identity.generation || inner === undefined) {
        inner = buildConnector({ secureContext: identity.clientContext, rejectUnauthorized: true, checkServerIdentity, timeout: timeoutMs, servername: undefined });
        generation = identity.generation;
      }
      inner(opts, (err, socket) => {
        if (err !== null) {
          this.#recordFailure(ep, err as NodeJS.ErrnoException);
          callback(err, null);
          return;
        }
        callback(null, socket!);
      });
    };
  }

  /**
   * For an HTTP/2 pool: makes one mTLS socket per session (ALPN h2), with the same checks and the
   * identity's current certificate.
   */
  h2Socket(ep: Endpoint): () => Duplex {
    const refused = this.#refusal(ep);
    if (refused !== undefined) return () => failedSocket(refused);
    const identity = this.#identity;
    const checkServerIdentity = serverIdentityCheck(ep);
    const { address: host, port } = ep.instance;
    return () => {
      const socket = tls.connect({ host, port, secureContext: identity.clientContext, rejectUnauthorized: true, checkServerIdentity, ALPNProtocols: ['h2'], servername: '' });
      socket.once('error', (err) => this.#recordFailure(ep, err));
      return socket;
    };
  }
}

function serverIdentityCheck(ep: Endpoint): (host: string, cert: PeerCertificate) => Error | undefined {
  const expected = ep.instance.identity!;
  return (_host, cert) => {
    const presented = identityInSan(cert.subjectaltname);
    if (presented === expected) return undefined;
    return new TransportError(PEER_IDENTITY_ERROR, `upstream ${ep.authority} presented identity ${presented ?? 'none'}, expected ${expected}`);
  };
}

/** A socket that fails as soon as it is used: the session reports `err` as its connect error. */
function failedSocket(err: Error): Duplex {
  const socket = new net.Socket();
  process.nextTick(() => socket.destroy(err));
  return socket;
}

/** tlsRequiredConnector's counterpart for HTTP/2 pools. */
export function tlsRequiredSocket(ep: Endpoint): () => Duplex {
  const err = new TransportError(TLS_REQUIRED_ERROR, `upstream ${ep.authority} requires mTLS (identity ${ep.instance.identity}) but this proxy has no mesh identity (set the mesh section)`);
  return () => failedSocket(err);
}

/** For a proxy without a mesh identity: an endpoint that registered one cannot be reached in plaintext. */
export function tlsRequiredConnector(ep: Endpoint): Connector.connector {
  const err = new TransportError(TLS_REQUIRED_ERROR, `upstream ${ep.authority} requires mTLS (identity ${ep.instance.identity}) but this proxy has no mesh identity (set the mesh section)`);
  return (_opts, callback) => callback(err, null);
}

// The edge's HTTPS listener: HTTP/2 and HTTP/1.1 on one port, chosen by ALPN, with certificates by
// SNI. HTTP/1.1 connections go to meshgate's HTTP/1.1 server, HTTP/2 sessions' streams are taken on
// the stream API (ProxyListener does both); both become Exchanges, so the same router and policies
// serve them.
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { Counter } from 'prom-client';
import { parseDuration } from '../../config/duration.ts';
import type { GatewayConfig } from '../../config/schema.ts';
import type { Logger } from '../../mesh-proxy/observe/log.ts';
import { CertificateStore } from './certificate-store.ts';
import { H2_SERVER_SETTINGS } from '../../mesh-proxy/http/plain-server.ts';

export type HttpsConfig = NonNullable<GatewayConfig['listeners']['https']>;

/** TLS parameters every context shares: the floor version and no renegotiation-era protocols. */
function tlsOptions(c: HttpsConfig) {
  return { minVersion: c.minVersion, honorCipherOrder: true } as const;
}

export interface EdgeHttps {
  readonly server: http2.Http2SecureServer;
  readonly certificates: CertificateStore;
}

export async function createEdgeHttps(c: HttpsConfig, baseDir: string, log: Logger, counters: { reloads: Counter<'result'>; handshakeFailures: Counter<'direction' | 'reason'> }): Promise<EdgeHttps> {
  const certificates = new CertificateStore(c.certificates, baseDir, tlsOptions(c), log, counters.reloads);
  await certificates.load();
  const server = http2.createSecureServer({
    ...tlsOptions(c),
    ...certificates.defaultPem,
    SNICallback: certificates.sni,
    allowHTTP1: true,
    // Small frames go out at once: Nagle plus delayed ACKs would hold responses for tens of ms.
    noDelay: true,
    ALPNProtocols: c.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
    settings: H2_SERVER_SETTINGS,
  });
  certificates.onReload(() => server.setSecureContext({ ...tlsOptions(c), ...certificates.defaultPem }));
  certificates.startWatching(parseDuration(c.reloadEvery));
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    const reason = err.code === 'ERR_SSL_UNSUPPORTED_PROTOCOL' || err.code === 'ERR_SSL_NO_PROTOCOLS_AVAILABLE' ? 'protocol' : err.code === 'ECONNRESET' ? 'reset' : 'other';
    if (reason === 'reset') return; // a probe that left before the handshake
    counters.handshakeFailures.inc({ direction: 'edge', reason });
    log.debug({ dir: 'edge', reason, detail: err.code ?? err.message, client: socket?.remoteAddress }, 'refused a TLS handshake');
  });
  return { server, certificates };
}

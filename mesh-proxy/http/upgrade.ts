// HTTP/1.1 Upgrade requests as the listener receives them (h1-server.ts hands over the socket and
// the bytes read past the head): what is tunnelled and what is served as a plain request.
import type { DownstreamRequest } from './h2-downstream.ts';

/**
 * `websocket` for a WebSocket handshake; `other` for any other token (h2c, TLS/1.0 …), which is
 * ignored as RFC 9110 §7.8 allows: such a request is served as a plain one and the connection
 * closes (curl --http2 on http:// sends `Upgrade: h2c`; Node does not implement h2c upgrades and
 * RFC 9113 deprecated them).
 */
export function upgradeKind(req: Pick<DownstreamRequest, 'headers'>): 'websocket' | 'other' {
  const u = req.headers.upgrade;
  return typeof u === 'string' && u.length === 9 && u.toLowerCase() === 'websocket' ? 'websocket' : 'other';
}

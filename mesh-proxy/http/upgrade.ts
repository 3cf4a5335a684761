// HTTP/1.1 Upgrade requests as the listener receives them (node:http's 'upgrade' event hands over
// the raw socket): what is tunnelled, what is served as a plain request, and the socket handlers
// such a request needs. Module-level functions with `this` bound by the emitter: no closures.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * `websocket` for a WebSocket handshake; `other` for any other token (h2c, TLS/1.0 …), which is
 * ignored as RFC 9110 §7.8 allows: such a request is served as a plain one and the connection
 * closes (curl --http2 on http:// sends `Upgrade: h2c`; Node does not implement h2c upgrades and
 * RFC 9113 deprecated them).
 */
export function upgradeKind(req: IncomingMessage): 'websocket' | 'other' {
  const u = req.headers.upgrade;
  return typeof u === 'string' && u.length === 9 && u.toLowerCase() === 'websocket' ? 'websocket' : 'other';
}

/** node:http removes its own 'error' listener from an upgraded socket: one is needed at once. */
export function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** A reply on an upgrade's own ServerResponse ends the connection (no server loop reads a next request). */
export function endSocketOnFinish(this: ServerResponse): void {
  this.socket?.end();
}

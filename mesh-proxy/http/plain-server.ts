// A plain-TCP listener for HTTP/1.1 and, optionally, HTTP/2 with prior knowledge (h2c): the first
// bytes of each connection tell them apart (an HTTP/2 client opens with "PRI * HTTP/2.0"; no
// HTTP/1.1 method starts with "PRI"), and the connection is handed to the matching server, as
// Envoy's `codec_type: AUTO` does. gRPC clients speak h2c to a sidecar's outbound listener.
import http2 from 'node:http2';
import net, { type Socket } from 'node:net';

/** Settings every meshgate HTTP/2 server announces. */
export const H2_SERVER_SETTINGS: http2.Settings = {
  // Streams one client may have open at once: bounds what one connection can queue on us.
  maxConcurrentStreams: 256,
  // A 4 MB gRPC message should not wait on 64 KiB window updates.
  initialWindowSize: 1 << 20,
};

// Half-open: a client's FIN is the HTTP/1.1 server's to interpret (h1-server-connection.ts).
const PLAIN_SERVER_OPTIONS: net.ServerOpts = { allowHalfOpen: true, noDelay: true };
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** A connection that sends nothing to tell its protocol by within this long is closed. */
const SNIFF_TIMEOUT_MS = 10_000;

export interface PlainServers {
  /** The listening server; its HTTP/1.1 connections go to `h1Connection`. */
  readonly tcp: net.Server;
  /** Emits the h2c requests; it never listens itself. */
  readonly h2: http2.Http2Server | undefined;
}

/** `h1Connection` takes the connections that speak HTTP/1.1 (meshgate's H1Server.accept). */
export function createPlainServers(h2c: boolean, h1Connection: (socket: Socket) => void): PlainServers {
  const tcp = net.createServer(PLAIN_SERVER_OPTIONS);
  if (!h2c) {
    tcp.on('connection', h1Connection);
    return { tcp, h2: undefined };
  }
  const h2 = http2.createServer({ settings: H2_SERVER_SETTINGS });
  tcp.on('connection', (socket: Socket) => sniff(socket, h1Connection, h2));
  return { tcp, h2 };
}

interface Sniffing {
  h1Connection: (socket: Socket) => void;
  h2: http2.Http2Server;
  seen: Buffer | undefined;
}
const kSniff = Symbol('meshgate.sniff');
type SniffedSocket = Socket & { [kSniff]?: Sniffing };

function sniff(socket: SniffedSocket, h1Connection: (socket: Socket) => void, h2: http2.Http2Server): void {
  socket[kSniff] = { h1Connection, h2, seen: undefined };
  socket.on('data', onFirstBytes);
  socket.on('error', onSniffError);
  socket.setTimeout(SNIFF_TIMEOUT_MS, onSniffTimeout);
}

function onFirstBytes(this: SniffedSocket, chunk: Buffer): void {
  const s = this[kSniff]!;
  const seen = s.seen === undefined ? chunk : Buffer.concat([s.seen, chunk]);
  const n = Math.min(seen.length, PREFACE.length);
  const prefaceSoFar = seen.compare(PREFACE, 0, n, 0, n) === 0;
  // Three bytes ("PRI") decide; fewer that still match wait for more.
  if (prefaceSoFar && n < 3) {
    s.seen = seen;
    return;
  }
  this.removeListener('data', onFirstBytes);
  this.removeListener('error', onSniffError);
  // setTimeout(ms, fn) left fn as a 'timeout' listener: the server's own idle timeouts come later.
  this.removeListener('timeout', onSniffTimeout);
  this.setTimeout(0);
  this[kSniff] = undefined;
  this.pause();
  this.unshift(seen);
  if (prefaceSoFar) {
    // The session reads what is already buffered on the socket, then the socket itself.
    s.h2.emit('connection', this);
    return;
  }
  s.h1Connection(this);
  this.resume();
}

function onSniffError(this: SniffedSocket): void {
  this.destroy();
}

function onSniffTimeout(this: SniffedSocket): void {
  this.destroy();
}

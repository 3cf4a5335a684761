// WebSocket test peers: an echo app (a real `ws` server) that can be told to close with a code or
// to vanish, and a client wrapper whose messages and close can be awaited with bounded waits.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer, type RawData } from 'ws';

export interface WsApp {
  readonly port: number;
  readonly server: http.Server;
  /** The upgrade requests' headers, in order. */
  readonly handshakes: http.IncomingHttpHeaders[];
  /** Close codes the app received from clients. */
  readonly closes: number[];
  /** Open server-side sockets. */
  readonly sockets: Set<WebSocket>;
  close(): Promise<void>;
}

/**
 * Echoes every message (text as text, binary as binary). Text commands: `close:<code>` closes with
 * that code; `terminate` destroys the socket without a close frame. Plain HTTP requests get 200.
 */
export async function startWsApp(name = 'ws-app', port = 0): Promise<WsApp> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-app': name });
    res.end(`plain ${name}`);
  });
  const wss = new WebSocketServer({ server, maxPayload: 8 * 1024 * 1024 });
  const app: WsApp = {
    port: 0,
    server,
    handshakes: [],
    closes: [],
    sockets: new Set(),
    async close() {
      for (const s of app.sockets) s.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  wss.on('connection', (ws, req) => {
    app.handshakes.push(req.headers);
    app.sockets.add(ws);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const text = isBinary ? '' : data.toString();
      if (text.startsWith('close:')) ws.close(Number(text.slice(6)), 'bye');
      else if (text === 'terminate') ws.terminate();
      else ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code) => {
      app.closes.push(code);
      app.sockets.delete(ws);
    });
    ws.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  (app as { port: number }).port = (server.address() as AddressInfo).port;
  return app;
}

export interface Client {
  readonly ws: WebSocket;
  next(timeoutMs?: number): Promise<{ data: Buffer; binary: boolean }>;
  closed(timeoutMs?: number): Promise<{ code: number; reason: string }>;
}

/** Opens a client; resolves once open, rejects with the HTTP status and body when refused. */
export function connect(url: string, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: timeoutMs, maxPayload: 8 * 1024 * 1024 });
    const queue: Array<{ data: Buffer; binary: boolean }> = [];
    const waiters: Array<(m: { data: Buffer; binary: boolean }) => void> = [];
    let closeInfo: { code: number; reason: string } | undefined;
    const closeWaiters: Array<(c: { code: number; reason: string }) => void> = [];
    ws.on('message', (data: RawData, binary: boolean) => {
      const m = { data: Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]), binary };
      const w = waiters.shift();
      if (w) w(m);
      else queue.push(m);
    });
    ws.on('close', (code, reason) => {
      closeInfo = { code, reason: reason.toString() };
      for (const w of closeWaiters.splice(0)) w(closeInfo);
    });
    ws.on('error', (err) => reject(err));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => reject(Object.assign(new Error(`unexpected response ${res.statusCode}: ${body}`), { status: res.statusCode, body, headers: res.headers })));
      res.on('error', () => reject(Object.assign(new Error(`unexpected response ${res.statusCode}`), { status: res.statusCode, body, headers: res.headers })));
    });
    ws.on('open', () => {
      resolve({
        ws,
        next: (ms = 10_000) =>
          new Promise((res, rej) => {
            const m = queue.shift();
            if (m) return res(m);
            const t = setTimeout(() => rej(new Error('no message in time')), ms);
            waiters.push((x) => {
              clearTimeout(t);
              res(x);
            });
          }),
        closed: (ms = 10_000) =>
          new Promise((res, rej) => {
            if (closeInfo) return res(closeInfo);
            const t = setTimeout(() => rej(new Error('not closed in time')), ms);
            closeWaiters.push((c) => {
              clearTimeout(t);
              res(c);
            });
          }),
      });
    });
  });
}

/** A refused handshake's status, headers and body. */
export async function refused(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  try {
    const c = await connect(url, headers);
    c.ws.terminate();
  } catch (err) {
    const e = err as Error & { status?: number; body?: string; headers?: http.IncomingHttpHeaders };
    if (e.status !== undefined) return { status: e.status, body: e.body ?? '', headers: e.headers ?? {} };
    throw err;
  }
  throw new Error(`the upgrade to ${url} was accepted`);
}
